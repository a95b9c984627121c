"""Procedural demo datasets: ``shapes`` (circles/squares/triangles) and ``digits`` (two digits per image).

Both are written in every layout seglab reads, so one folder serves the semantic and the instance task::

    images/<split>/<stem>.png       RGB image
    labels/<split>/<stem>.png       semantic class indices (0 = background)
    masks/<split>/<stem>.png        instance ids (0 = background, k = instance k)
    masks/<split>/<stem>.json       {"labels": [c_1, ..., c_n]}: class of instance k (= semantic index)
    annotations/instances_<split>.json   COCO: RLE masks, xywh boxes, categories 1.. named as classes.txt
    classes.txt, palette.txt

Each image is drawn from its own generator seeded by ``(seed, split, index)``, so output is identical for a
seed and growing ``n_train`` keeps the earlier images. Objects may overlap (the later one wins) but every
instance keeps at least half of its pixels visible, so instance masks are never slivers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from seglab.data.io import list_files, write_label
from seglab.data.layout import CLASSES_FILE, PALETTE_FILE
from seglab.data.rle import encode_mask
from seglab.errors import ConfigError, DataError
from seglab.fileio import atomic_path, atomic_write_text, check_output_path

__all__ = ["SHAPE_CLASSES", "DIGIT_CLASSES", "make_shapes", "make_digits"]
Callback = Callable[[int, int], None]

SHAPE_CLASSES = ("background", "circle", "square", "triangle")
DIGIT_CLASSES = ("background", *"0123456789")
_PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))
_MARKER = ".seglab_synth.json"
_SPLITS = ("train", "val")

# A drawer gets (rng, size) and returns (image HxWx3 uint8, instance ids HxW, class of each instance).
Drawer = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray, list[int]]]


def _background(rng: np.random.Generator, size: int, tint: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A flat random color plus smooth low-frequency blotches (texture); returns (image float, base color).

    With ``tint`` the color is a random gray shifted by at most ``tint`` per channel (a muted background
    that never shares a shape class's saturated hue).
    """
    if tint is None:
        base = rng.uniform(30, 225, size=3)
    else:
        base = np.clip(rng.uniform(40, 215) + rng.uniform(-tint, tint, size=3), 0, 255)
    coarse = rng.normal(0, 1, size=(4, 4, 3)).astype(np.float32)
    blotch = np.stack([np.asarray(Image.fromarray(coarse[..., c], mode="F").resize((size, size),
                       Image.BILINEAR)) for c in range(3)], axis=-1)
    return base + 18.0 * blotch, base


