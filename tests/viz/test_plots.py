"""Training plots: the best epoch and the warm-up marked on the curves, per-class bars, the pixel confusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from seglab.errors import DataError
from seglab.viz import best_epoch, curves_figure, plot_confusion, plot_per_class

ROWS = [  # as metrics.csv gives them: strings, epoch 3 not evaluated, epoch 5 diverged
    {"epoch": "1", "train_loss": "1.0", "val_loss": "0.9", "mean_iou": "0.30", "lr": "0.001"},
    {"epoch": "2", "train_loss": "0.8", "val_loss": "0.7", "mean_iou": "0.55", "lr": "0.01"},
    {"epoch": "3", "train_loss": "0.7", "val_loss": "", "mean_iou": "", "lr": "0.008"},
    {"epoch": "4", "train_loss": "0.6", "val_loss": "0.75", "mean_iou": "0.55", "lr": "0.005"},
    {"epoch": "5", "train_loss": "0.6", "val_loss": "nan", "mean_iou": "0.90", "lr": "0.002"},
]


def test_best_epoch_follows_the_trainers_rule() -> None:
    # the first strictly best value wins (epoch 4 ties epoch 2); a non-finite val_loss is never best
    assert best_epoch(ROWS, "mean_iou") == (2, 0.55)
    assert best_epoch(ROWS, "val_loss") == (2, 0.7)  # min for losses
    assert best_epoch(ROWS, "mean_iou", mode="min") == (1, 0.30)
    assert best_epoch(ROWS, "mask_AP") is None


def _labels(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_curves_mark_the_best_epoch_and_shade_the_warmup() -> None:
    fig = curves_figure(ROWS, monitor="mean_iou", warmup_epochs=1.5)
    loss, metrics, lr = fig.axes[:3]
    assert "best mean_iou 0.5500 (epoch 2)" in _labels(metrics)
    assert "warm-up (1.5 epochs)" in _labels(loss)
    for ax in (loss, metrics, lr):  # the best epoch is a line on every panel, the warm-up a span
        assert any(list(line.get_xdata()) == [2, 2] for line in ax.get_lines())
        assert any(math.isclose(p.get_x() + p.get_width(), 1.5) for p in ax.patches)
    fig = curves_figure(ROWS, monitor="val_loss")
    assert "best val_loss 0.7000 (epoch 2)" in _labels(fig.axes[0])
    assert not fig.axes[0].patches  # no warm-up, no shade


def test_instance_curves_show_the_ap_metrics() -> None:
    rows = [{"epoch": 1, "train_loss": 2.0, "mask_AP": 0.1, "box_AP": 0.2, "lr": 0.01},
            {"epoch": 2, "train_loss": 1.5, "mask_AP": 0.3, "box_AP": 0.25, "lr": 0.01}]
    fig = curves_figure(rows, monitor="mask_AP")
    assert {"mask_AP", "box_AP", "best mask_AP 0.3000 (epoch 2)"} <= set(_labels(fig.axes[1]))


def test_per_class_bars_size_and_absent_classes(tmp_path) -> None:
    out = plot_per_class([0.9, float("nan"), 0.5], ["sky", "pole", "road"], tmp_path / "iou.png")
    with Image.open(out) as im:
        assert im.size == (700, 250)  # 7 in wide; 2.5 in: the floor for a few classes
    out = plot_per_class(np.linspace(0, 1, 150), [f"c{i}" for i in range(150)], tmp_path / "many.png")
    with Image.open(out) as im:
        assert im.size[1] == round(100 * (0.22 * 150 + 1.2))  # grows with the classes
    with pytest.raises(DataError, match="class names"):
        plot_per_class([0.5], ["a", "b"], tmp_path / "bad.png")


def test_confusion_in_pixels(tmp_path) -> None:
    cm = np.array([[5_000_000, 120, 0], [3_000, 40_000, 7], [0, 0, 0]])
    raw = plot_confusion(cm, ["road", "car", "pole"], tmp_path / "pixels.png", normalize=False)
    rate = plot_confusion(cm, ["road", "car", "pole"], tmp_path / "rates.png")
    with Image.open(raw) as a, Image.open(rate) as b:
        assert a.size == b.size == (500, 400)
