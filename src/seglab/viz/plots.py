"""Training plots: loss and metric curves per epoch, and the confusion matrix."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from seglab.errors import DataError
from seglab.viz.colors import ArrayLike
from seglab.viz.panels import save_figure


def plot_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Plot loss, mIoU and learning rate per epoch from ``metrics.csv`` rows (3 side-by-side axes).

    Values may be strings (straight from :class:`csv.DictReader`); missing or empty cells are
    skipped, so a run without validation loss still plots.
    """
    epochs = [_num(r.get("epoch"), i) for i, r in enumerate(rows)]
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    panels = ((axes[0], "loss", ("train_loss", "val_loss")), (axes[1], "mIoU", ("mean_iou",)),
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
        if ax.has_data() and len(keys) > 1:
            ax.legend(fontsize=8)
    if axes[2].has_data() and all(v > 0 for v in (_num(r.get("lr")) for r in rows) if not math.isnan(v)):
        axes[2].set_yscale("log")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(cm: ArrayLike, class_names: Sequence[str] | None, path: str | os.PathLike,
                   normalize: bool = True) -> Path:
    """Plot a ``(C, C)`` confusion matrix (rows = truth, columns = prediction).

    With ``normalize`` each row is divided by its total, so a rare class's recall is as readable
    as a frequent one's; classes absent from the truth get an all-zero row.
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
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), names, rotation=90 if c > 6 else 0, fontsize=8)
    ax.set_yticks(range(c), names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title("confusion (row-normalized)" if normalize else "confusion (pixels)")
    if c <= 20:
        top = m.max() if m.size else 0.0
        for i in range(c):
            for j in range(c):
                txt = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.5 * top else "black")
    fig.tight_layout()
    return save_figure(fig, path)


def _num(v: Any, default: float = math.nan) -> float:
    try:
        return float(v) if v not in (None, "") else default
    except (TypeError, ValueError):
        return default
