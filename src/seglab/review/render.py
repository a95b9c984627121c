"""The pictures of a review page: a small thumbnail per image (always loaded) and its panel (loaded only when
the panel opens), so a 1,000-image page stays light.

An image's panel is two files: the photo (JPEG) and one palette PNG holding its label layers side by side
(truth | prediction | error map | confidence), one byte per pixel: flat label areas compress fast and small at
zlib level 1, and fewer files matter (creating a file costs milliseconds on a busy disk). The page shows each
layer as a background crop of that strip. The shared 256-colour palette: the classes' colours from index 0
(the first :data:`MAX_CLASSES`), the error codes, :data:`CONF_LEVELS` viridis steps of confidence, and magenta
(255) for ignored pixels and for no class. Error codes: correct (transparent), wrong (red), wrong at confidence
>= 0.9 (yellow: a suspected label error or a confident model mistake), ignored (magenta).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.errors import OutputError
from seglab.fileio import describe_os_error
from seglab.review.rows import Sample
from seglab.review.stats import CONFIDENT
from seglab.viz.colors import ERROR_COLORS, IGNORE_COLOR

THUMB_SIDE = 160
PANEL_SIDE = 640
MAX_CLASSES = 200  # classes past this show white (out of range) in the pictures; the numbers are unaffected
CORRECT, WRONG, CONFIDENT_WRONG = MAX_CLASSES, MAX_CLASSES + 1, MAX_CLASSES + 2  # palette indices
CONF_BASE, CONF_LEVELS = MAX_CLASSES + 4, 48
MAGENTA = 255
CONFIDENT_COLOR = (255, 220, 0)


def strip_palette(palette: np.ndarray) -> list[int]:
    """The 256 colours of the panel strips (see the module docstring)."""
    from matplotlib import colormaps

    lut = np.full((256, 3), 255, dtype=np.uint8)  # white: a value outside the classes, as elsewhere
    n = min(len(palette), MAX_CLASSES)
    lut[:n] = palette[:n]
    lut[CORRECT], lut[WRONG], lut[CONFIDENT_WRONG] = (0, 0, 0), ERROR_COLORS["wrong"], CONFIDENT_COLOR
    viridis = colormaps["viridis"](np.linspace(0, 1, CONF_LEVELS))[:, :3]
    lut[CONF_BASE:CONF_BASE + CONF_LEVELS] = (viridis * 255).round().astype(np.uint8)
    lut[MAGENTA] = IGNORE_COLOR
    return lut.ravel().tolist()


def label_bytes(labels: np.ndarray, ignore_index: int) -> np.ndarray:
    """Class indices as strip bytes: ignored / no class magenta, classes past :data:`MAX_CLASSES` white."""
    out = np.where(labels < MAX_CLASSES, labels, CONF_BASE + CONF_LEVELS).astype(np.uint8)  # past: white
    out[labels == ignore_index] = MAGENTA
    return out


def error_bytes(truth: np.ndarray, pred: np.ndarray, confidence: np.ndarray | None,
                ignore_index: int) -> np.ndarray:
    """The error layer: :data:`CORRECT`, :data:`WRONG`, :data:`CONFIDENT_WRONG` or magenta (ignored)."""
    wrong = pred != truth
    codes = np.where(wrong, WRONG, CORRECT).astype(np.uint8)
    if confidence is not None:
        codes[wrong & (confidence >= CONFIDENT)] = CONFIDENT_WRONG
    codes[truth == ignore_index] = MAGENTA
    return codes


class Painter:
    """Writes the pictures of each reviewed image into ``out`` (``thumbs/``, ``panels/``).

    ``panel_side`` caps the panel's long side (nearest-neighbour sampling: no blended classes; a panel tile is
    a fifth of the screen wide, so 640 px is sharp). Encoding runs on a few threads (Pillow's encoders release
    the GIL); :meth:`close` waits for the last files and raises any write error.
    """

    def __init__(self, out: Path, palette: np.ndarray, ignore_index: int, panel_side: int = PANEL_SIDE) -> None:
        self.out, self.ignore_index, self.panel_side = out, ignore_index, panel_side
        (out / "thumbs").mkdir(parents=True, exist_ok=True)
        (out / "panels").mkdir(parents=True, exist_ok=True)
        self.palette = strip_palette(palette)
        self.transparency = bytes(0 if v == CORRECT else 255 for v in range(256))
        self.workers = min(4, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="review-png")
        self.pending: deque[Future] = deque()

    def close(self) -> None:
        """Wait for every file; the first write error is raised (as :class:`~seglab.errors.OutputError`)."""
        try:
            while self.pending:
                self._wait_one()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _wait_one(self) -> None:
        try:
            self.pending.popleft().result()
        except OSError as e:
            raise OutputError(f"{e.filename or self.out}: cannot write a review picture ({describe_os_error(e)})."
                              " Free space or choose another --out.") from e

    def _submit(self, fn: Callable[..., None], *args: object) -> None:
        while len(self.pending) >= 8 * self.workers:  # bounded memory: a few images in flight
            self._wait_one()
        self.pending.append(self.pool.submit(fn, *args))

    def write(self, index: int, sample: Sample) -> dict[str, str | int]:
        """Write image ``index``'s thumbnail, photo and layer strip; returns their paths (relative to ``out``)
        and the strip's number of layers."""
        h, w = sample.truth.shape
        rows, cols = _grid(h, w, self.panel_side)
        truth, pred = _pick(sample.truth, rows, cols), _pick(sample.pred, rows, cols)
        conf = None if sample.confidence is None else _pick(sample.confidence, rows, cols)
        layers = [label_bytes(truth, self.ignore_index), label_bytes(pred, self.ignore_index),
                  error_bytes(truth, pred, conf, self.ignore_index)]
        if conf is not None:
            layers.append((CONF_BASE + np.clip(conf * CONF_LEVELS, 0, CONF_LEVELS - 1)).astype(np.uint8))
        name = f"{index:05d}"
        files: dict[str, str | int] = {"thumb": f"thumbs/{name}.jpg", "image": f"panels/{name}.jpg",
                                       "layers": f"panels/{name}.png", "count": len(layers)}
        photo = _shrink(sample.image, len(rows), len(cols))
        self._submit(self._thumb, photo, layers[2], files["thumb"])
        self._submit(self._save, Image.fromarray(np.ascontiguousarray(photo)), files["image"], {"quality": 85})
        strip = Image.fromarray(np.concatenate(layers, axis=1), "P")
        strip.putpalette(self.palette)
        self._submit(self._save, strip, files["layers"], {"compress_level": 1, "transparency": self.transparency})
        return files

    def _save(self, image: Image.Image, rel: str, options: dict) -> None:
        image.save(self.out / rel, **options)

    def _thumb(self, photo: np.ndarray, codes: np.ndarray, rel: str) -> None:
        """The photo, dimmed, with wrong pixels red and confidently wrong ones yellow."""
        rows, cols = _grid(*codes.shape, THUMB_SIDE)
        small = _shrink(photo, len(rows), len(cols)).astype(np.float32) * 0.6
        c = _pick(codes, rows, cols)
        small[c == WRONG] = ERROR_COLORS["wrong"]
        small[c == CONFIDENT_WRONG] = CONFIDENT_COLOR
        Image.fromarray(small.astype(np.uint8)).save(self.out / rel, quality=80)


def _grid(h: int, w: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices sampling an ``h`` x ``w`` picture down to ``side`` on its long side."""
    scale = min(1.0, side / max(h, w))
    nh, nw = max(1, math.floor(h * scale + 0.5)), max(1, math.floor(w * scale + 0.5))
    return ((np.arange(nh) + 0.5) * h / nh).astype(np.int64), ((np.arange(nw) + 0.5) * w / nw).astype(np.int64)


def _shrink(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 photo at ``h`` x ``w`` (Pillow's nearest: many times faster than its filters or a
    numpy gather here, and a review tile needs no smoothing)."""
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.NEAREST))


def _pick(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Nearest-neighbour sampling (rows first: a row gather is a copy of whole rows)."""
    if len(rows) == values.shape[0] and len(cols) == values.shape[1]:
        return values
    return values[rows][:, cols]
