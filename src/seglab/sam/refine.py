"""Sharpen a seglab model's masks with SAM: each region's (or detection's) box becomes a SAM box prompt.

Semantic maps: every 4-connected region of a class other than ``background`` (and of at least ``min_area``
pixels) is one prompt. SAM's mask replaces the region when the two agree enough (IoU at least ``min_iou``;
below it SAM found another object in the box, and the model's region is kept). A replaced region loses the
pixels SAM leaves out (they become ``background``) and gains the background pixels SAM adds; it never takes
pixels another class holds. Instances: each detection's mask is replaced by SAM's for its box under the same
``min_iou`` rule; boxes, classes and scores stay the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.errors import ConfigError
from seglab.sam.session import SamSession


@dataclass(frozen=True)
class RefineOptions:
    """How model masks are refined.

    Attributes:
        min_iou: SAM's mask replaces the model's only when their IoU is at least this (0 = always).
        min_area: semantic regions smaller than this many pixels are left as they are.
        background: the semantic class that is not refined (regions are cut out of it and grow into it).
    """

    min_iou: float = 0.5
    min_area: int = 16
    background: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_iou <= 1.0:
            raise ConfigError(f"Expected `min_iou` (--refine-min-iou) in [0, 1], but got {self.min_iou}.")
        if self.min_area < 1:
            raise ConfigError(f"Expected `min_area` (--refine-min-area) >= 1, but got {self.min_area}.")


@dataclass
class RefineCounts:
    """How many masks SAM replaced, and how many were kept (SAM disagreed: IoU below ``min_iou``)."""

    refined: int = 0
    kept: int = 0

    def add(self, other: RefineCounts) -> None:
        """Add another image's counts."""
        self.refined += other.refined
        self.kept += other.kept


@dataclass
class Regions:
    """The regions of a class map that become prompts: ``ids`` (H, W) region ids, and per prompted region
    its id, class and XYXY box (x2, y2 exclusive)."""

    ids: np.ndarray
    region: list[int] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)


def semantic_regions(labels: np.ndarray, background: int = 0, min_area: int = 1) -> Regions:
    """The 4-connected regions of ``labels`` (``(H, W)`` class indices) of other classes than ``background``."""
    from seglab.viz.stats import connected_regions

    ids = connected_regions(labels)
    found = Regions(ids)
    values, first, counts = np.unique(ids.reshape(-1), return_index=True, return_counts=True)
    flat = labels.reshape(-1)
    for rid, at, n in zip(values.tolist(), first.tolist(), counts.tolist(), strict=True):
        if flat[at] == background or n < min_area:
            continue
        ys, xs = np.nonzero(ids == rid)
        found.region.append(rid)
        found.classes.append(int(flat[at]))
        found.boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    return found


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def refine_semantic(session: SamSession, image: np.ndarray, labels: np.ndarray,
                    options: RefineOptions | None = None) -> tuple[np.ndarray, RefineCounts]:
    """``labels`` (``(H, W)`` class indices predicted for ``image``) with SAM's region boundaries.

    Returns:
        ``(refined labels (H, W) int64, counts)``; the image is encoded once (none when there is no region).
    """
    options = options or RefineOptions()
    labels = np.asarray(labels).astype(np.int64)
    found = semantic_regions(labels, options.background, options.min_area)
    counts = RefineCounts()
    if not found.region:
        return labels, counts
    session.set_image(image)
    masks, _ = session.predict_boxes(found.boxes)
    out = labels.copy()
    for rid, cls, sam in zip(found.region, found.classes, masks, strict=True):
        region = found.ids == rid
        if mask_iou(region, sam) < options.min_iou:
            counts.kept += 1
            continue
        counts.refined += 1
        out[region & ~sam] = options.background
        out[sam & (labels == options.background) & (out == options.background)] = cls
    return out, counts


def refine_instances(session: SamSession, image: np.ndarray, inst: dict[str, Any],
                     options: RefineOptions | None = None) -> tuple[dict[str, Any], RefineCounts]:
    """Detections (``predict_instances``' dict: boxes, labels, scores, masks, mask_probs) with SAM's masks."""
    options = options or RefineOptions()
    counts = RefineCounts()
    boxes = torch.as_tensor(inst["boxes"]).float().reshape(-1, 4).numpy()
    if len(boxes) == 0:
        return inst, counts
    session.set_image(image)
    sam, _ = session.predict_boxes(boxes)
    masks = torch.as_tensor(inst["masks"]).bool().clone()
    probs = torch.as_tensor(inst.get("mask_probs", masks.float())).float().clone()
    for k in range(len(boxes)):
        if mask_iou(masks[k].numpy(), sam[k]) < options.min_iou:
            counts.kept += 1
            continue
        counts.refined += 1
        masks[k] = torch.from_numpy(sam[k])
        probs[k] = masks[k].float()
    return {**inst, "masks": masks, "mask_probs": probs}, counts


class SamRefiner:
    """The ``refine`` hook of :class:`seglab.inference.PredictOptions`: ``(image, result) -> result``.

    ``result`` is what the task's writer predicted for one image: semantic ``(labels, probs)`` (the
    probabilities stay the model's), instance ``(instances,)``. ``counts`` adds up every image's.
    """

    def __init__(self, sam: nn.Module | SamSession, task: str, options: RefineOptions | None = None) -> None:
        """Refine the masks of a ``task`` (``semantic`` or ``instance``) model with ``sam``."""
        if task not in ("semantic", "instance"):
            raise ConfigError(f"--refine sam: refines semantic and instance models, not {task!r} ones.")
        self.session = sam if isinstance(sam, SamSession) else SamSession(sam)
        self.task, self.options, self.counts = task, options or RefineOptions(), RefineCounts()

    def __call__(self, image: np.ndarray, result: tuple) -> tuple:
        """One image's prediction, refined."""
        if self.task == "instance":
            inst, counts = refine_instances(self.session, image, result[0], self.options)
            self.counts.add(counts)
            return (inst, *result[1:])
        labels = result[0]
        refined, counts = refine_semantic(self.session, image, torch.as_tensor(labels).cpu().numpy(), self.options)
        self.counts.add(counts)
        return (torch.from_numpy(refined).to(torch.as_tensor(labels).dtype), *result[1:])
