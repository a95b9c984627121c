"""The pictures of a review page: a small thumbnail per image (always loaded) and the five layers of its panel
(loaded only when the panel opens), so a 1,000-image page stays light.

Label maps are written as palette PNGs (one byte per pixel, the run's palette, ignore in magenta) at zlib
level 1: they are large flat areas, so this is fast and small; the photo is a JPEG. The error map holds four
codes: correct (transparent), wrong (red), wrong at confidence >= 0.9 (yellow: a suspected label error or a
confident model mistake) and ignored (magenta).
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
CORRECT, WRONG, CONFIDENT_WRONG, IGNORED = 0, 1, 2, 3
ERROR_PALETTE = [(0, 0, 0), ERROR_COLORS["wrong"], (255, 220, 0), IGNORE_COLOR]


def error_codes(sample: Sample, ignore_index: int) -> np.ndarray:
    """``(H, W)`` uint8 of :data:`CORRECT` / :data:`WRONG` / :data:`CONFIDENT_WRONG` / :data:`IGNORED`."""
    codes = (sample.pred != sample.truth).astype(np.uint8)
    if sample.confidence is not None:
        codes[(codes == WRONG) & (sample.confidence >= CONFIDENT)] = CONFIDENT_WRONG
    codes[sample.truth == ignore_index] = IGNORED
    return codes


def _label_palette(palette: np.ndarray) -> list[int]:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:] = (255, 255, 255)  # values outside the classes show white, as elsewhere
    lut[: min(len(palette), 255)] = palette[:255]
    lut[255] = IGNORE_COLOR
    return lut.ravel().tolist()


def _confidence_palette() -> list[int]:
    from matplotlib import colormaps

    return (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8).ravel().tolist()


class Painter:
    """Writes the pictures of each reviewed image into ``out`` (``thumbs/``, ``panels/``).

    ``panel_side`` caps the panel layers' long side (nearest-neighbour for label maps: no blended classes; a
    panel tile is shown at a fifth of the screen's width, so 640 px is sharp). Encoding runs on a few threads
    (Pillow's encoders release the GIL); :meth:`close` waits for the last files and raises any write error.
    """

    def __init__(self, out: Path, palette: np.ndarray, ignore_index: int, panel_side: int = PANEL_SIDE) -> None:
        self.out, self.ignore_index, self.panel_side = out, ignore_index, panel_side
        (out / "thumbs").mkdir(parents=True, exist_ok=True)
        (out / "panels").mkdir(parents=True, exist_ok=True)
        self.labels = _label_palette(palette)
        self.errors = np.array(ERROR_PALETTE + [(0, 0, 0)] * 252, dtype=np.uint8).ravel().tolist()
        self.confidence = _confidence_palette()
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

    def write(self, index: int, sample: Sample) -> dict[str, str]:
        """Write image ``index``'s thumbnail and panel layers; returns their paths relative to ``out``."""
        codes = error_codes(sample, self.ignore_index)
        h, w = sample.truth.shape
        name = f"{index:05d}"
        files = {"thumb": f"thumbs/{name}.jpg", "image": f"panels/{name}.jpg", "truth": f"panels/{name}_truth.png",
                 "pred": f"panels/{name}_pred.png", "error": f"panels/{name}_error.png"}
        self._submit(self._thumb, sample.image, codes, files["thumb"])
        rows, cols = _grid(h, w, self.panel_side)
        self._submit(self._jpeg, sample.image, files["image"])
        self._submit(self._palette_png, _pick(sample.truth, rows, cols), self.labels, files["truth"])
        self._submit(self._palette_png, _pick(sample.pred, rows, cols), self.labels, files["pred"])
        self._submit(self._palette_png, _pick(codes, rows, cols), self.errors, files["error"], CORRECT)
        if sample.confidence is not None:
            files["conf"] = f"panels/{name}_conf.png"
            conf = np.clip(_pick(sample.confidence, rows, cols) * 255 + 0.5, 0, 255).astype(np.uint8)
            self._submit(self._palette_png, conf, self.confidence, files["conf"])
        return files

    def _jpeg(self, image: np.ndarray, rel: str) -> None:
        pic = Image.fromarray(image)
        rows, cols = _grid(*image.shape[:2], self.panel_side)
        if len(rows) != image.shape[0]:
            pic = pic.resize((len(cols), len(rows)), Image.BILINEAR)
        pic.save(self.out / rel, quality=85)

    def _palette_png(self, values: np.ndarray, palette: list[int], rel: str, transparent: int | None = None) -> None:
        im = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "P")
        im.putpalette(palette)
        extra = {"transparency": bytes(0 if v == transparent else 255 for v in range(256))} \
            if transparent is not None else {}
        im.save(self.out / rel, compress_level=1, **extra)

    def _thumb(self, image: np.ndarray, codes: np.ndarray, rel: str) -> None:
        """The photo, dimmed, with wrong pixels red and confidently wrong ones yellow."""
        h, w = codes.shape
        rows, cols = _grid(h, w, THUMB_SIDE)
        small = _pick(image, rows, cols).astype(np.float32) * 0.6
        c = _pick(codes, rows, cols)
        for code in (WRONG, CONFIDENT_WRONG):
            small[c == code] = ERROR_PALETTE[code]
        Image.fromarray(small.astype(np.uint8)).save(self.out / rel, quality=80)


def _grid(h: int, w: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices sampling an ``h`` x ``w`` picture down to ``side`` on its long side."""
    scale = min(1.0, side / max(h, w))
    nh, nw = max(1, math.floor(h * scale + 0.5)), max(1, math.floor(w * scale + 0.5))
    return ((np.arange(nh) + 0.5) * h / nh).astype(np.int64), ((np.arange(nw) + 0.5) * w / nw).astype(np.int64)


def _pick(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if len(rows) == values.shape[0] and len(cols) == values.shape[1]:
        return values
    return values[rows[:, None], cols[None, :]]
