"""The instance-segmentation task adapter: Mask R-CNN targets, model losses, COCO mask/box AP, overlays.

It offers the trainer (``trainer.py``) the same pieces as :class:`~seglab.engine.semantic.SemanticTask`, so
one loop trains both tasks. Differences worth knowing:

- The losses come from the model: torchvision's Mask R-CNN returns ``loss_classifier, loss_box_reg,
  loss_mask, loss_objectness, loss_rpn_box_reg`` in train mode; their sum is optimised, each is logged.
- ``val_loss`` is NaN: in eval mode Mask R-CNN returns detections, not losses, and running it in train mode
  on validation images would update the BatchNorm statistics of from-scratch backbones.
- Validation scores are COCO mask and box AP (faster-coco-eval). Under DDP each rank predicts its shard;
  the detections are gathered on rank 0, scored there against the whole split and the numbers broadcast,
  so every rank takes the same LR-on-plateau / best-checkpoint decisions.
- ``channels_last`` is not applied: the model batches (and pads) the image list itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab.config import RunConfig
from seglab.errors import ConfigError

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
SAMPLE_SCORE = 0.5  # detections drawn in the sample panels (AP itself uses every detection)

# The issue-9 CPU model (from-scratch ResNet-18 + 96-channel FPN, 64 RoIs per image, 2-layer mask head: the
# maskrcnn_resnet18_fpn defaults) on 128 px images, batch 8. AdamW replaces the SGD 0.02: measured on
# the shapes, it reached mask AP 0.22 after 120 steps where SGD 0.02 reached 0.09 (SGD 0.06 diverged), and
# bf16 autocast made a step ~1.3x faster on an AMX CPU. Evaluating every 4th epoch keeps COCO eval cheap.
# 6 epochs: mask AP 0.669 / AP50 0.918 in 3.98 min of training on a 2-core CPU; 7 epochs reached 0.688 / 0.929
# but the whole command took 4 min 24 s to 4 min 58 s on the same idle machine: too close to 5 minutes.
INSTANCE_DEMO: dict[str, Any] = {
    "data": {"crop_size": 128, "scale": [0.75, 1.25], "hflip": 0.5, "color_jitter": 0.1, "workers": 0},
    "model": {"name": "maskrcnn_resnet18_fpn", "options": {"min_size": 128, "max_size": 128}},
    "train": {"epochs": 6, "batch_size": 8, "lr": 0.001, "optimizer": "adamw", "weight_decay": 0.05,
              "schedule": "cosine", "warmup_epochs": 0.5, "precision": "bf16", "clip_grad": 10.0,
              "monitor": "mask_AP", "eval_every": 4, "num_samples": 4},
}


def open_instance_split(root: str | Path, split: str, transforms=None):
    """COCO (``annotations/instances_<split>.json``) when present, else the instance-mask folder."""
    from seglab.data.coco import CocoInstances, InstanceMaskFolder

    if (Path(root) / "annotations" / f"instances_{split}.json").is_file():
        return CocoInstances(root, split, transforms=transforms)
    if not (Path(root) / "masks" / split).is_dir():
        raise ConfigError(f"{root}: split {split!r} has no annotations/instances_{split}.json and no "
                          f"masks/{split}/. Point --data at an instance dataset (see `seglab data check "
                          f"--task instance {root}`).")
    return InstanceMaskFolder(root, split, transforms=transforms)


def repeat_factors(categories: Sequence[set[int]], threshold: float = 0.1) -> torch.Tensor:
    """LVIS repeat-factor sampling weights (Gupta et al. 2019) from the categories in each image.

    r_c = max(1, sqrt(t / f_c)) with f_c the fraction of images containing category c; an image's weight
    is the largest r_c of its categories (1 for an image without instances).
    """
    n = max(1, len(categories))
    freq: dict[int, float] = {}
    for cats in categories:
        for c in cats:
            freq[c] = freq.get(c, 0.0) + 1.0 / n
    r_c = {c: max(1.0, math.sqrt(threshold / f)) for c, f in freq.items()}
    return torch.tensor([max((r_c[c] for c in cats), default=1.0) for cats in categories], dtype=torch.float64)


class _ModelLosses(nn.Module):
    """Placeholder criterion: Mask R-CNN computes its own losses (``compute_loss`` sums them)."""

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(losses.values())  # type: ignore[return-value]


class InstanceTask:
    """Adapter for Mask R-CNN style instance segmentation on COCO or instance-mask folders."""

    name = "instance"
    headline = (("mask_AP", "mask_AP"), ("mask_AP50", "AP50"), ("box_AP", "box_AP"))

    def __init__(self, cfg: RunConfig) -> None:
        from seglab.data.transforms import build_instance_train_transforms

        d = cfg.data
        if not d.root:
            raise ConfigError("no dataset given: pass --data DIR (annotations/instances_<split>.json + "
                              "images/<split>/, or masks/<split>/).")
        if d.in_channels != 3:
            raise ConfigError(f"data.in_channels={d.in_channels}: Mask R-CNN models read RGB images; use 3.")
        train_tf = build_instance_train_transforms(d.crop_size, scale=tuple(d.scale), hflip=d.hflip,
                                                   color_jitter=d.color_jitter)
        self.train_set = open_instance_split(d.root, d.train_split, train_tf)
        self.val_set = open_instance_split(d.root, d.val_split)
        if list(self.val_set.cat_ids) != list(self.train_set.cat_ids):
            raise ConfigError(f"{d.root}: the {d.train_split} and {d.val_split} splits have different categories "
                              f"(ids {self.train_set.cat_ids[1:]} vs {self.val_set.cat_ids[1:]}). Give both "
                              "splits the same category list.")
        self.num_classes = self.train_set.num_classes
        if d.num_classes is not None and d.num_classes != self.num_classes:
            raise ConfigError(f"data.num_classes={d.num_classes}, but {d.root} has {self.num_classes - 1} "
                              f"categories + background = {self.num_classes}. Drop --num-classes.")
        self.classes = list(self.train_set.classes)
        self.cat_ids = [int(c) for c in self.train_set.cat_ids]
        self.ignore_index = 255  # unused: instance targets have no ignore label
        self.palette = None
        if cfg.train.monitor == "mean_iou":  # the semantic default; best.pt follows mask AP here
            cfg.train.monitor = "mask_AP"
        self.cfg = cfg
        self._gt: dict | None = None

    # --- pieces the trainer asks for -------------------------------------------------------------
    def collate(self):
        from seglab.data.coco import collate_instances

        return collate_instances

    def model_info(self) -> dict[str, Any]:
        """What a checkpoint carries: images go in as [0, 1] RGB (the model normalises internally)."""
        return {"task": "instance", "classes": self.classes, "cat_ids": self.cat_ids, "in_channels": 3,
                "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "ignore_index": self.ignore_index,
                "palette": None}

    def build_criterion(self) -> nn.Module:
        return _ModelLosses()

    def sample_weights(self) -> torch.Tensor:
        """Repeat-factor weights by category for ``--sampler balanced``."""
        return repeat_factors(self.train_set.image_categories())

    def loss_inputs(self, batch: tuple[list, list], device: torch.device,
                    channels_last: bool) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        images, targets = batch
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: torch.as_tensor(t[k]).as_subclass(torch.Tensor).to(device, non_blocking=True)
                    for k in ("boxes", "labels", "masks")} for t in targets]
        return images, targets

    def compute_loss(self, model: nn.Module, criterion: nn.Module, images: list[torch.Tensor],
                     targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model's loss dict, summed; the parts (detached) are logged."""
        losses = model(images, targets)
        loss = criterion({k: v.float() for k, v in losses.items()})
        return loss, {k: v.detach().float() for k, v in losses.items()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, criterion: nn.Module, device: torch.device,
                 autocast) -> tuple[dict[str, Any], float]:
        """COCO mask and box AP on the validation split (``mask_AP``, ``box_AP50``, ...); val loss NaN."""
        from seglab.metrics.coco import predictions_to_coco

        detections: list[dict] = []
        for images, targets in loader:
            with autocast():
                outputs = model([im.to(device) for im in images])
            detections += predictions_to_coco(outputs, [t["image_id"] for t in targets],
                                              cat_ids=self.cat_ids)
        return score_detections(detections, self.ground_truth), math.nan

    def ground_truth(self) -> dict:
        """The validation split as a COCO dict (built once)."""
        if self._gt is None:
            self._gt = split_ground_truth(self.val_set)
        return self._gt

    @torch.no_grad()
    def save_samples(self, model: nn.Module, indices: list[int], path: Path, device: torch.device,
                     autocast) -> None:
        """truth | prediction overlays (one colour per instance, class name and score) for fixed images."""
        rows = []
        for i in indices:
            image, target = self.val_set[i]
            with autocast():
                out = model([image.to(device)])[0]
            keep = out["scores"] >= SAMPLE_SCORE
            pred = {"masks": out["masks"][keep, 0].float().cpu() > 0.5, "labels": out["labels"][keep].cpu(),
                    "boxes": out["boxes"][keep].float().cpu(), "scores": out["scores"][keep].float().cpu()}
            rows.append((image, target, pred))
        from seglab.viz import save_instance_panels

        save_instance_panels(path, rows, self.classes)


