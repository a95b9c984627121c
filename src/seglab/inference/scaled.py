"""Detector outputs at the training scale (``data.resize``), returned at each input's own size.

Instance and panoptic models take image lists and answer in the pixels of the images they were given. With
``data.resize`` every image is scaled to its long side first (as in training), and each answer is mapped back:
boxes scaled per axis, mask probabilities upsampled bilinearly (then thresholded by the caller, as at native
size), panoptic segment-id maps upsampled nearest (a segment id is a name, not a quantity to blend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from seglab.data.resize import resize_long_side


def detect_at_scale(model: nn.Module, images: Sequence[torch.Tensor], long_side: int | None) -> list[dict[str, Any]]:
    """``model(images)`` (``(3, H, W)`` tensors in [0, 1]) run at ``long_side``, each output at its image's size.

    ``None`` runs the images as they are (the outputs are the model's own).
    """
    if long_side is None:
        return model(list(images))
    small = [resize_long_side(image, long_side) for image in images]
    outputs = model(small)
    return [to_size(out, tuple(s.shape[-2:]), tuple(im.shape[-2:]))
            for out, s, im in zip(outputs, small, images, strict=True)]


def to_size(out: dict[str, Any], seen: tuple[int, int], hw: tuple[int, int]) -> dict[str, Any]:
    """One detector output predicted on a ``seen``-sized image, mapped to ``hw``: an instance output
    (``boxes``, ``masks`` ...) or a panoptic one (``ids``, ``segments``, ``instances``)."""
    if seen == hw:
        return out
    if "ids" in out:
        ids = out["ids"]
        up = F.interpolate(ids[None, None].float(), size=hw, mode="nearest-exact")[0, 0].to(ids.dtype)
        return {**out, "ids": up, "instances": instances_to_size(out["instances"], seen, hw)}
    return instances_to_size(out, seen, hw)


def instances_to_size(inst: dict[str, torch.Tensor], seen: tuple[int, int], hw: tuple[int, int]) -> dict[str, Any]:
    """Boxes ``(N, 4)`` XYXY scaled by the two axes' ratios, masks ``(N, 1, h, w)`` (probabilities) upsampled
    bilinearly; other fields (labels, scores) unchanged."""
    out = dict(inst)
    sy, sx = hw[0] / seen[0], hw[1] / seen[1]
    if "boxes" in inst:
        out["boxes"] = inst["boxes"] * torch.tensor([sx, sy, sx, sy], dtype=inst["boxes"].dtype,
                                                    device=inst["boxes"].device)
    masks = inst.get("masks")
    if masks is not None and masks.ndim == 4 and len(masks):
        out["masks"] = F.interpolate(masks.float(), size=hw, mode="bilinear", align_corners=False)
    elif masks is not None and masks.ndim == 4:
        out["masks"] = masks.new_zeros((0, masks.shape[1], *hw))
    return out
