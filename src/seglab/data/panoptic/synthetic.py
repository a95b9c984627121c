"""Procedural panoptic demo data in seglab's simple panoptic layout: stuff landscapes with shapes on them.

Each image has two or three stuff regions (sky above a wavy horizon; grass and, in most images, water
below it, split by a wavy boundary), each with its own colour and texture, and one to four thing shapes
(circle, square, triangle) in contrasting colours. Shapes may overlap (the later one is on top) but every
instance keeps at least half of its drawn pixels and ``MIN_VISIBLE`` pixels (at 96 px), so no instance is a
sliver. Written as::

    images/<split>/<stem>.png      RGB image
    labels/<split>/<stem>.png      class indices (sky 0, grass 1, water 2, circle 3, square 4, triangle 5)
    instances/<split>/<stem>.png   instance ids 1..n on thing pixels, 0 elsewhere
    classes.txt, panoptic.json ({"things": ["circle", "square", "triangle"]}), palette.txt

Every image is drawn from its own generator seeded by ``(seed, split, index)``: the same seed gives the same
files, and a larger ``n_train`` keeps the earlier images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from seglab.data.io import list_files, write_label
from seglab.data.layout import CLASSES_FILE, PALETTE_FILE, PANOPTIC_FILE
from seglab.errors import ConfigError, DataError
from seglab.fileio import atomic_path, atomic_write_text, check_output_path

__all__ = ["PANOPTIC_CLASSES", "PANOPTIC_THINGS", "make_panoptic"]

PANOPTIC_CLASSES = ("sky", "grass", "water", "circle", "square", "triangle")
PANOPTIC_THINGS = ("circle", "square", "triangle")
SKY, GRASS, WATER = 0, 1, 2
MIN_VISIBLE = 40  # pixels every instance keeps at 96 px (scaled with the image area)
_COLORS = {SKY: (140, 190, 235), GRASS: (70, 150, 55), WATER: (25, 75, 140),
           3: (225, 45, 40), 4: (245, 205, 35), 5: (205, 60, 205)}
_MARKER = ".seglab_synth.json"
_SPLITS = ("train", "val")


def _wave(rng: np.random.Generator, n: int, base: float, amp: float) -> np.ndarray:
    """A smooth random boundary: ``base`` plus two sines of random phase, ``n`` samples."""
    t = np.arange(n) / n * 2 * np.pi
    f1, f2 = rng.uniform(0.5, 1.5), rng.uniform(2.0, 4.0)
    return base + amp * (np.sin(f1 * t + rng.uniform(0, 6.3)) + 0.4 * np.sin(f2 * t + rng.uniform(0, 6.3)))


def _stuff(rng: np.random.Generator, size: int) -> np.ndarray:
    """Class map of the stuff: sky above a wavy horizon, grass and (mostly) water below."""
    yy, xx = np.mgrid[:size, :size]
    label = np.full((size, size), GRASS, np.uint8)
    horizon = _wave(rng, size, rng.uniform(0.25, 0.45) * size, 0.06 * size)
    label[yy < horizon[None, :]] = SKY
    if rng.random() < 0.8:
        shore = _wave(rng, size, rng.uniform(0.3, 0.7) * size, 0.08 * size)
        water = xx > shore[:, None] if rng.random() < 0.5 else xx < shore[:, None]
        label[(label == GRASS) & water] = WATER
    return label


def _texture(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """Paint each stuff class with its colour and texture: sky a vertical gradient, grass streaks, water
    ripples (float image)."""
    size = label.shape[0]
    yy, xx = np.mgrid[:size, :size] / size
    image = np.zeros((size, size, 3), np.float32)
    shade = {SKY: 40 * (yy - 0.3),
             GRASS: 14 * rng.normal(0, 1, (1, size)).repeat(size, 0) + 8 * rng.normal(0, 1, (size, size)),
             WATER: 18 * np.sin(2 * np.pi * (yy * rng.uniform(6, 10) + 0.3 * np.sin(2 * np.pi * xx * 2)))}
    for c, s in shade.items():
        color = np.array(_COLORS[c], np.float32) + rng.uniform(-12, 12, 3)
        image[label == c] = color + s[label == c][:, None]
    return image


def _shape(kind: int, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    im = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(im)
    if kind == 3:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif kind == 4:
        draw.rectangle([cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r], fill=1)
    else:
        t = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
        draw.polygon(list(zip(cx + 1.2 * r * np.cos(t), cy + 1.2 * r * np.sin(t), strict=True)), fill=1)
    return np.asarray(im, dtype=bool)


def _paste(inst: np.ndarray, mask: np.ndarray, areas: list[int], min_px: int) -> bool:
    """Draw ``mask`` as the next instance unless it would leave an earlier one under half or ``min_px``."""
    if mask.sum() < min_px:
        return False
    for k in np.unique(inst[mask]):
        left = int(((inst == k) & ~mask).sum())
        if k and (left < 0.5 * areas[k - 1] or left < min_px):
            return False
    areas.append(int(mask.sum()))
    inst[mask] = len(areas)
    return True


def draw_panoptic(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: ``(image uint8 (H, W, 3), class indices uint8 (H, W), instance ids uint8 (H, W))``."""
    label = _stuff(rng, size)
    image = _texture(rng, label)
    inst = np.zeros((size, size), np.uint8)
    kinds: list[int] = []
    areas: list[int] = []
    min_px = max(4, round(MIN_VISIBLE * (size / 96) ** 2))
    for _ in range(int(rng.integers(1, 5))):
        kind, r = int(rng.integers(3, 6)), rng.uniform(7, 16) * size / 96
        for _try in range(10):
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
            if _paste(inst, _shape(kind, size, cx, cy, r, rng.uniform(0, 2 * np.pi)), areas, min_px):
                kinds.append(kind)
                break
    for k, kind in enumerate(kinds, 1):
        label[inst == k] = kind
        image[inst == k] = np.array(_COLORS[kind]) + rng.uniform(-20, 20, 3)
    image += rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), label, inst


