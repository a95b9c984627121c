"""The training scale (``data.resize``): every image scaled so its long side is a given number of pixels.

One definition of the size, the image and label resampling and the way back, shared by training (before the
crop), validation, ``seglab evaluate`` / ``predict`` / ``inspect`` (``seglab.inference``) and, by its rules
(written in :func:`resized_size`), the torch-free ONNX bundle. Outputs always return to the input's size:
scores are upsampled bilinearly, then the argmax is taken.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from seglab.errors import ConfigError

__all__ = ["LongSide", "resize_long_side", "resized_size", "restore_size"]


def resized_size(height: int, width: int, long_side: int | None) -> tuple[int, int]:
    """``(h, w)`` of a ``height x width`` image scaled so its long side is ``long_side`` (``data.resize``).

    Aspect kept; each side rounded half up in integers (``(2 * side * long_side + m) // (2 * m)``, ``m`` the
    long side), so the ONNX bundle and any other reimplementation get the same size. ``None``: unchanged.
    """
    if long_side is None:
        return height, width
    m = max(height, width)
    return max(1, (2 * height * long_side + m) // (2 * m)), max(1, (2 * width * long_side + m) // (2 * m))


def resize_long_side(x: torch.Tensor, long_side: int | None) -> torch.Tensor:
    """Float images ``(..., C, H, W)`` scaled to :func:`resized_size` (bilinear, antialiased), as in training.

    Normalization and channel mixing are linear, so resizing normalized pixels equals normalizing resized ones.
    """
    hw = resized_size(x.shape[-2], x.shape[-1], long_side)
    if hw == tuple(x.shape[-2:]):
        return x
    return F.resize(x, list(hw), interpolation=InterpolationMode.BILINEAR, antialias=True)


def restore_size(logits: torch.Tensor, hw: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Scores ``(N, K, h, w)`` back at ``hw`` (bilinear): how every ``data.resize`` output returns to the input's
    size before the argmax. A no-op at that size already."""
    if tuple(logits.shape[-2:]) == tuple(hw):
        return logits
    return nnf.interpolate(logits.float(), size=tuple(hw), mode="bilinear", align_corners=False)


class LongSide(v2.Transform):
    """Scale the image and its targets so the long side is ``long_side`` px (``data.resize``, the training scale).

    Images bilinear with antialiasing, masks nearest-exact (values kept: ignore stays ignore), boxes scaled.
    With ``labels=False`` masks are left at full size (validation scores against the original labels).
    """

    def __init__(self, long_side: int, labels: bool = True) -> None:
        super().__init__()
        if isinstance(long_side, bool) or not isinstance(long_side, int) or long_side < 1:
            raise ConfigError(f"data.resize must be a positive number of pixels (the long side); got {long_side!r}.")
        self.long_side, self.labels = long_side, labels

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": list(resized_size(*v2.query_size(flat_inputs), self.long_side))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            if not self.labels:
                return inpt
            return F.resize(inpt, params["size"], interpolation=InterpolationMode.NEAREST_EXACT)
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.BoundingBoxes, torch.Tensor)):
            return F.resize(inpt, params["size"], interpolation=InterpolationMode.BILINEAR, antialias=True)
        return inpt
