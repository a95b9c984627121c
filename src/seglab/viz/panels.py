"""Figures of predictions: input | truth | prediction | error panels, and instance overlays and panels."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from seglab.errors import DataError
from seglab.fileio import atomic_path
from seglab.viz.colors import (
    ArrayLike,
    colorize,
    default_palette,
    error_map,
    mask_array,
    overlay,
    to_uint8_image,
)
from seglab.viz.legend import add_legend, class_entries, legend_layout


def save_panels(path: str | os.PathLike, rows: Sequence[tuple[Any, Any, Any]], palette: np.ndarray,
                class_names: Sequence[str] | None = None, ignore_index: int = 255,
                with_error: bool = True, titles: Sequence[str] | None = None) -> Path:
    """Save one figure with a row per sample: input | truth | prediction | error.

    Looking at predictions beside the truth catches what a single number hides (shifted masks,
    a class never predicted, label noise). ``rows`` holds ``(image, truth or None, prediction)``;
    ``image`` is uint8 ``(H, W, 3)`` or float ``(C, H, W)`` in [0, 1] (denormalize with
    :func:`to_uint8_image` first). Rows without truth leave the truth and error cells empty. The
    legend under the panels lists every class (and ``ignore (<index>)`` where a mask holds it), in as
    many rows as it needs.
    """
    if not rows:
        raise DataError(f"{path}: no samples to draw; pass at least one (image, truth, prediction) row.")
    return save_figure(panels_figure(rows, palette, class_names, ignore_index, with_error, titles), path)


def panels_figure(rows: Sequence[tuple[Any, Any, Any]], palette: np.ndarray,
                  class_names: Sequence[str] | None = None, ignore_index: int = 255,
                  with_error: bool = True, titles: Sequence[str] | None = None) -> Figure:
    """The figure :func:`save_panels` writes (for callers that add to it, and for tests of its legend)."""
    if not rows:
        raise DataError("no samples to draw; pass at least one (image, truth, prediction) row.")
    has_truth = any(r[1] is not None for r in rows)
    cols = ["input"] + (["truth"] if has_truth else []) + ["prediction"]
    cols += ["error"] if has_truth and with_error else []
    width = 3.0 * len(cols)
    entries, layout = [], None
    if class_names:
        shown = any(has_label(m, ignore_index) for r in rows for m in r[1:] if m is not None)
        entries = class_entries(class_names, palette, ignore_index if shown else None)
        layout = legend_layout([name for name, _ in entries], width)
    band = layout.height if layout else 0.0
    fig = Figure(figsize=(width, 3.0 * len(rows) + band))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, (image, truth, pred) in enumerate(rows):
        cells = {"input": to_uint8_image(image), "prediction": colorize(pred, palette, ignore_index)}
        if truth is not None:
            cells["truth"] = colorize(truth, palette, ignore_index)
            cells["error"] = error_map(truth, pred, ignore_index)
        error = f"error {error_rate(truth, pred, ignore_index):.1%}" if truth is not None else ""
        draw_cells(axes[i], cols, cells, i, titles, {"error": lambda _, e=error: e} if truth is not None else {})
    if layout is not None:
        add_legend(fig, entries, layout)
    fig.tight_layout(rect=(0, band / fig.get_figheight(), 1, 1))
    return fig


def draw_cells(axes_row: Sequence[Any], cols: Sequence[str], cells: dict[str, np.ndarray], row: int,
               titles: Sequence[str] | None, retitle: dict[str, Callable[[str], str]] | None = None) -> None:
    """One figure row: each column's picture (when the row has one) and title. Row 0 names the columns, the
    input cell shows ``titles[row]``, and ``retitle[column](title)`` rewrites a column's title."""
    for j, name in enumerate(cols):
        ax = axes_row[j]
        ax.set_axis_off()
        if name in cells:
            ax.imshow(cells[name], interpolation="nearest")
        title = name if row == 0 else ""
        if name == "input" and titles is not None and row < len(titles):
            title = titles[row]
        if retitle and name in retitle:
            title = retitle[name](title)
        ax.set_title(title, fontsize=9)


def has_label(mask: ArrayLike, value: int | None) -> bool:
    """Whether ``mask`` holds ``value`` anywhere (``None``: never)."""
    return value is not None and bool((mask_array(mask) == value).any())


def error_rate(truth: ArrayLike, pred: ArrayLike, ignore_index: int | None) -> float:
    t, p = mask_array(truth), mask_array(pred)
    valid = t != ignore_index if ignore_index is not None else np.ones(t.shape, dtype=bool)
    n = int(valid.sum())
    return float(((t != p) & valid).sum()) / n if n else 0.0


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    return path


