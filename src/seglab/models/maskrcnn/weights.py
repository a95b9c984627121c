"""Local pretrained weights for Mask R-CNN: read a file, load it with a strict key check, timm mapping.

Nothing is downloaded: a file holds a backbone's classification weights or a whole detector's.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from seglab.errors import ModelError


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a local weight file (seglab checkpoints and common wrappers unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pretrained={str(path)!r}: file not found. Give a local .pt/.pth weight file; "
                         "seglab never downloads weights.")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign or truncated files
        raise ModelError(f"{path}: cannot read weights ({type(e).__name__}: {e}).") from e
    for key in ("model_state", "state_dict", "model"):  # seglab checkpoints and common wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ModelError(f"{path}: not a state dict of tensors.")
    return sd


def load_checked(module: nn.Module, sd: dict[str, torch.Tensor], source: str,
                 ignore: tuple[str, ...] = (), reinit: tuple[str, ...] = ()) -> None:
    """Load with a strict key check; ``ignore``: keys left out (a classifier); ``reinit``: may differ in shape."""
    own = module.state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith(ignore) and not k.endswith("num_batches_tracked")}
    own_keys = {k for k in own if not k.startswith(ignore) and not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(own_keys - set(sd)), sorted(set(sd) - own_keys)
    bad = [k for k in own_keys & set(sd) if own[k].shape != sd[k].shape and not k.startswith(reinit)]
    if missing or unexpected or bad:
        raise ModelError(f"{source}: weights do not fit this model: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, wrong shapes {bad[:5]}. Use weights of the same architecture.")
    keep = {k: v for k, v in sd.items() if own[k].shape == v.shape}
    module.load_state_dict(keep, strict=False)


def is_detector(weights: dict | None) -> bool:
    """True for a whole detector's weights (keys ``backbone.*``), False for a backbone's or none."""
    return weights is not None and any(k.startswith("backbone.") for k in weights)


def load_timm(enc: nn.Module, encoder: str, pretrained: str) -> None:
    """Let timm map a classification checkpoint onto the feature extractor, then freeze its BatchNorm."""
    import timm
    from timm.layers import freeze_batch_norm_2d

    try:
        full = timm.create_model(encoder, pretrained=True, features_only=True,
                                 out_indices=enc.feature_info.out_indices,
                                 pretrained_cfg_overlay={"file": pretrained})
    except (RuntimeError, KeyError) as e:
        raise ModelError(f"{pretrained}: weights do not fit timm encoder {encoder!r}: {e}") from e
    enc.load_state_dict(full.state_dict())
    freeze_batch_norm_2d(enc)
