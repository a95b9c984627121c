"""Panoptic FPN (Kirillov, Girshick, He, Dollar, "Panoptic Feature Pyramid Networks", CVPR 2019, arXiv:1901.02446).

A Mask R-CNN (seglab's builder, :func:`seglab.models.maskrcnn.build_maskrcnn`) detects the things; a light
semantic branch on the same FPN maps segments the stuff, with all things as one extra "thing" class; the
two outputs are merged by :func:`.merge_heuristics.combine`. The semantic branch (the paper's fig. 3): each FPN level
P2..P5 goes through as many conv3x3-GroupNorm-ReLU stages as it needs 2x bilinear upsamplings to reach the
finest level's scale (1/4; one stage without upsampling for P2), the levels are summed, a 1x1 conv gives the
logits, and a bilinear upsampling brings them to the image.

Class spaces: the dataset has K panoptic classes (class indices 0..K-1), ``thing_classes`` of them things.
The detector's labels are 1..T (thing position + 1, 0 = background); the semantic head's slots are the stuff
classes in index order, then "thing".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN

from seglab.errors import ModelError
from seglab.models.base import resize
from seglab.models.panoptic.merge_heuristics import VOID, check_merge_options, combine

DETECTOR_KEYS = ("boxes", "labels", "masks")


def check_thing_classes(thing_classes: Any, num_classes: int, option: str = "thing_classes") -> list[int]:
    """``thing_classes`` as a list, or a ``ModelError`` naming ``option``: required, sorted, distinct, in range."""
    example = f"e.g. --model-opt {option}=[0,1,2] (the sorted class indices of the thing classes)"
    if thing_classes is None:
        raise ModelError(f"model option `{option}` is required for panoptic models: {example}.")
    if not isinstance(thing_classes, (list, tuple)) or not thing_classes or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in thing_classes):
        raise ModelError(f"model option `{option}` must be a non-empty list of class indices; got "
                         f"{thing_classes!r}: {example}.")
    things = [int(c) for c in thing_classes]
    if things != sorted(set(things)) or things[0] < 0 or things[-1] >= num_classes:
        raise ModelError(f"model option `{option}` must hold distinct class indices in 0..{num_classes - 1}, "
                         f"sorted; got {things}: {example}.")
    return things


def _groups(channels: int, most: int = 32) -> int:
    """GroupNorm groups: the paper's 32, or the largest divisor of ``channels`` below it."""
    return next(g for g in range(min(most, channels), 0, -1) if channels % g == 0)


class SemanticFPNHead(nn.Module):
    """The semantic branch: FPN levels (finest first) -> (N, num_classes, H/s, W/s) logits, s the finest stride."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_levels: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(self._level(in_channels, channels, i) for i in range(num_levels))
        self.predictor = nn.Conv2d(channels, num_classes, 1)

    @staticmethod
    def _level(in_channels: int, channels: int, level: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for k in range(max(level, 1)):  # level i: i stages, each 2x up (P2: one stage, no upsampling)
            layers += [nn.Conv2d(in_channels if k == 0 else channels, channels, 3, padding=1, bias=False),
                       nn.GroupNorm(_groups(channels), channels), nn.ReLU(inplace=True)]
            if level > 0:
                layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
        return nn.Sequential(*layers)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sum of the levels brought to the finest one's size, then the 1x1 classifier."""
        size = features[0].shape[-2:]
        x = sum(resize(level(f), size) for level, f in zip(self.levels, features, strict=True))
        return self.predictor(x)


def semantic_targets(semantic: Sequence[torch.Tensor], image_sizes: Sequence[tuple[int, int]],
                     batch_size: Sequence[int]) -> torch.Tensor:
    """Semantic labels (H_i, W_i) brought onto the detector's batch: resized with nearest to each transformed
    image size (as torchvision resizes the masks) and padded with 255 to ``batch_size`` -> (N, Hb, Wb) int64."""
    out = torch.full((len(semantic), *batch_size), VOID, dtype=torch.long, device=semantic[0].device)
    for i, (label, (h, w)) in enumerate(zip(semantic, image_sizes, strict=True)):
        small = F.interpolate(label[None, None].float(), size=(int(h), int(w)), mode="nearest")[0, 0]
        out[i, :h, :w] = small.long()
    return out


