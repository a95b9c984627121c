"""Tiny valid datasets (a semantic folder, an instance-mask folder, its COCO JSON) that tests break."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

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


# The tiny instance dataset: per image, (category id, (y0, y1, x0, x1)) rectangles drawn in order as
# instance ids 1..n on a H x W canvas; "c" has no instance.
INSTANCE_H, INSTANCE_W = 40, 48
INSTANCE_RECTS = {
    "a": [(1, (2, 12, 5, 15)), (3, (20, 38, 30, 46))],
    "b": [(2, (0, 40, 0, 8)), (1, (10, 20, 20, 30)), (2, (25, 35, 10, 20))],
    "c": [],
}


@pytest.fixture
def instance_spec() -> SimpleNamespace:
    """What ``mask_root`` holds: ``H``, ``W`` and ``RECTS`` (read only)."""
    return SimpleNamespace(H=INSTANCE_H, W=INSTANCE_W, RECTS=INSTANCE_RECTS)


@pytest.fixture
def mask_root(tmp_path: Path) -> Path:
    """An instance-mask folder dataset ``tmp_path/inst`` (split train) with a background-first classes.txt."""
    from seglab.data.io import write_label

    root, split = tmp_path / "inst", "train"
    (root / "images" / split).mkdir(parents=True)
    (root / "classes.txt").write_text("background\ncircle\nsquare\ntriangle\n")
    rng = np.random.default_rng(0)
    for stem, rects in INSTANCE_RECTS.items():
        image = rng.integers(0, 255, (INSTANCE_H, INSTANCE_W, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / split / f"{stem}.png")
        ids = np.zeros((INSTANCE_H, INSTANCE_W), np.uint8)
        for k, (_, (y0, y1, x0, x1)) in enumerate(rects, 1):
            ids[y0:y1, x0:x1] = k
        write_label(root / "masks" / split / f"{stem}.png", ids)
        (root / "masks" / split / f"{stem}.json").write_text(json.dumps({"labels": [c for c, _ in rects]}))
    return root


@pytest.fixture
def coco_root(mask_root: Path) -> Path:
    """``mask_root`` plus its COCO JSON ``annotations/instances_train.json`` (written by masks_to_coco)."""
    from seglab.data.instance_convert import masks_to_coco

    masks_to_coco(mask_root, "train", mask_root / "annotations" / "instances_train.json")
    return mask_root