def _contrasting(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A random color far from ``base`` in RGB and in brightness, so objects stand out from the background."""
    color = rng.uniform(0, 255, size=3)
    for _ in range(100):
        if np.linalg.norm(color - base) >= 120 and abs(color.mean() - base.mean()) >= 40:
            break
        color = rng.uniform(0, 255, size=3)
    return color


def _paste(inst: np.ndarray, mask: np.ndarray, areas: list[int], min_visible: float = 0.5) -> bool:
    """Draw ``mask`` as instance ``len(areas) + 1`` on top, unless it would hide over half of an earlier one.

    ``areas[k - 1]`` is the drawn (unoccluded) area of instance ``k``; it grows by one on success.
    """
    for k in np.unique(inst[mask]):
        if k and (inst == k).sum() - (mask & (inst == k)).sum() < min_visible * areas[k - 1]:
            return False
    areas.append(int(mask.sum()))
    inst[mask] = len(areas)
    return True


def _finish(rng: np.random.Generator, canvas: np.ndarray, inst: np.ndarray,
            colors: list[np.ndarray]) -> np.ndarray:
    for k, color in enumerate(colors, 1):
        canvas[inst == k] = color + rng.normal(0, 6, size=3)  # slight per-object shading
    canvas += rng.normal(0, 7, size=canvas.shape)  # mild sensor noise
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def _shape_mask(kind: int, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    im = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(im)
    if kind == 1:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif kind == 2:
        h = 0.85 * r  # half side: a square of about the same area as the circle
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=1)
    else:
        t = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
        draw.polygon(list(zip(cx + 1.2 * r * np.cos(t), cy + 1.2 * r * np.sin(t), strict=True)), fill=1)
    return np.asarray(im, dtype=bool)


# Each shape class has its own hue family (circle warm, square green, triangle blue-violet) with random
# saturation and brightness, on a muted textured background. Shape *and* color carry the class, as in most
# real data; with colors fully random a small U-Net needs many minutes to learn geometry alone, which
# defeats a 3-minute CPU demo.
_SHAPE_HUES = {1: (0.0, 0.10), 2: (0.25, 0.42), 3: (0.58, 0.78)}


def _class_color(rng: np.random.Generator, kind: int, base: np.ndarray) -> np.ndarray:
    """A saturated color of ``kind``'s hue family that stands out from ``base``."""
    import colorsys

    lo, hi = _SHAPE_HUES[kind]
    for _ in range(100):
        rgb = 255 * np.array(colorsys.hsv_to_rgb(rng.uniform(lo, hi), rng.uniform(0.6, 1.0), rng.uniform(0.45, 1.0)))
        if np.linalg.norm(rgb - base) >= 100:
            break
    return rgb


def _draw_shapes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    canvas, base = _background(rng, size, tint=25.0)
    inst = np.zeros((size, size), np.int32)
    labels, colors, areas = [], [], []
    scale = size / 96
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(1, 4))
        r = rng.uniform(6, 20) * scale  # diameters of roughly 12-40 px at 96 px
        color = _class_color(rng, kind, base)
        for _try in range(10):
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
            m = _shape_mask(kind, size, cx, cy, r, rng.uniform(0, 2 * np.pi))
            if m.any() and _paste(inst, m, areas):
                labels.append(kind)
                colors.append(color)
                break
    return _finish(rng, canvas, inst, colors), inst, labels


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _digit_mask(rng: np.random.Generator, digit: int, size: int, cx: float, cy: float) -> np.ndarray:
    """Render ``digit`` (default font, random size, stroke and tilt) centred at (cx, cy)."""
    px = int(rng.uniform(0.42, 0.55) * size)
    tile = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(tile)
    draw.text((size / 2, size / 2), str(digit), fill=255, font=_font(px), anchor="mm",
              stroke_width=int(rng.integers(1, 3)), stroke_fill=255)
    tile = tile.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR)
    if tile.getbbox() is None or tile.getbbox()[3] - tile.getbbox()[1] < size // 8:  # bitmap fallback font
        tile = tile.crop(tile.getbbox() or (0, 0, 1, 1)).resize((px // 2, px), Image.NEAREST)
    out = Image.new("L", (size, size), 0)
    out.paste(tile, (int(cx - tile.width / 2), int(cy - tile.height / 2)))
    return np.asarray(out) > 127


def _draw_digits(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    canvas, base = _background(rng, size)
    inst = np.zeros((size, size), np.int32)
    labels, colors, areas = [], [], []
    for slot in (0.28, 0.72):  # one digit in each half, jittered, like two-digit MNIST compositions
        digit = int(rng.integers(0, 10))
        for _try in range(10):
            cx = (slot + rng.uniform(-0.08, 0.08)) * size
            cy = rng.uniform(0.35, 0.65) * size
            m = _digit_mask(rng, digit, size, cx, cy)
            if m.sum() >= 8 and _paste(inst, m, areas):
                labels.append(digit + 1)
                colors.append(_contrasting(rng, base))
                break
    return _finish(rng, canvas, inst, colors), inst, labels


def _coco_annotations(inst: np.ndarray, labels: list[int], image_id: int, next_id: int) -> list[dict]:
    anns = []
    for k, cat in enumerate(labels, 1):
        m = inst == k
        ys, xs = np.nonzero(m)
        x0, y0 = int(xs.min()), int(ys.min())
        anns.append({"id": next_id + k - 1, "image_id": image_id, "category_id": int(cat),
                     "segmentation": encode_mask(m),
                     "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                     "area": int(m.sum()), "iscrowd": 0})
    return anns


def _write_sample(root: Path, split: str, stem: str,
                  sample: tuple[np.ndarray, np.ndarray, list[int]]) -> None:
    image, inst, labels = sample
    with atomic_path(root / "images" / split / f"{stem}.png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    write_label(root / "labels" / split / f"{stem}.png", np.array([0, *labels])[inst])
    write_label(root / "masks" / split / f"{stem}.png", inst)
    atomic_write_text(root / "masks" / split / f"{stem}.json", json.dumps({"labels": labels}) + "\n")


def _prepare(out: Path, kind: str, counts: dict[str, int], size: int, min_size: int) -> None:
    for name, n in counts.items():
        if n < 0:
            raise ConfigError(f"{name}: expected a count >= 0, got {n}.")
    if size < min_size:
        raise ConfigError(f"size: {kind} images need at least {min_size} px, got {size}.")
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).is_file():
        raise DataError(f"{out}: folder exists and was not made by `seglab data synth`; refusing to write "
                        "into it. Pass an empty or new --out folder.")


def _remove_stale(root: Path, split: str, prefix: str, stems: set[str]) -> None:
    """Delete files of an earlier, larger synth run in the same folder so images and labels stay paired."""
    for sub in ("images", "labels", "masks"):
        for p in list_files(root / sub / split, (".png", ".json")):
            if p.stem.startswith(prefix) and p.stem not in stems:
                p.unlink()


def _make(out: str | os.PathLike, kind: str, classes: tuple[str, ...], draw: Drawer,
          counts: dict[str, int], size: int, seed: int, callback: Callback | None) -> Path:
    root = Path(out)
    check_output_path(root, directory=True)
    _prepare(root, kind, {"n_train": counts["train"], "n_val": counts["val"]}, size, 32)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / _MARKER, json.dumps({"kind": kind, "seed": seed, "size": size, **counts}) + "\n")
    categories = [{"id": c, "name": name, "supercategory": kind} for c, name in enumerate(classes) if c]
    done, total = 0, sum(counts[split] for split in _SPLITS)
    for s, split in enumerate(_SPLITS):
        images, anns, stems = [], [], set()
        for i in range(counts[split]):
            stem = f"{kind}_{split}_{i:05d}"
            sample = draw(np.random.default_rng([seed, s, i]), size)
            _write_sample(root, split, stem, sample)
            images.append({"id": i + 1, "file_name": f"{stem}.png", "width": size, "height": size})
            anns += _coco_annotations(sample[1], sample[2], i + 1, len(anns) + 1)
            stems.add(stem)
            done += 1
            if callback is not None:
                callback(done, total)
        _remove_stale(root, split, f"{kind}_{split}_", stems)
        coco = {"info": {"description": f"seglab synthetic {kind}, seed {seed}"}, "images": images,
                "annotations": anns, "categories": categories}
        atomic_write_text(root / "annotations" / f"instances_{split}.json", json.dumps(coco) + "\n")
    atomic_write_text(root / CLASSES_FILE, "\n".join(classes) + "\n")
    atomic_write_text(root / PALETTE_FILE, "".join(f"{r} {g} {b}\n" for r, g, b in _PALETTE[: len(classes)]))
    return root


def make_shapes(out: str | os.PathLike, n_train: int = 200, n_val: int = 50, size: int = 96, seed: int = 0,
                callback: Callback | None = None) -> Path:
    """Write the ``shapes`` dataset (background, circle, square, triangle; 1-4 shapes per image) to ``out``.

    Shapes are 12-40 px across at 96 px (scaled with ``size``), colored to contrast with a textured
    background, with mild noise: easy enough for a small U-Net to pass 0.9 mIoU in minutes on a CPU.

    ``callback(done, total)`` follows each image written (both splits).

    Returns:
        The dataset root ``out``.
    """
    return _make(out, "shapes", SHAPE_CLASSES, _draw_shapes, {"train": n_train, "val": n_val}, size, seed,
                 callback)


def make_digits(out: str | os.PathLike, n_train: int = 500, n_val: int = 100, size: int = 64, seed: int = 0,
                callback: Callback | None = None) -> Path:
    """Write the ``digits`` dataset: ``size`` px RGB images holding two rendered digits each.

    11 classes: background and "0".."9" (class ``d + 1`` is digit ``d``); digits are drawn with Pillow's
    built-in font at random size, stroke and tilt (nothing is downloaded). ``callback`` as in
    :func:`make_shapes`.

    Returns:
        The dataset root ``out``.
    """
    return _make(out, "digits", DIGIT_CLASSES, _draw_digits, {"train": n_train, "val": n_val}, size, seed,
                 callback)
