"""Training configs that run in CPU seconds; the tiny dataset they train on (``tiny_data``) is in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from seglab.config import RunConfig, config_from_dict


@pytest.fixture
def tiny_config():
    """Factory fixture: ``tiny_config(data, out, **train_overrides) -> RunConfig``."""
    return _tiny_config


def _tiny_config(data: Path, out: Path, **train: object) -> RunConfig:
    """A CPU-second config: 2-level U-Net of width 4, no random rescale, 32 px crops."""
    cfg = config_from_dict({
        "data": {"root": str(data), "crop_size": 32, "scale": [1.0, 1.0], "color_jitter": 0.0, "workers": 0},
        "model": {"name": "unet", "options": {"base_channels": 4, "depth": 2}},
        "train": {"out": str(out), "epochs": 2, "batch_size": 4, "lr": 0.01, "warmup_epochs": 0.0,
                  "num_samples": 2},
    })
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg
