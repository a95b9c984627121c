"""Checkpoints: plain dicts of tensors and Python values, written atomically, loaded weights-only.

Layout of a checkpoint (every key always present unless noted)::

    seglab_version: str
    task: "semantic" | "instance"
    model: {"name": str, "num_classes": int, "options": dict}
    model_state: state dict (EMA weights when EMA was on, raw weights under "raw_model_state")
    classes: list[str]             class names, index i = class i
    in_channels: int
    mean, std: list[float]         input normalization (0-1 scaled pixels)
    ignore_index: int
    config: dict                   the full run config (re-runnable)
    epoch, step: int
    metrics: dict[str, float]      last validation metrics (may be empty)
    optional: optimizer, scheduler, scaler, ema, rng, sampler ... (resume state)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab import __version__
from seglab.errors import CheckpointError
from seglab.fileio import atomic_path

REQUIRED_KEYS = ("model", "model_state", "classes")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    state = {"seglab_version": __version__, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; a run directory means its ``best.pt``.

    Raises:
        CheckpointError: missing, corrupt, or not a seglab checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise CheckpointError(f"{path}: run directory has no best.pt or last.pt. Train first, "
                                  "or pass the checkpoint file itself.")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found. Pass a .pt file written by `seglab train`.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path}: cannot load checkpoint ({type(e).__name__}: {e}). The file may be "
                              "truncated or not a seglab checkpoint; use last.pt or retrain.") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a seglab checkpoint (missing {', '.join(missing)}). "
                              "Plain state dicts can be loaded with build_model(...).load_state_dict().")
    ckpt["path"] = str(path)
    return ckpt


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights.

    Returns:
        ``(model, info)``: the model in eval mode on ``device`` and the checkpoint dict without
        optimizer/resume state.
    """
    from seglab.models.registry import build_model

    ckpt = read_checkpoint(path)
    spec = ckpt["model"]
    model = build_model(spec["name"], spec["num_classes"], **spec.get("options", {}))
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt['path']}: weights do not fit model {spec['name']!r}: {e}") from e
    model.to(device).eval()
    info = {k: v for k, v in ckpt.items()
            if k not in ("model_state", "raw_model_state", "optimizer", "scheduler", "scaler", "ema", "rng")}
    return model, info
