"""Shared building blocks: conv+norm+act, the U-Net double conv, upsampling choices, option checks.

Kept small and dependency-free so every model family composes the same parts; the model base class and
the resize / padding helpers live in :mod:`seglab.models.base`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seglab.errors import ModelError
from seglab.models.base import resize

NORMS = ("batch", "group", "none")
UPSAMPLES = ("transpose", "bilinear", "bilinear_conv", "nearest")


def check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise a ``ModelError`` naming the option and the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ModelError(f"option {option}={value!r} is not valid. Use one of: {', '.join(allowed)}.")


def make_norm(norm: str, channels: int) -> nn.Module:
    """A normalization layer by name; group norm uses up to 32 groups that divide ``channels``."""
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        groups = math.gcd(32, channels)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class ConvNormAct(nn.Sequential):
    """``Conv2d -> norm -> ReLU``; the conv has a bias only when no norm follows (bias before BN is dead)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 norm: str = "batch", act: bool = True) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation,
                                             bias=norm == "none")]
        if norm != "none":
            layers.append(make_norm(norm, out_ch))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two 3x3 ``ConvNormAct`` blocks, the U-Net stage (Ronneberger et al., 2015), dropout between."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch", dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [ConvNormAct(in_ch, out_ch, norm=norm)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        layers.append(ConvNormAct(out_ch, out_ch, norm=norm))
        super().__init__(*layers)


class Upsample(nn.Module):
    """Double the spatial size with one of four methods.

    ``transpose``: learnable 2x2 stride-2 transposed conv (``in_ch -> out_ch``). ``bilinear`` and ``nearest``:
    fixed interpolation, channels unchanged (``out_channels == in_ch``). ``bilinear_conv``: bilinear then a
    3x3 conv, the checkerboard-free learnable variant (Odena et al., 2016).
    """

    def __init__(self, in_ch: int, out_ch: int, mode: str = "transpose", norm: str = "batch") -> None:
        super().__init__()
        check_choice("upsample", mode, UPSAMPLES)
        self.mode = mode
        self.out_channels = in_ch if mode in ("bilinear", "nearest") else out_ch
        if mode == "transpose":
            self.conv: nn.Module = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        elif mode == "bilinear_conv":
            self.conv = ConvNormAct(in_ch, out_ch, norm=norm)
        else:
            self.conv = nn.Identity()

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Upsample ``x`` (N, C, H, W) by 2, or to ``size`` when given (odd skip sizes)."""
        if self.mode == "transpose":
            x = self.conv(x)
            return x if size is None or x.shape[-2:] == size else resize(x, size)
        kwargs = {"size": size} if size is not None else {"scale_factor": 2.0}
        if self.mode == "nearest":
            return F.interpolate(x, mode="nearest", **kwargs)
        return self.conv(F.interpolate(x, mode="bilinear", align_corners=False, **kwargs))
