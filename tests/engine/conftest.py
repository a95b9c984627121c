"""A tiny semantic dataset written in seconds: bright squares (class 1) and dark discs (class 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.config import RunConfig, config_from_dict


def write_tiny_dataset(root: Path, n_train: int = 16, n_val: int = 4, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(90, 130, (size, size, 3)).astype(np.uint8)
            lab = np.zeros((size, size), np.uint8)
            x0, y0 = rng.integers(0, size // 2, 2)
            lab[y0 : y0 + size // 3, x0 : x0 + size // 3] = 1
            cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = 2
            img[lab == 1] = (230, 220, 40)
            img[lab == 2] = (20, 40, 160)
            Image.fromarray(img).save(root / "images" / split / f"{split}_{i:03d}.png")
            Image.fromarray(lab).save(root / "labels" / split / f"{split}_{i:03d}.png")
    (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


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
