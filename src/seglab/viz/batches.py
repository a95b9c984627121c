"""The picture of augmented training images (``train_batch.png``): what the model is fed, before epoch 1.

A wrong crop size, a flip applied to the image only, colour jitter that washes images out, masks shifted
by a rescale, a padding that is not ignore: each shows at a glance here, before hours of training.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from seglab.viz.colors import colorize, default_palette, to_uint8_image
from seglab.viz.legend import add_legend, class_entries, legend_layout
from seglab.viz.panels import draw_instances, has_label, save_figure

PER_ROW = 4  # samples per row (each an image | label pair for semantic batches)


@contextlib.contextmanager
def rng_kept() -> Iterator[None]:
    """Run a block without moving the global RNGs (torch CPU, numpy, random): a picture drawn before training
    must not change which crops and flips the run itself gets."""
    py, npy = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


def augmented_batch(dataset: Any, collate: Callable[[list], Any], n: int = 8) -> Any:
    """``n`` items spread over ``dataset``, transformed as in training and collated as the loader does."""
    total = len(dataset)
    k = min(n, total)
    with rng_kept():
        return collate([dataset[round(i * (total - 1) / max(1, k - 1))] for i in range(k)])


def save_train_batch(path: str | os.PathLike, batch: Any, info: dict[str, Any]) -> Path:
    """Save an augmented batch: semantic ``(images (N, C, H, W), masks (N, H, W))`` as image | label pairs,
    instance ``(images, targets)`` lists with each instance coloured and named.

    ``info`` is the task's checkpoint metadata (``task``, ``classes``, ``mean``, ``std``, ``palette``,
    ``ignore_index``): images are denormalized with it and labels painted in the run's palette, ignore magenta.
    """
    images, targets = batch
    titles = [f"#{i}" for i in range(len(images))]
    if info.get("task") == "instance":
        return _instance_batch(path, list(images), list(targets), info["classes"], titles)
    if info.get("task") == "panoptic":  # the class of every pixel; instances show in the samples
        targets = [t["semantic"] for t in targets]
    classes = list(info["classes"])
    ignore = info.get("ignore_index")
    palette = np.asarray(info["palette"], np.uint8) if info.get("palette") is not None else \
        default_palette(max(len(classes), 2), ignore)
    pictures = [_picture(im, info.get("mean"), info.get("std")) for im in images]
    cells = [(p, colorize(m, palette, ignore)) for p, m in zip(pictures, targets, strict=True)]
    shown = any(has_label(m, ignore) for m in targets)
    return _grid(path, cells, titles, class_entries(classes, palette, ignore if shown else None))


def _picture(image: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """A normalized ``(C, H, W)`` input as RGB uint8; of more than three bands, the first three."""
    if image.shape[0] > 3:
        image, mean, std = image[:3], mean and list(mean)[:3], std and list(std)[:3]
    return to_uint8_image(image, mean, std)


def _grid(path: str | os.PathLike, cells: Sequence[tuple[np.ndarray, np.ndarray]], titles: Sequence[str],
          entries: list) -> Path:
    rows, per_row = math.ceil(len(cells) / PER_ROW), min(PER_ROW, len(cells))
    width = 2.0 * 2 * per_row
    layout = legend_layout([name for name, _ in entries], width)
    aspect = max(0.25, min(4.0, cells[0][0].shape[0] / cells[0][0].shape[1]))
    fig = Figure(figsize=(width, (2.0 * aspect + 0.4) * rows + 0.4 + layout.height))
    axes = fig.subplots(rows, 2 * per_row, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, (picture, label) in enumerate(cells):
        r, c = divmod(k, PER_ROW)
        axes[r, 2 * c].imshow(picture, interpolation="nearest")
        axes[r, 2 * c].set_title(f"{titles[k]} {picture.shape[1]}x{picture.shape[0]}", fontsize=8)
        axes[r, 2 * c + 1].imshow(label, interpolation="nearest")
        axes[r, 2 * c + 1].set_title("label", fontsize=8)
    add_legend(fig, entries, layout)
    fig.suptitle("augmented training images (as the model sees them)", fontsize=10)
    fig.tight_layout(rect=(0, layout.height / fig.get_figheight(), 1, 1))
    return save_figure(fig, path)


def _instance_batch(path: str | os.PathLike, images: list, targets: list, classes: Sequence[str],
                    titles: Sequence[str]) -> Path:
    rows, per_row = math.ceil(len(images) / PER_ROW), min(PER_ROW, len(images))
    fig = Figure(figsize=(3.0 * per_row, 3.1 * rows))
    axes = fig.subplots(rows, per_row, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, (image, target) in enumerate(zip(images, targets, strict=True)):
        ax = axes[divmod(k, PER_ROW)]
        picture = to_uint8_image(image)
        draw_instances(ax, picture, {key: target[key] for key in ("masks", "labels", "boxes")}, classes)
        ax.set_title(f"{titles[k]} {picture.shape[1]}x{picture.shape[0]}, {len(target['labels'])} instances",
                     fontsize=8)
    fig.suptitle("augmented training images (as the model sees them)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_data_pictures(out: str | os.PathLike, task: Any) -> None:
    """``<out>/labels.png`` from at most 200 training labels, ``<out>/train_batch.png`` from 8 augmented images.

    ``task`` is a training task (:class:`seglab.engine.task.Task`: ``train_set``, ``collate``, ``model_info``,
    ``num_classes``, ``classes``).
    """
    from seglab.viz.stats import dataset_stats, plot_label_stats

    info = task.model_info()
    ignore = info.get("ignore_index")
    palette = None if info.get("task") == "instance" else \
        info.get("palette") or default_palette(max(task.num_classes, 2), ignore)
    stats = dataset_stats(task.train_set, task.num_classes, ignore)
    plot_label_stats(stats, task.classes, Path(out) / "labels.png", palette)
    save_train_batch(Path(out) / "train_batch.png", augmented_batch(task.train_set, task.collate()), info)
