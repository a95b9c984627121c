"""The instance-segmentation task: Mask R-CNN targets, model losses, COCO mask/box AP, overlays.

It implements :class:`~seglab.engine.task.Task` like :class:`~seglab.engine.semantic.SemanticTask`, so one
loop trains both tasks; ``best.pt`` follows ``mask_AP`` unless the user picks another ``--monitor``.
Differences worth knowing:

- The losses come from the model: torchvision's Mask R-CNN returns ``loss_classifier, loss_box_reg,
  loss_mask, loss_objectness, loss_rpn_box_reg`` in train mode; their sum is optimised, each is logged.
- There is no ``val_loss`` (``evaluate`` returns ``None``): in eval mode Mask R-CNN returns detections,
  not losses, and running it in train mode on validation images would update the BatchNorm statistics of
  from-scratch backbones.
- Validation scores are COCO mask and box AP (faster-coco-eval). Under DDP each rank predicts its shard;
  the detections are gathered on rank 0, scored there against the whole split and the numbers broadcast,
  so every rank takes the same LR-on-plateau / best-checkpoint decisions.
- ``channels_last`` is not applied: the model batches (and pads) the image list itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab.engine.task import Augment, Autocast
from seglab.errors import ConfigError
from seglab.inference.instance import STAT_KEYS

SAMPLE_SCORE = 0.5  # detections drawn in the sample panels (AP itself uses every detection)


def detector_batch(batch: tuple[list, list], device: torch.device,
                   keys: tuple[str, ...]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """A collated ``(images, targets)`` list batch on ``device``, each target reduced to ``keys`` (plain tensors)."""
    images, targets = batch
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{k: torch.as_tensor(t[k]).as_subclass(torch.Tensor).to(device, non_blocking=True) for k in keys}
               for t in targets]
    return images, targets


def detector_loss(model: nn.Module, criterion: nn.Module, images: list[torch.Tensor],
                  targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A model that returns its own loss dict (Mask R-CNN, Panoptic FPN): the sum and the detached parts."""
    losses = model(images, targets)
    loss = criterion({k: v.float() for k, v in losses.items()})
    return loss, {k: v.detach().float() for k, v in losses.items()}


def detector_forward(model: nn.Module, images: list[torch.Tensor], device: torch.device, resize: int | None,
                     autocast: Autocast) -> list[dict[str, torch.Tensor]]:
    """The detections validation computes for a list of images: each run at the training scale (``data.resize``)
    and mapped back to its own size (:func:`seglab.inference.scaled.detect_at_scale`)."""
    from seglab.inference.scaled import detect_at_scale

    with autocast():
        return detect_at_scale(model, [im.to(device) for im in images], resize)


class ModelLosses(nn.Module):
    """Placeholder criterion: Mask R-CNN computes its own losses (``compute_loss`` sums them)."""

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(losses.values())  # type: ignore[return-value]


