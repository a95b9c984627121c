"""Training plots: loss and metric curves per epoch, the confusion matrix, per-class scores."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from seglab.errors import DataError
from seglab.viz.colors import ArrayLike
from seglab.viz.panels import save_figure

METRIC_KEYS = ("mean_iou", "mask_AP", "box_AP")  # drawn in the metrics panel when a run has them


def plot_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike, monitor: str | None = None,
                warmup_epochs: float = 0.0) -> Path:
    """Plot loss, metrics and learning rate per epoch from ``metrics.csv`` rows (3 side-by-side axes).

    Values may be strings (straight from :class:`csv.DictReader`); missing or empty cells are
    skipped, so a run without validation loss still plots. With ``monitor`` the best epoch (the one
    ``best.pt`` holds, see :func:`best_epoch`) is a dashed green line on every axis, labelled with its value;
    the first ``warmup_epochs`` are shaded, so a rising loss during warm-up is not mistaken for divergence.
    """
    return save_figure(curves_figure(rows, monitor, warmup_epochs), path)


def curves_figure(rows: Sequence[dict[str, Any]], monitor: str | None = None, warmup_epochs: float = 0.0) -> Figure:
    """The figure :func:`plot_curves` writes."""
    epochs = [_num(r.get("epoch"), i + 1) for i, r in enumerate(rows)]
    metric_keys = tuple(dict.fromkeys(([monitor] if monitor and "loss" not in monitor else [])
                                      + [k for k in METRIC_KEYS if any(k in r for r in rows)]))
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    panels = ((axes[0], "loss", ("train_loss", "val_loss")), (axes[1], "metrics", metric_keys or ("mean_iou",)),
              (axes[2], "learning rate", ("lr",)))
    for ax, title, keys in panels:
        for key in keys:
            pts = [(e, _num(r.get(key))) for e, r in zip(epochs, rows, strict=True)]
            pts = [(e, v) for e, v in pts if not math.isnan(v)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if axes[2].has_data() and all(v > 0 for v in (_num(r.get("lr")) for r in rows) if not math.isnan(v)):
        axes[2].set_yscale("log")
    _mark_run(axes, rows, monitor, warmup_epochs)
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _mark_run(axes: Sequence[Any], rows: Sequence[dict[str, Any]], monitor: str | None, warmup: float) -> None:
    """Shade the warm-up epochs and draw the best epoch on every axis (labelled where the monitor is drawn)."""
    if warmup > 0:
        for i, ax in enumerate(axes):
            ax.axvspan(0, warmup, color="tab:orange", alpha=0.12, lw=0,
                       label=f"warm-up ({warmup:g} epoch{'' if warmup == 1 else 's'})" if i == 0 else None)
    best = best_epoch(rows, monitor) if monitor else None
    if best is not None:
        epoch, value = best
        home = 0 if "loss" in monitor else 1  # type: ignore[operator]
        for i, ax in enumerate(axes):
            ax.axvline(epoch, color="tab:green", ls="--", lw=1,
                       label=f"best {monitor} {value:.4f} (epoch {epoch})" if i == home else None)


def best_epoch(rows: Sequence[dict[str, Any]], monitor: str, mode: str | None = None) -> tuple[int, float] | None:
    """``(epoch, value)`` of the best ``monitor`` value in ``rows``, as the trainer picks ``best.pt``.

    The first strictly best finite value wins; an epoch without the value or with a non-finite validation loss
    never does. ``mode`` is ``max`` or ``min`` (default: ``min`` for losses, ``max`` for scores).
    """
    mode = mode or ("min" if "loss" in monitor else "max")
    best: tuple[int, float] | None = None
    for i, r in enumerate(rows):
        value = _num(r.get(monitor))
        if not (math.isfinite(value) and math.isfinite(_num(r.get("val_loss"), 0.0))):
            continue
        if best is None or (value > best[1] if mode == "max" else value < best[1]):
            best = (int(_num(r.get("epoch"), i + 1)), value)
    return best


def plot_confusion(cm: ArrayLike, class_names: Sequence[str] | None, path: str | os.PathLike,
                   normalize: bool = True) -> Path:
    """Plot a ``(C, C)`` confusion matrix (rows = truth, columns = prediction).

    With ``normalize`` each row is divided by its total, so a rare class's recall is as readable
    as a frequent one's; classes absent from the truth get an all-zero row. Without it the cells are pixel
    counts on a log colour scale (one road class outweighs a pole class by 1000x), so what the errors
    cost in pixels shows next to the rates.
    """
    m = cm.detach().cpu().numpy() if isinstance(cm, torch.Tensor) else np.asarray(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"Expected a square (C, C) confusion matrix, but got shape {m.shape}.")
    c = m.shape[0]
    names = list(class_names) if class_names else [str(i) for i in range(c)]
    if len(names) != c:
        raise DataError(f"confusion matrix has {c} classes but {len(names)} class names were given.")
    m = m.astype(np.float64)
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    side = min(max(4.0, 0.45 * c + 2.0), 30.0)
    fontsize = max(3.0, min(8.0, 0.6 * 72 * side / max(c, 1) / 2.5))  # tick labels stay apart for 150 classes
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
    norm = None if normalize else LogNorm(vmin=1.0, vmax=max(1.0, float(m.max(initial=0.0))))
    im = ax.imshow(np.where(m > 0, m, np.nan) if norm else m, cmap="Blues", norm=norm,
                   vmin=0.0 if normalize else None, vmax=1.0 if normalize else None, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), names, rotation=90 if c > 6 else 0, fontsize=fontsize)
    ax.set_yticks(range(c), names, fontsize=fontsize)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title("confusion (row-normalized)" if normalize else "confusion (pixels, log colour scale)")
    if c <= 20:
        _annotate_cells(ax, m, normalize)
    fig.tight_layout()
    return save_figure(fig, path)


def _annotate_cells(ax: Any, m: np.ndarray, normalize: bool) -> None:
    top = m.max() if m.size else 0.0
    for (i, j), v in np.ndenumerate(m):
        dark = v > 0.5 * top if normalize else v > 0 and math.log(max(v, 1.0)) > 0.6 * math.log(max(top, 1.0))
        ax.text(j, i, f"{v:.2f}" if normalize else compact(v), ha="center", va="center", fontsize=7,
                color="white" if dark else "black")


def compact(n: float) -> str:
    """A count in at most 4 characters: 950, 12k, 3.4M, 1.2G."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return f"{int(n)}"