class PanopticFPN(nn.Module):
    """Mask R-CNN + semantic FPN branch, called like a torchvision detector with a list of [0, 1] RGB images.

    Train mode: ``model(images, targets)`` -> the Mask R-CNN losses + ``loss_semantic`` (``semantic_loss_weight``
    x cross-entropy of the head, 255 ignored). Targets: ``boxes`` (N, 4) XYXY, ``labels`` (N,) thing position
    + 1, ``masks`` (N, H, W), ``semantic`` (H, W) class indices with 255 = void.
    Eval mode: ``model(images)`` -> per image ``{"ids" (H, W), "segments", "instances"}`` at the input size
    (instances: ``boxes, labels`` (class indices), ``scores, masks (N, 1, H, W)``); see
    :func:`.merge_heuristics.combine`.
    """

    task = "panoptic"

    def __init__(self, detector: MaskRCNN, num_classes: int, thing_classes: Sequence[int], *,
                 semantic_channels: int = 64, semantic_loss_weight: float = 0.5, score_threshold: float = 0.5,
                 overlap_threshold: float = 0.5, stuff_area: int = 128) -> None:
        super().__init__()
        things = check_thing_classes(list(thing_classes), num_classes)
        check_merge_options(score_threshold, overlap_threshold, stuff_area)
        if not 0 < num_classes <= VOID or semantic_channels < 1 or semantic_loss_weight < 0:
            raise ModelError(f"Expected `num_classes` in 1..{VOID} (255 is void), `semantic_channels` >= 1 and "
                             f"`semantic_loss_weight` >= 0; got {num_classes}, {semantic_channels}, "
                             f"{semantic_loss_weight}.")
        stuff = [c for c in range(num_classes) if c not in set(things)]
        self.detector, self.num_classes, self.thing_classes, self.stuff_classes = detector, num_classes, things, stuff
        self.semantic_loss_weight, self.score_threshold = float(semantic_loss_weight), float(score_threshold)
        self.overlap_threshold, self.stuff_area = float(overlap_threshold), int(stuff_area)
        self.featmaps = list(detector.roi_heads.box_roi_pool.featmap_names)  # "0".. finest first, no "pool"
        self.semantic_head = SemanticFPNHead(detector.backbone.out_channels, semantic_channels, len(stuff) + 1,
                                             len(self.featmaps))
        # Lookups, not weights (kept out of the state dict): class index -> head slot (255 stays 255, a value
        # that is no class -> -1), head slot -> class (the "thing" slot -> the first thing class, a marker
        # combine() leaves void), detector label -> class (0, background, never comes out).
        slot = torch.full((VOID + 1,), -1, dtype=torch.long)
        slot[VOID] = VOID
        slot[stuff] = torch.arange(len(stuff))
        slot[things] = len(stuff)
        self.register_buffer("slot_of_class", slot, persistent=False)
        self.register_buffer("class_of_slot", torch.tensor([*stuff, things[0]]), persistent=False)
        self.register_buffer("class_of_label", torch.tensor([-1, *things]), persistent=False)

    def forward(self, images: Sequence[torch.Tensor],
                targets: Sequence[dict[str, torch.Tensor]] | None = None) -> dict[str, torch.Tensor] | list[dict]:
        """Losses (train mode, with targets) or per-image panoptic predictions (eval mode)."""
        if self.training:
            if targets is None:
                raise ModelError("PanopticFPN in train mode needs targets (boxes, labels, masks, semantic); call "
                                 "model.eval() to predict.")
            return self._losses(list(images), list(targets))
        return self._predict(list(images))

    def _run(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None) -> tuple:
        """The detector's own steps (transform, backbone, RPN, RoI heads) plus the semantic head on its FPN."""
        det = self.detector
        det_targets = None if targets is None else [{k: t[k] for k in DETECTOR_KEYS} for t in targets]
        batch, det_targets = det.transform(images, det_targets)
        for t in det_targets or []:
            bad = (t["boxes"][:, 2:] <= t["boxes"][:, :2]).any(1)
            if bad.any():
                raise ModelError(f"target box {t['boxes'][bad][0].tolist()} has no width or height (after the "
                                 "detector's resize); drop such instances from the training data.")
        features = det.backbone(batch.tensors)
        logits = self.semantic_head([features[k] for k in self.featmaps])
        # the detector's RPN and RoI heads compute in float32 under autocast (models/maskrcnn/float32.py)
        proposals, rpn_losses = det.rpn(batch, features, det_targets)
        detections, roi_losses = det.roi_heads(features, proposals, batch.image_sizes, det_targets)
        return batch, detections, {**rpn_losses, **roi_losses}, logits

    def semantic_loss(self, logits: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        """``semantic_loss_weight`` x mean cross-entropy over the non-void pixels of (N, Hb, Wb) class indices;
        ``logits`` (N, stuff + 1, h, w) are upsampled to the labels' size first."""
        index = semantic.clamp(0, VOID)
        slots = torch.where(index == semantic, self.slot_of_class[index], -1)  # -1: no class and not 255
        if bool((slots < 0).any()):
            bad = sorted(set(semantic[slots < 0].tolist()))[:5]
            raise ModelError(f"semantic target holds {bad}: not a class index (0..{self.num_classes - 1}) or 255.")
        logits = resize(logits.float(), slots.shape[-2:])
        if not bool((slots != VOID).any()):  # all void: no pixel to learn from (mean CE would be NaN)
            return logits.sum() * 0.0
        return self.semantic_loss_weight * F.cross_entropy(logits, slots, ignore_index=VOID)

    def _losses(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch, _, losses, logits = self._run(images, targets)
        labels = semantic_targets([t["semantic"] for t in targets], batch.image_sizes, batch.tensors.shape[-2:])
        return {**losses, "loss_semantic": self.semantic_loss(logits, labels)}

    def raw(self, images: Sequence[torch.Tensor]) -> list[dict[str, Any]]:
        """Per image, before the merge: ``semantic`` (H, W) class indices (the "thing" slot as
        ``thing_classes[0]``) and ``instances`` (labels as class indices). Tensors only: what ONNX exports."""
        images = list(images)
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        batch, detections, _, logits = self._run(images, None)
        detections = self.detector.transform.postprocess(detections, batch.image_sizes, sizes)
        outputs = []
        for i, found in enumerate(detections):
            h, w = batch.image_sizes[i]
            full = resize(logits[i: i + 1].float(), batch.tensors.shape[-2:])[..., :h, :w]
            semantic = self.class_of_slot[resize(full, sizes[i]).argmax(1)[0]]
            instances = {"boxes": found["boxes"], "labels": self.class_of_label[found["labels"]],
                         "scores": found["scores"], "masks": found["masks"]}
            outputs.append({"semantic": semantic, "instances": instances})
        return outputs

    def _predict(self, images: list[torch.Tensor]) -> list[dict[str, Any]]:
        outputs = []
        for raw in self.raw(images):
            ids, segments = combine(raw["semantic"], raw["instances"], self.thing_classes,
                                    score_threshold=self.score_threshold, overlap_threshold=self.overlap_threshold,
                                    stuff_area=self.stuff_area)
            outputs.append({"ids": ids, "segments": segments, "instances": raw["instances"]})
        return outputs