class InstanceTask:
    """Mask R-CNN style instance segmentation on COCO or instance-mask folders (a :class:`Task`).

    Args:
        root: dataset folder (``annotations/instances_<split>.json`` + ``images/<split>/``, or ``masks/``).
        num_classes: optional check: must equal the data's categories + background.
        in_channels: must be 3 (the detectors read RGB).
        augment: rescale / crop / flips / jitter of training images (``rotate``, ``rot90`` and ``elastic`` are refused).
    """

    name = "instance"
    headline = (("mask_AP", "mask_AP"), ("mask_AP50", "AP50"), ("box_AP", "box_AP"))
    default_monitor = "mask_AP"
    monitors = tuple(f"{kind}_{stat}" for kind in ("mask", "box") for stat in STAT_KEYS)
    loss_description = ("the Mask R-CNN losses loss_classifier + loss_box_reg + loss_mask + loss_objectness + "
                        "loss_rpn_box_reg")

    def __init__(self, root: str, *, train_split: str = "train", val_split: str = "val",
                 num_classes: int | None = None, in_channels: int = 3, augment: Augment = Augment(),
                 resize: int | None = None) -> None:
        from seglab.data.instance.coco import open_instance_split
        from seglab.data.transforms import build_instance_train_transforms

        if not root:
            raise ConfigError("no dataset given: pass --data DIR (annotations/instances_<split>.json + "
                              "images/<split>/, or masks/<split>/).")
        if in_channels != 3:
            raise ConfigError(f"data.in_channels={in_channels}: Mask R-CNN models read RGB images; use 3.")
        augment.detector_check(self.name)
        train_tf = build_instance_train_transforms(augment.crop_size, scale=tuple(augment.scale), hflip=augment.hflip,
                                                   color_jitter=augment.color_jitter, vflip=augment.vflip,
                                                   resize=resize)
        self.resize = resize  # data.resize: validation and samples run at it, detections back at full size
        self.train_set = open_instance_split(root, train_split, train_tf)
        self.val_set = open_instance_split(root, val_split)
        if list(self.val_set.cat_ids) != list(self.train_set.cat_ids):
            raise ConfigError(f"{root}: the {train_split} and {val_split} splits have different categories "
                              f"(ids {self.train_set.cat_ids[1:]} vs {self.val_set.cat_ids[1:]}). Give both "
                              "splits the same category list.")
        self.num_classes = self.train_set.num_classes
        if num_classes is not None and num_classes != self.num_classes:
            raise ConfigError(f"data.num_classes={num_classes}, but {root} has {self.num_classes - 1} "
                              f"categories + background = {self.num_classes}. Drop --num-classes.")
        self.classes = list(self.train_set.classes)
        self.cat_ids = [int(c) for c in self.train_set.cat_ids]
        self.ignore_index = 255  # unused: instance targets have no ignore label
        self.class_weights = None  # the detector weighs its own loss terms
        self._gt: dict | None = None

    # --- pieces the trainer asks for -------------------------------------------------------------
    def collate(self):
        from seglab.data.instance.coco import collate_instances

        return collate_instances

    def model_info(self) -> dict[str, Any]:
        """What a checkpoint carries: images go in as [0, 1] RGB (the model normalises internally)."""
        return {"task": "instance", "classes": self.classes, "cat_ids": self.cat_ids, "in_channels": 3,
                "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "ignore_index": self.ignore_index,
                "palette": None}

    def model_options(self) -> dict[str, Any]:
        """Nothing: the model's options are the user's."""
        return {}

    def criterion(self) -> nn.Module:
        """A stand-in: the model returns its own loss terms, which this sums."""
        return ModelLosses()

    def report_notes(self) -> list[str]:
        """Nothing task-specific to add: the loss terms are in metrics.csv."""
        return []

    def sample_weights(self) -> torch.Tensor:
        """Repeat-factor weights by category for ``--sampler balanced``."""
        from seglab.data.sampling import repeat_factors

        return repeat_factors(self.train_set.image_categories())

    def prepare_batch(self, batch: tuple[list, list], device: torch.device,
                      channels_last: bool) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        return detector_batch(batch, device, ("boxes", "labels", "masks"))

    def compute_loss(self, model: nn.Module, criterion: nn.Module, images: list[torch.Tensor],
                     targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model's loss dict, summed; the parts (detached) are logged."""
        return detector_loss(model, criterion, images, targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, criterion: nn.Module, device: torch.device,
                 autocast: Autocast) -> tuple[dict[str, Any], None]:
        """COCO mask and box AP on the validation split (``mask_AP``, ``box_AP50``, ...); no val loss."""
        from seglab.inference.instance import score_detections
        from seglab.metrics.coco import predictions_to_coco

        detections: list[dict] = []
        for batch in loader:
            detections += predictions_to_coco(self.validation_forward(model, batch, device, autocast),
                                              [t["image_id"] for t in batch[1]], cat_ids=self.cat_ids)
        return score_detections(detections, self.ground_truth), None

    @torch.no_grad()
    def validation_forward(self, model: nn.Module, batch: tuple[list, list], device: torch.device,
                           autocast: Autocast) -> list[dict[str, torch.Tensor]]:
        """The detections :meth:`evaluate` scores for one collated batch (what ``--time`` times)."""
        return detector_forward(model, batch[0], device, self.resize, autocast)

    def ground_truth(self) -> dict:
        """The validation split as a COCO dict (built once)."""
        if self._gt is None:
            from seglab.inference.instance import split_ground_truth

            self._gt = split_ground_truth(self.val_set)
        return self._gt

    @torch.no_grad()
    def save_samples(self, model: nn.Module, indices: list[int], path: Path, device: torch.device,
                     autocast: Autocast) -> None:
        """truth | prediction overlays (one colour per instance, class name and score) for fixed images."""
        from seglab.inference.scaled import detect_at_scale

        rows = []
        for i in indices:
            image, target = self.val_set[i]
            with autocast():
                out = detect_at_scale(model, [image.to(device)], self.resize)[0]
            keep = out["scores"] >= SAMPLE_SCORE
            pred = {"masks": out["masks"][keep, 0].float().cpu() > 0.5, "labels": out["labels"][keep].cpu(),
                    "boxes": out["boxes"][keep].float().cpu(), "scores": out["scores"][keep].float().cpu()}
            rows.append((image, target, pred))
        from seglab.viz import save_instance_panels

        save_instance_panels(path, rows, self.classes)