def plot_per_class(values: Sequence[float], class_names: Sequence[str], path: str | os.PathLike,
                   metric: str = "IoU") -> Path:
    """A bar per class of ``metric`` (IoU, Dice, ...) with the mean over the classes that have a value.

    A NaN (a class neither in the truth nor predicted) is written out as absent, not drawn as a zero bar.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) != len(class_names):
        raise DataError(f"{len(v)} per-class values but {len(class_names)} class names were given.")
    n = len(v)
    fontsize = 8.0 if n <= 40 else 6.0
    fig = Figure(figsize=(7.0, min(max(2.5, 0.22 * n + 1.2), 40.0)))
    ax = fig.subplots()
    finite = np.isfinite(v)
    ax.barh(np.arange(n), np.where(finite, v, 0.0), color="tab:blue")
    ax.set_yticks(range(n), list(class_names), fontsize=fontsize)
    ax.invert_yaxis()  # class 0 at the top, as in the confusion matrix
    ax.set_xlim(0.0, 1.15)
    for i, x in enumerate(v):
        ax.text(x + 0.01 if finite[i] else 0.01, i, f"{x:.3f}" if finite[i] else "absent", va="center",
                fontsize=fontsize)
    if finite.any():
        mean = float(v[finite].mean())
        ax.axvline(mean, color="tab:red", ls="--", lw=1, label=f"mean {metric} {mean:.4f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"per-class {metric}")
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _num(v: Any, default: float = math.nan) -> float:
    try:
        return float(v) if v not in (None, "") else default
    except (TypeError, ValueError):
        return default
