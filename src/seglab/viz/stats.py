"""The label statistics picture (``labels.png``): class pixel shares and object sizes per class.

Read before epoch 1, it answers what a long run would otherwise reveal late: a class with 0.1 % of the
pixels (weight it, or expect a low IoU), objects of a few pixels (a large output stride will miss them), a
split that is mostly ignore. It reads at most ``limit`` labels spread over the split (200 by default), so it
costs seconds on any dataset. Objects are the 4-connected regions of one class (semantic labels, counted on
labels reduced to at most 256 px a side) or the instances (instance datasets).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from seglab.viz.colors import IGNORE_COLOR
from seglab.viz.panels import save_figure

SIZE_EDGES = np.logspace(-5, 0, 11)  # object area as a share of its image: 0.001 % ... 100 %
REGION_SIDE = 256  # semantic labels are reduced to this long side to find regions (sizes are shares anyway)


@dataclass
class LabelStats:
    """What ``labels`` labels of a split of ``total`` hold, per class."""

    pixels: np.ndarray  # (C,) labelled pixels of each class
    objects: list[list[float]] = field(default_factory=list)  # per class: each object's share of its image
    ignored: int = 0  # pixels with the ignore label
    ignore_index: int | None = None  # None: the labels have no ignore value (instance datasets)
    labels: int = 0
    total: int = 0


def connected_regions(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` region ids: two pixels share one iff a 4-connected path of equal values joins them.

    Label propagation (each pixel takes the smallest id among equal neighbours) with pointer jumping, in numpy.
    """
    h, w = mask.shape
    ids = np.arange(h * w, dtype=np.int64).reshape(h, w)
    right, down, far = mask[:, 1:] == mask[:, :-1], mask[1:] == mask[:-1], h * w
    while True:
        new = ids.copy()
        np.minimum(new[:, 1:], np.where(right, ids[:, :-1], far), out=new[:, 1:])
        np.minimum(new[:, :-1], np.where(right, ids[:, 1:], far), out=new[:, :-1])
        np.minimum(new[1:], np.where(down, ids[:-1], far), out=new[1:])
        np.minimum(new[:-1], np.where(down, ids[1:], far), out=new[:-1])
        flat = new.reshape(-1)
        for _ in range(4):  # an id is a pixel of the same region with a smaller index: follow the chain
            flat = flat[flat]
        new = flat.reshape(h, w)
        if np.array_equal(new, ids):
            return ids
        ids = new


def semantic_stats(labels: Iterable[np.ndarray], num_classes: int, ignore_index: int | None) -> LabelStats:
    """Pixel counts and region sizes of class-index maps ``(H, W)``."""
    stats = LabelStats(np.zeros(num_classes, np.int64), [[] for _ in range(num_classes)], ignore_index=ignore_index)
    for lab in labels:
        lab = np.asarray(lab).astype(np.int64, copy=False)
        stats.labels += 1
        stats.ignored += int((lab == ignore_index).sum()) if ignore_index is not None else 0
        valid = lab[(lab >= 0) & (lab < num_classes)]
        stats.pixels += np.bincount(valid, minlength=num_classes)[:num_classes]
        step = max(1, math.ceil(max(lab.shape) / REGION_SIDE))
        small = lab[::step, ::step]
        _, first, counts = np.unique(connected_regions(small), return_index=True, return_counts=True)
        for cls, n in zip(small.reshape(-1)[first], counts, strict=True):
            if 0 <= cls < num_classes:
                stats.objects[cls].append(n / small.size)
    return stats


def instance_stats(targets: Iterable[tuple[Any, Any]], num_classes: int) -> LabelStats:
    """Pixel counts (background = class 0: no instance) and instance sizes of ``(masks (N, H, W), labels (N,))``."""
    stats = LabelStats(np.zeros(num_classes, np.int64), [[] for _ in range(num_classes)])
    for masks, labels in targets:
        m = torch.as_tensor(masks).bool().reshape(-1, *torch.as_tensor(masks).shape[-2:])
        stats.labels += 1
        area = m.shape[-2] * m.shape[-1]
        stats.pixels[0] += area - int(m.any(0).sum())
        for k, cls in enumerate(torch.as_tensor(labels).tolist()):
            if 0 <= cls < num_classes:
                stats.pixels[cls] += int(m[k].sum())
                stats.objects[cls].append(float(m[k].sum()) / area)
    return stats