def instance_ids(masks: ArrayLike, scores: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paint binary instance masks into one id map: 0 = background, 1..M = instances.

    Where masks overlap, the higher-scoring instance wins (the first one without ``scores``). An
    instance left with no pixel is dropped, so the ids are exactly 1..M, the instance-mask folder
    contract (``masks/<split>/<stem>.png``).

    Returns:
        ``(ids (H, W) int64, kept)``: ``kept[k - 1]`` is the input index of instance id ``k``.
    """
    from seglab.runtime.instance import instance_ids as paint  # the numpy rule the torch-free runtime shares

    m = torch.as_tensor(masks).bool().cpu().numpy()
    if m.ndim != 3:
        raise DataError(f"Expected instance masks of shape (N, H, W), but got shape {m.shape}.")
    return paint(m, None if scores is None else torch.as_tensor(scores).float().cpu().numpy())


def save_instance_overlay(path: str | os.PathLike, image: ArrayLike, instances: dict[str, Any],
                          class_names: Sequence[str], alpha: float = 0.55) -> Path:
    """Save ``image`` with each instance in its own colour, labelled "class score".

    The picture keeps its size, enlarged by a whole factor when its long side is under 512 px so that
    the labels stay readable.
    """
    picture = to_uint8_image(image)
    h, w = picture.shape[:2]
    zoom = max(1, 512 // max(h, w))
    fig = Figure(figsize=(w * zoom / 100, h * zoom / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    draw_instances(ax, picture, instances, class_names, alpha)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    return save_figure(fig, path)


def save_instance_panels(path: str | os.PathLike, rows: Sequence[tuple[Any, dict | None, dict | None]],
                         class_names: Sequence[str], titles: Sequence[str] | None = None) -> Path:
    """Save a truth | prediction figure, one row per image, instances coloured and labelled.

    Args:
        path: output image file (written atomically).
        rows: ``(image (3, H, W) float [0, 1] or (H, W, 3) uint8, truth, prediction)``; truth/prediction
            dicts hold ``masks`` (N, H, W) binary, ``labels`` (N,) contiguous, ``boxes`` (N, 4) XYXY and for
            predictions ``scores`` (N,). A ``None`` truth shows the plain input instead.
        class_names: name of each contiguous label (index 0 = background).
        titles: optional row titles.
    """
    fig = Figure(figsize=(6.0, 3.0 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for r, (image, truth, pred) in enumerate(rows):
        picture = to_uint8_image(image)
        cells = (("truth", truth), ("prediction", pred)) if truth is not None else \
            (("input", None), ("prediction", pred))
        for c, (name, inst) in enumerate(cells):
            ax = axes[r, c]
            ax.set_axis_off()
            title = name if titles is None else f"{titles[r]} {name}"
            if inst is not None:
                draw_instances(ax, picture, inst, class_names)
                title += f" ({len(inst['labels'])})"
            elif name == "input":
                ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def draw_instances(ax: Any, picture: np.ndarray, inst: dict, class_names: Sequence[str],
                    alpha: float = 0.55) -> None:
    """Overlay instance k in palette colour k and label it at its box corner.

    Where instances overlap, the higher-scoring one is shown (the later one without scores).
    """
    masks = torch.as_tensor(inst["masks"]).bool().cpu().numpy().reshape(-1, *picture.shape[:2])
    scores = inst.get("scores")
    order = range(len(masks)) if scores is None else \
        np.argsort(torch.as_tensor(scores).float().cpu().numpy(), kind="stable")
    ids = np.zeros(picture.shape[:2], np.int64)
    for k in order:
        ids[masks[k]] = k + 1
    palette = default_palette(len(masks) + 1, ignore_index=None)
    ax.imshow(overlay(picture, ids, palette, alpha=alpha, ignore_index=0), interpolation="nearest")
    boxes = torch.as_tensor(inst["boxes"]).float().reshape(-1, 4).tolist()
    for k, (label, box) in enumerate(zip(torch.as_tensor(inst["labels"]).tolist(), boxes, strict=True)):
        text = class_names[label] if 0 <= label < len(class_names) else str(label)
        if scores is not None:
            text += f" {float(scores[k]):.2f}"
        ax.text(box[0], box[1], text, fontsize=6, color="white", va="bottom",
                bbox={"facecolor": tuple(palette[k + 1] / 255.0), "alpha": 0.8, "pad": 1, "edgecolor": "none"})