def _prepare(root: Path, counts: dict[str, int], size: int) -> None:
    for name, n in counts.items():
        if n < 0:
            raise ConfigError(f"{name}: expected a count >= 0, got {n}.")
    if size < 32:
        raise ConfigError(f"size: panoptic images need at least 32 px, got {size}.")
    check_output_path(root, directory=True)
    if root.exists() and any(root.iterdir()) and not (root / _MARKER).is_file():
        raise DataError(f"{root}: folder exists and was not made by `seglab data synth`; refusing to write "
                        "into it. Pass an empty or new --out folder.")


def _write(root: Path, split: str, stem: str, sample: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, label, inst = sample
    with atomic_path(root / "images" / split / f"{stem}.png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    write_label(root / "labels" / split / f"{stem}.png", label)
    write_label(root / "instances" / split / f"{stem}.png", inst)


def make_panoptic(out: str | os.PathLike, n_train: int = 200, n_val: int = 50, size: int = 96, seed: int = 0,
                  callback: Callable[[int, int], None] | None = None) -> Path:
    """Write the panoptic demo dataset (3 stuff classes, 3 thing classes) to ``out`` in the simple layout.

    ``callback(done, total)`` follows each image written (both splits). Files of an earlier, larger run in
    the same folder are removed so every split stays paired.

    Returns:
        The dataset root ``out``.

    Raises:
        ConfigError: a negative count or ``size`` under 32.
        DataError: ``out`` holds files not written by ``seglab data synth``.
    """
    root = Path(out)
    counts = {"train": n_train, "val": n_val}
    _prepare(root, {"n_train": n_train, "n_val": n_val}, size)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / _MARKER, json.dumps({"kind": "panoptic", "seed": seed, "size": size, **counts}) + "\n")
    done, total = 0, n_train + n_val
    for s, split in enumerate(_SPLITS):
        stems = set()
        for i in range(counts[split]):
            stem = f"panoptic_{split}_{i:05d}"
            _write(root, split, stem, draw_panoptic(np.random.default_rng([seed, s, i]), size))
            stems.add(stem)
            done += 1
            if callback is not None:
                callback(done, total)
        for sub in ("images", "labels", "instances"):  # an earlier, larger run's files
            for p in list_files(root / sub / split, (".png",)):
                if p.stem.startswith(f"panoptic_{split}_") and p.stem not in stems:
                    p.unlink()
    atomic_write_text(root / CLASSES_FILE, "\n".join(PANOPTIC_CLASSES) + "\n")
    atomic_write_text(root / PANOPTIC_FILE, json.dumps({"things": list(PANOPTIC_THINGS)}) + "\n")
    atomic_write_text(root / PALETTE_FILE, "".join(f"{r} {g} {b}\n" for r, g, b in _COLORS.values()))
    return root