def dataset_stats(dataset: Any, num_classes: int, ignore_index: int | None, limit: int = 200) -> LabelStats:
    """:class:`LabelStats` of at most ``limit`` labels spread over ``dataset`` (semantic, instance or panoptic).

    Semantic folders are read label file by label file (no image is decoded); instance datasets give their
    untransformed targets; panoptic datasets their untransformed ``semantic`` maps.
    """
    from seglab.data.io import read_label

    n = len(dataset)
    k = min(n, limit)
    picks = [round(i * (n - 1) / max(1, k - 1)) for i in range(k)]
    if hasattr(dataset, "samples"):  # semantic folder: (image, label) paths
        stats = semantic_stats((read_label(dataset.samples[i][1]) for i in picks), num_classes, ignore_index)
    else:
        plain = copy.copy(dataset)
        plain.transforms = None
        if hasattr(dataset, "thing_classes"):  # panoptic: the class of every pixel, stuff and things
            stats = semantic_stats((np.asarray(plain[i][1]["semantic"]) for i in picks), num_classes, ignore_index)
            stats.total = n
            return stats
        stats = instance_stats(((t["masks"], t["labels"]) for t in (plain[i][1] for i in picks)), num_classes)
    stats.total = n
    return stats


def plot_label_stats(stats: LabelStats, class_names: Sequence[str], path: str | os.PathLike,
                     palette: np.ndarray | None = None) -> Path:
    """Save ``labels.png``: class pixel shares (bars, ignore last) | object sizes per class (a histogram row each)."""
    c = len(stats.pixels)
    names = [*class_names[:c], *(f"class_{i}" for i in range(len(class_names), c))]
    fontsize = 8.0 if c <= 40 else 6.0 if c <= 100 else 4.5
    fig = Figure(figsize=(13.0, min(max(3.2, 0.24 * (c + 1) + 1.6), 40.0)))
    bars, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.4]})
    _share_bars(bars, stats, names, palette, fontsize)
    counts = np.array([np.histogram(np.clip(s, SIZE_EDGES[0], 1.0), SIZE_EDGES)[0] for s in stats.objects], float)
    rows = np.divide(counts, counts.sum(1, keepdims=True), out=np.zeros_like(counts),
                     where=counts.sum(1, keepdims=True) > 0)
    im = hist.imshow(rows, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
                     extent=(-5, 0, c - 0.5, -0.5))
    fig.colorbar(im, ax=hist, fraction=0.04, pad=0.02, label="share of the class's objects")
    hist.set_yticks(range(c), [f"{name} ({len(s)})" for name, s in zip(names, stats.objects, strict=True)],
                    fontsize=fontsize)
    hist.set_xticks(range(-5, 1), ["0.001%", "0.01%", "0.1%", "1%", "10%", "100%"])
    hist.set_ylim(c - 0.5 + (stats.ignore_index is not None), -0.5)  # rows level with the bars
    hist.set_xlabel("object area (share of its image, log scale)")
    hist.set_title("object sizes per class (objects counted)")
    fig.suptitle(f"labels: {stats.labels} of {stats.total} training labels read", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _share_bars(ax: Any, stats: LabelStats, names: list[str], palette: np.ndarray | None, fontsize: float) -> None:
    """Each class's share of the labelled pixels, and the ignored pixels' share of all pixels (magenta)."""
    c = len(stats.pixels)
    labelled = max(1, int(stats.pixels.sum()))
    pal = np.asarray(palette, np.uint8).reshape(-1, 3) if palette is not None else None
    colors = [tuple(pal[i] / 255.0) if pal is not None and i < len(pal) else "tab:blue" for i in range(c)]
    shares, labels = list(stats.pixels / labelled), list(names)
    if stats.ignore_index is not None:
        shares.append(stats.ignored / max(1, labelled + stats.ignored))
        labels.append(f"ignore ({stats.ignore_index}), of all pixels")
        colors.append(tuple(x / 255.0 for x in IGNORE_COLOR))
    ax.barh(np.arange(len(shares)), shares, color=colors, edgecolor="grey")
    ax.set_yticks(range(len(shares)), labels, fontsize=fontsize)
    ax.set_ylim(len(shares) - 0.5, -0.5)  # class 0 at the top, as in the other pictures
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    for i, share in enumerate(shares):
        ax.text(share, i, f" {share:.2%}", va="center", fontsize=fontsize)
    ax.set_xlim(0.0, max(shares) * 1.25 or 1.0)
    ax.set_xlabel("share of the labelled pixels")
    ax.set_title("class pixel shares")
    ax.grid(axis="x", alpha=0.3)
