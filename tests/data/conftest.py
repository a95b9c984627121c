"""A tiny, valid semantic folder dataset that each test breaks in its own way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

NAMES = ("sky", "road", "car")


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Build ``tmp_path/ds`` with ``n`` RGB images (W x H = 8 x 6) and 'L' labels holding 0..K-1."""

    def make(n: int = 2, splits: tuple[str, ...] = ("train",), k: int = len(NAMES), classes: bool = True) -> Path:
        root = tmp_path / "ds"
        rng = np.random.default_rng(0)
        for split in splits:
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)
            for stem in "abcdefgh"[:n]:
                image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
                label = (np.arange(48).reshape(6, 8) % k).astype(np.uint8)  # every class present
                Image.fromarray(image).save(root / "images" / split / f"{stem}.png")
                Image.fromarray(label).save(root / "labels" / split / f"{stem}.png")
        if classes:
            (root / "classes.txt").write_text("\n".join(NAMES[:k]) + "\n")
        return root

    return make
