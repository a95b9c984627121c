"""Panoptic pictures: each segment a shade of its class colour with a thin outline.

A class colour alone would paint two touching cars as one blob, and random instance colours would hide which
class each is; shades of the class hue keep both readable. Stuff segments take the class colour itself;
void (id 0) is left uncoloured.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from seglab.errors import DataError
from seglab.viz.colors import ArrayLike, mask_array, to_uint8_image
from seglab.viz.legend import add_legend, class_entries, legend_layout
from seglab.viz.panels import draw_cells, save_figure

OUTLINE = np.array([255, 255, 255], dtype=np.uint8)
VOID = np.array([0, 0, 0], dtype=np.uint8)
# Lighter / darker steps for the 2nd, 3rd, ... instance of a class (the first keeps the class colour).
_SHADES = (0.0, 0.45, -0.4, 0.25, -0.2, 0.6, -0.55, 0.1, -0.1, 0.35, -0.3)

Panoptic = tuple[ArrayLike, Sequence[dict]]  # (segment-id map, segments)


def segment_colors(segments: Sequence[dict], palette: np.ndarray) -> dict[int, np.ndarray]:
    """``{segment id: rgb}``: the k-th thing of a class (in id order) gets the k-th shade of its colour."""
    colors: dict[int, np.ndarray] = {}
    seen: dict[int, int] = {}
    for seg in sorted(segments, key=lambda s: int(s["id"])):
        cat = int(seg["category"])
        base = palette[cat % len(palette)].astype(np.float64)
        k = seen.get(cat, 0)
        seen[cat] = k + 1
        t = _SHADES[k % len(_SHADES)] if seg.get("isthing", True) else 0.0
        shade = base + (255.0 - base) * t if t >= 0 else base * (1.0 + t)
        colors[int(seg["id"])] = np.clip(np.rint(shade), 0, 255).astype(np.uint8)
    return colors


def colorize_panoptic(ids: ArrayLike, segments: Sequence[dict], palette: np.ndarray,
                      outline: bool = True) -> np.ndarray:
    """``(H, W, 3)`` uint8: every segment in its shade, void black, segment borders white (``outline``)."""
    ids = mask_array(ids).astype(np.int64)
    out = np.zeros((*ids.shape, 3), dtype=np.uint8)
    for sid, rgb in segment_colors(segments, palette).items():
        out[ids == sid] = rgb
    if outline:
        out[borders(ids)] = OUTLINE
    return out


def overlay_panoptic(image: ArrayLike, ids: ArrayLike, segments: Sequence[dict], palette: np.ndarray,
                     alpha: float = 0.5) -> np.ndarray:
    """The image with every segment blended in its shade and outlined; void pixels stay as they are."""
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"Expected `alpha` in [0, 1], but got {alpha}.")
    picture = to_uint8_image(image)
    ids = mask_array(ids).astype(np.int64)
    if picture.shape[:2] != ids.shape:
        raise DataError(f"image {picture.shape[:2]} and segment map {ids.shape} differ in size; predict on the "
                        "same image.")
    colored = colorize_panoptic(ids, segments, palette, outline=False)
    labelled = (ids > 0)[..., None]
    mixed = np.where(labelled, (1 - alpha) * picture + alpha * colored, picture)
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    out[borders(ids)] = OUTLINE
    return out


def borders(ids: np.ndarray) -> np.ndarray:
    """Pixels of a labelled segment whose right or lower neighbour belongs to another segment (1 px lines)."""
    edge = np.zeros(ids.shape, dtype=bool)
    right = ids[:, 1:] != ids[:, :-1]
    down = ids[1:, :] != ids[:-1, :]
    edge[:, :-1] |= right
    edge[:-1, :] |= down
    return edge & (ids > 0)


def save_panoptic_panels(path: str | os.PathLike, rows: Sequence[tuple[Any, Panoptic | None, Panoptic]],
                         palette: np.ndarray, class_names: Sequence[str],
                         titles: Sequence[str] | None = None) -> Path:
    """One figure, a row per image: input | truth | prediction, segments drawn by :func:`colorize_panoptic`.

    ``rows`` holds ``(image, (ids, segments) or None, (ids, segments))``. The legend lists the class colours
    (the instances of a class are shades of it).
    """
    if not rows:
        raise DataError(f"{path}: no samples to draw; pass at least one (image, truth, prediction) row.")
    has_truth = any(r[1] is not None for r in rows)
    cols = ["input"] + (["truth"] if has_truth else []) + ["prediction"]
    width = 3.0 * len(cols)
    entries = class_entries(class_names, palette, None)
    layout = legend_layout([name for name, _ in entries], width)
    fig = Figure(figsize=(width, 3.0 * len(rows) + layout.height))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, (image, truth, pred) in enumerate(rows):
        cells = {"input": to_uint8_image(image), "prediction": overlay_panoptic(image, *pred, palette)}
        if truth is not None:
            cells["truth"] = overlay_panoptic(image, *truth, palette)
        n = len(pred[1])
        draw_cells(axes[i], cols, cells, i, titles, {"prediction": lambda t, n=n: f"{t} ({n} segments)".strip()})
    add_legend(fig, entries, layout)
    fig.tight_layout(rect=(0, layout.height / fig.get_figheight(), 1, 1))
    return save_figure(fig, path)
