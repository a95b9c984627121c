"""Test-time augmentation and the one place logits become probabilities.

``predict_batch`` runs a normalized batch through the model under every TTA variant (flips, scales),
undoes each variant on the probabilities and averages them; whole-image, tiled and batched prediction
all call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from seglab.errors import ConfigError


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: flips and scales whose probabilities are averaged."""

    hflip: bool = False
    vflip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def variants(self) -> list[tuple[float, tuple[int, ...]]]:
        """Every ``(scale, flip dims)`` pair to run; dims index an ``(N, C, H, W)`` tensor."""
        flips: list[tuple[int, ...]] = [()] + ([(3,)] if self.hflip else []) + ([(2,)] if self.vflip else [])
        return [(s, f) for s in self.scales for f in flips]


def parse_tta(spec: str | TTA | None) -> TTA | None:
    """Parse ``"flip"``, ``"hflip,vflip"`` or ``"flip,scales=0.75,1,1.25"`` into a :class:`TTA`.

    ``flip`` means horizontal flip (the only one most scenes are symmetric under). Empty or
    ``"none"`` gives ``None``.

    Raises:
        ConfigError: an unknown word or a scale that is not a positive number.
    """
    if spec is None or isinstance(spec, TTA):
        return spec
    hflip = vflip = False
    scales: list[float] = []
    in_scales = False
    for raw in str(spec).replace(" ", "").split(","):
        word = raw.lower()
        if word in ("", "none"):
            continue
        if word.startswith("scales="):
            in_scales, word = True, word[len("scales="):]
        if in_scales and word:
            scales.append(_scale(word, raw, spec))
        elif word in ("flip", "hflip"):
            hflip = True
        elif word == "vflip":
            vflip = True
        else:
            raise ConfigError(f"--tta {spec!r}: unknown item {raw!r}. Use flip, hflip, vflip and "
                              "scales=a,b,c (e.g. --tta flip,scales=0.75,1,1.25).")
    if not (hflip or vflip or scales):
        return None
    return TTA(hflip=hflip, vflip=vflip, scales=tuple(scales) or (1.0,))


def _scale(word: str, raw: str, spec: str) -> float:
    try:
        scale = float(word)
    except ValueError:
        scale = -1.0
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"--tta {spec!r}: scale {raw!r} is not a positive number. "
                          "Example: --tta flip,scales=0.75,1,1.25")
    return scale


def model_output(out: Any) -> torch.Tensor:
    """The logits tensor of a model's output (a tensor, ``{"out": ...}`` or a tuple's first item)."""
    if isinstance(out, dict):
        return out["out"]
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def predict_batch(model: nn.Module, images: torch.Tensor, *, tta: str | TTA | None = None) -> torch.Tensor:
    """Class probabilities ``(N, K, H, W)`` of an already normalized batch ``(N, C, H, W)``.

    This is the one place logits become probabilities (softmax; a single-channel output is read
    as a sigmoid foreground), shared by whole-image, tiled and batched prediction.
    """
    tta = parse_tta(tta) or TTA()
    h, w = images.shape[-2:]
    total: torch.Tensor | None = None
    variants = tta.variants()
    for scale, dims in variants:
        x = images
        if scale != 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = x.flip(dims) if dims else x
        p = _probs(model, x)
        p = p.flip(dims) if dims else p
        if p.shape[-2:] != (h, w):
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
        total = p if total is None else total.add_(p)
    assert total is not None
    return total if len(variants) == 1 else total.div_(len(variants))


def _probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = model_output(model(x)).float()
    if logits.shape[-2:] != x.shape[-2:]:
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    if logits.shape[1] == 1:
        fg = torch.sigmoid(logits)
        return torch.cat([1.0 - fg, fg], dim=1)
    return logits.softmax(dim=1)
