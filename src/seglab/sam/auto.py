"""Automatic masks: a grid of point prompts, filtered by quality and stability, de-duplicated by box NMS.

This is upstream's automatic mask generator with its defaults (those the SAM authors chose for ViT-H),
every one exposed as an option. ``min_area`` is seglab's: it drops masks smaller than that many pixels
(upstream's ``min_mask_region_area`` cleans holes and islands with OpenCV, which seglab does not need).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from seglab.errors import ConfigError


@dataclass(frozen=True)
class AutoMaskOptions:
    """How the grid is laid and what is kept (defaults: upstream's ``SamAutomaticMaskGenerator``).

    Attributes:
        points_per_side: the grid has ``points_per_side ** 2`` points per crop.
        points_per_batch: points decoded per forward pass (memory, not results).
        pred_iou_thresh: keep masks whose predicted IoU is above this.
        stability_score_thresh: keep masks whose IoU between the masks thresholded at +-offset is at least this.
        stability_score_offset: the logit offset of the stability score.
        box_nms_thresh: box IoU above which the lower-scoring of two masks is dropped.
        crop_n_layers: also run on 2x2, 4x4, ... crops (layer i has (2 ** i) ** 2 crops); 0 = whole image only.
        crop_nms_thresh: box NMS between masks of different crops.
        crop_overlap_ratio: overlap of neighbouring crops (fraction of the image side, first layer).
        crop_n_points_downscale_factor: layer i uses ``points_per_side / factor ** i`` points a side.
        min_area: drop masks of fewer pixels (0 keeps all).
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_area: int = 0

    def __post_init__(self) -> None:
        positive = ("points_per_side", "points_per_batch", "crop_n_points_downscale_factor")
        unit = ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Expected `{name}` (--{flag(name)}) >= 1, but got {getattr(self, name)}.")
        for name in unit:
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ConfigError(f"Expected `{name}` (--{flag(name)}) in [0, 1], but got {getattr(self, name)}.")
        for name in ("crop_n_layers", "min_area"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"Expected `{name}` (--{flag(name)}) >= 0, but got {getattr(self, name)}.")
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise ConfigError(f"Expected `crop_overlap_ratio` (--crop-overlap-ratio) in [0, 1), but got "
                              f"{self.crop_overlap_ratio}.")

    def upstream(self) -> dict:
        """The keyword arguments of upstream's generator (``min_area`` is applied by seglab)."""
        kwargs = asdict(self)
        kwargs.pop("min_area")
        return kwargs


def flag(name: str) -> str:
    """The CLI flag of an option name (``box_nms_thresh`` -> ``box-nms-thresh``)."""
    return name.replace("_", "-")


@dataclass
class AutoMasks:
    """Masks of one image, best predicted IoU first.

    Attributes:
        masks: ``(N, H, W)`` bool; scores: ``(N,)`` predicted IoU; stability: ``(N,)`` stability score;
        boxes: ``(N, 4)`` XYXY pixels (x2, y2 exclusive: last column / row + 1).
    """

    masks: np.ndarray
    scores: np.ndarray
    stability: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.masks)


def generate_masks(model: nn.Module, image: np.ndarray, options: AutoMaskOptions | None = None) -> AutoMasks:
    """Every object SAM finds in ``image`` (``(H, W, 3)`` uint8 RGB), without prompts.

    One encoder pass per crop (one for ``crop_n_layers=0``), then ``points_per_side ** 2`` prompts.
    """
    from seglab.data.instance.dataset import tight_boxes
    from seglab.sam.model import require_segment_anything
    from seglab.sam.session import rgb_uint8

    options = options or AutoMaskOptions()
    image = rgb_uint8(image)
    generator = require_segment_anything().SamAutomaticMaskGenerator(model, **options.upstream())
    with torch.inference_mode():
        records = generator.generate(image)
    records = [r for r in records if int(r["area"]) >= max(1, options.min_area)]
    records.sort(key=lambda r: -float(r["predicted_iou"]))
    h, w = image.shape[:2]
    if not records:
        return AutoMasks(np.zeros((0, h, w), bool), np.zeros(0, np.float32), np.zeros(0, np.float32),
                         np.zeros((0, 4), np.float32))
    masks = np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records])
    boxes = tight_boxes(torch.from_numpy(masks)).numpy()
    return AutoMasks(masks, np.asarray([r["predicted_iou"] for r in records], np.float32),
                     np.asarray([r["stability_score"] for r in records], np.float32), boxes)
