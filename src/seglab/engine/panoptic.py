"""The panoptic task: every pixel one segment, stuff as regions and things as instances, scored with PQ.

It implements :class:`~seglab.engine.task.Task` like the semantic and instance tasks, so the one loop trains
Panoptic FPN end to end; ``best.pt`` follows ``PQ`` unless the user picks another ``--monitor``.
Differences worth knowing:

- The model computes its own losses (the five Mask R-CNN terms + ``loss_semantic``, weighted inside the
  model); their sum is optimised and each is logged.
- Which classes are things comes from the data (``panoptic.json`` or the COCO categories' ``isthing``) and
  reaches the model as its ``thing_classes`` option (:meth:`model_options`), so checkpoints carry it.
- Validation scores every image at full size with :class:`~seglab.inference.panoptic.PanopticScorer`: PQ /
  SQ / RQ for all classes, things and stuff, the implied semantic mIoU and the implied instances' COCO AP.
  There is no ``val_loss`` (detectors return detections in eval mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab.engine.instance import ModelLosses, detector_batch, detector_forward, detector_loss
from seglab.engine.task import Augment, Autocast
from seglab.errors import ConfigError
from seglab.inference.panoptic import PANOPTIC_KEYS


class PanopticTask:
    """Panoptic segmentation on seglab's panoptic folders or COCO panoptic data (a :class:`Task`).

    Args:
        root: dataset folder (``labels/`` + ``instances/`` + ``panoptic.json``, or ``annotations/panoptic_*``).
        num_classes: optional check: must equal the data's number of classes (stuff + things).
        in_channels: must be 3 (the detector reads RGB).
        augment: rescale / crop / flips / jitter of training images (``rotate``, ``rot90`` and ``elastic`` are refused).
    """

    name = "panoptic"
    headline = (("PQ", "PQ"), ("PQ_th", "PQ_th"), ("PQ_st", "PQ_st"))
    default_monitor = "PQ"
    monitors = PANOPTIC_KEYS + ("mean_iou", "pixel_accuracy", "mask_AP", "mask_AP50", "box_AP", "box_AP50")
    loss_description = ("the Mask R-CNN losses (loss_classifier + loss_box_reg + loss_mask + loss_objectness + "
                        "loss_rpn_box_reg) + the weighted semantic cross-entropy loss_semantic")

    def __init__(self, root: str, *, train_split: str = "train", val_split: str = "val",
                 num_classes: int | None = None, in_channels: int = 3, augment: Augment = Augment(),
                 resize: int | None = None) -> None:
        from seglab.data.panoptic.dataset import PanopticDataset, open_panoptic_split
        from seglab.data.transforms import build_panoptic_train_transforms
        from seglab.inference.panoptic import PanopticEvalSet

        if not root:
            raise ConfigError("no dataset given: pass --data DIR (a panoptic folder: labels/, instances/ and "
                              "panoptic.json, or annotations/panoptic_<split>.json).")
        if in_channels != 3:
            raise ConfigError(f"data.in_channels={in_channels}: panoptic models read RGB images; use 3.")
        train, val = open_panoptic_split(root, train_split), open_panoptic_split(root, val_split)
        if (train.classes, train.thing_classes) != (val.classes, val.thing_classes):
            raise ConfigError(f"{root}: the {train_split} and {val_split} splits have different classes "
                              f"({train.classes} vs {val.classes}) or things. Give both splits the same categories.")
        if not train.thing_classes:
            raise ConfigError(f"{root}: no class is a thing, so there is nothing for the instance head; list the "
                              "thing classes in panoptic.json ({\"things\": [...]}) or train a semantic model.")
        self.num_classes = len(train.classes)
        if num_classes is not None and num_classes != self.num_classes:
            raise ConfigError(f"data.num_classes={num_classes}, but {root} has {self.num_classes} classes. "
                              "Drop --num-classes.")
        augment.detector_check(self.name)
        tf = build_panoptic_train_transforms(augment.crop_size, scale=tuple(augment.scale), hflip=augment.hflip,
                                             color_jitter=augment.color_jitter, vflip=augment.vflip, resize=resize)
        self.resize = resize  # data.resize: validation and samples run at it, scored at the labels' size
        from seglab.data.preflight import preflight_panoptic

        preflight_panoptic(val)  # the training split's runs in PanopticDataset: both splits pass the doctor
        self.train_split, self.val_split = train, val
        self.train_set = PanopticDataset(train, tf)
        self.val_set = PanopticEvalSet(val)
        self.classes, self.cat_ids = list(train.classes), [int(c) for c in train.cat_ids]
        self.thing_classes = [int(c) for c in train.thing_classes]
        self.palette = _palette(root)
        self.ignore_index = 255
        self.class_weights = None  # the model weighs its own loss terms

    def collate(self):
        from seglab.inference.panoptic import collate_lists

        return collate_lists

    def model_info(self) -> dict[str, Any]:
        """What a checkpoint carries: images go in as [0, 1] RGB (the model normalises internally)."""
        return {"task": "panoptic", "classes": self.classes, "cat_ids": self.cat_ids, "in_channels": 3,
                "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "ignore_index": self.ignore_index,
                "palette": self.palette}

    def model_options(self) -> dict[str, Any]:
        """The data decides which classes are things; the model and its checkpoint must agree."""
        return {"thing_classes": list(self.thing_classes)}

    def criterion(self) -> nn.Module:
        """A stand-in: the model returns its own (weighted) loss terms, which this sums."""
        return ModelLosses()

    def report_notes(self) -> list[str]:
        """Which classes are things and which are stuff."""
        things = ", ".join(self.classes[c] for c in self.thing_classes)
        stuff = ", ".join(c for i, c in enumerate(self.classes) if i not in self.thing_classes) or "none"
        return [f"- things (instances): {things}", f"- stuff (regions): {stuff}"]

    def sample_weights(self) -> torch.Tensor:
        """Repeat-factor weights by the classes each training image holds (``--sampler balanced``)."""
        from seglab.data.sampling import repeat_factors

        present = []
        for i in range(len(self.train_split)):
            _, _, segments = self.train_split.load(i)
            present.append({int(s["category"]) for s in segments})
        return repeat_factors(present)

    def prepare_batch(self, batch: tuple[list, list], device: torch.device,
                      channels_last: bool) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        return detector_batch(batch, device, ("boxes", "labels", "masks", "semantic"))

    def compute_loss(self, model: nn.Module, criterion: nn.Module, images: list[torch.Tensor],
                     targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model's loss dict, summed; the parts (detached) are logged."""
        return detector_loss(model, criterion, images, targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, criterion: nn.Module, device: torch.device,
                 autocast: Autocast) -> tuple[dict[str, Any], None]:
        """PQ / SQ / RQ, the implied mIoU and AP on this rank's share of the validation split; no val loss."""
        from seglab.inference.panoptic import PanopticScorer, score_batches

        scorer = PanopticScorer(self.classes, self.thing_classes, self.cat_ids)
        return score_batches(model, loader, scorer, device, autocast, resize=self.resize), None

    @torch.no_grad()
    def validation_forward(self, model: nn.Module, batch: tuple[list, list], device: torch.device,
                           autocast: Autocast) -> list[dict[str, torch.Tensor]]:
        """The panoptic outputs :meth:`evaluate` scores for one collated batch (what ``--time`` times)."""
        return detector_forward(model, batch[0], device, self.resize, autocast)

    @torch.no_grad()
    def save_samples(self, model: nn.Module, indices: list[int], path: Path, device: torch.device,
                     autocast: Autocast) -> None:
        """input | truth | prediction, each segment a shade of its class colour, for fixed validation images."""
        from seglab.inference.panoptic import to_cpu
        from seglab.inference.scaled import detect_at_scale
        from seglab.viz import default_palette, save_panoptic_panels

        rows = []
        was_training = model.training
        model.eval()
        for i in indices:
            image, target = self.val_set[i]
            with autocast():
                out = to_cpu(detect_at_scale(model, [image.to(device)], self.resize)[0])
            rows.append((image, (target["ids"], target["segments"]), (out["ids"], out["segments"])))
        model.train(was_training)
        palette = default_palette(256)
        if self.palette:
            palette[: len(self.palette)] = self.palette
        save_panoptic_panels(path, rows, palette, self.classes)


def _palette(root: str) -> list[list[int]] | None:
    """The dataset's palette.txt colours, when it has one."""
    from seglab.data.layout import read_dataset_palette

    palette = read_dataset_palette(Path(root))
    return None if palette is None else [[int(v) for v in c] for c in palette]