def split_ground_truth(dataset: Any) -> dict:
    """An instance split as a COCO dict: the JSON itself (crowd regions kept) or built from the masks."""
    from seglab.data.coco import CocoInstances, read_json
    from seglab.metrics.coco import targets_to_coco

    if isinstance(dataset, CocoInstances):
        return read_json(dataset.ann_file)
    targets = (dataset[i][1] for i in range(len(dataset)))  # one image's masks in memory at a time
    return targets_to_coco(targets, dataset.classes, dataset.cat_ids)


def gather_detections(detections: list[dict]) -> list[dict]:
    """Every rank's detections, concatenated in rank order, on every rank (the list itself without DDP)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return detections
    shards: list[list[dict] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, detections)
    return [d for shard in shards for d in shard or []]


def score_detections(detections: list[dict], ground_truth: Callable[[], dict], per_class: bool = False,
                     gathered: bool = False) -> dict[str, Any]:
    """COCO mask and box AP (``mask_AP``, ``box_AP50``, ...) of ``detections``, DDP-aware.

    Under DDP every rank passes its shard's detections (or, with ``gathered``, the result of
    :func:`gather_detections`); they are scored once on rank 0 (``ground_truth()`` is only called there)
    and the numbers are shared, so all ranks agree. With ``per_class`` the result also holds
    ``mask_per_class_AP`` / ``box_per_class_AP`` by category id.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return _score(detections, ground_truth(), per_class)
    if not gathered:
        detections = gather_detections(detections)
    result: list[dict | None] = [None]
    if dist.get_rank() == 0:
        result[0] = _score(detections, ground_truth(), per_class)
    dist.broadcast_object_list(result, src=0)
    return result[0]  # type: ignore[return-value]


def _score(detections: list[dict], gt: dict, per_class: bool = False) -> dict[str, Any]:
    from seglab.metrics.coco import evaluate

    metrics: dict[str, Any] = {}
    for prefix, iou_type in (("mask", "segm"), ("box", "bbox")):
        stats = evaluate(gt, detections, iou_type, per_class=per_class)
        # pycocotools writes -1 where a stat is undefined (no objects of that size): NaN says so in the CSV
        metrics.update({f"{prefix}_{k}": stats[k] if stats[k] >= 0 else math.nan for k in STAT_KEYS})
        if per_class:
            metrics[f"{prefix}_per_class_AP"] = stats["per_class_AP"]
    return metrics
