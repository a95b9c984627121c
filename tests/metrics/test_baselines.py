"""Trivial baselines against hand-computed cases and torchmetrics' MulticlassJaccardIndex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.metrics.baselines import Baselines, baselines_from_histograms, gray_levels, split_baselines


def test_majority_class_by_hand_and_against_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    b = baselines_from_histograms(np.array([6, 2, 2]))
    # class 0 everywhere: IoU 6/10, 0, 0 -> 0.2
    assert b.majority_class == 0 and b.majority_iou == pytest.approx(0.2) and b.threshold is None
    target = torch.tensor([0] * 6 + [1] * 2 + [2] * 2 + [255] * 3)
    preds = torch.zeros_like(target)
    reference = MulticlassJaccardIndex(3, average="macro", ignore_index=255)(preds, target)
    assert b.majority_iou == pytest.approx(float(reference))


def _hist(levels: dict[int, int]) -> np.ndarray:
    h = np.zeros(256, np.int64)
    for g, n in levels.items():
        h[g] = n
    return h


def test_best_threshold_by_hand() -> None:
    # class 0: 5 px at gray 10, 1 at 200; class 1: 3 at 100, 2 at 250. Best: class 1 where gray >= t for any t in
    # 11..100 -> confusion [[5, 1], [0, 5]], IoU 5/6 for both classes.
    gray = np.stack([_hist({10: 5, 200: 1}), _hist({100: 3, 250: 2})])
    b = baselines_from_histograms(gray.sum(1), gray)
    assert (b.threshold, b.polarity) == (11, "above") and b.threshold_iou == pytest.approx(5 / 6)
    # majority: class 0 (6 of 11 px): IoU 6/11 and 0 -> 3/11
    assert b.majority_class == 0 and b.majority_iou == pytest.approx(3 / 11)
    assert b.best == pytest.approx(5 / 6)


def test_dark_objects_take_the_other_polarity() -> None:
    gray = np.stack([_hist({245: 5, 55: 1}), _hist({155: 3, 5: 2})])  # the case above, mirrored (255 - g)
    b = baselines_from_histograms(gray.sum(1), gray)
    assert (b.threshold, b.polarity) == (156, "below") and b.threshold_iou == pytest.approx(5 / 6)


def test_gray_is_the_rounded_mean_of_channels() -> None:
    image = np.array([[[30, 60, 90], [0, 0, 1]], [[255, 255, 254], [7, 7, 7]]], np.uint8)
    assert gray_levels(image).tolist() == [[60, 0], [255, 7]]  # 1/3 -> 0, 254.67 -> 255
    assert gray_levels(image[..., 0]).tolist() == [[30, 0], [255, 7]]


def test_split_baselines_read_the_folder(tmp_path: Path) -> None:
    for sub in ("images/val", "labels/val"):
        (tmp_path / sub).mkdir(parents=True)
    label = np.zeros((4, 6), np.uint8)
    label[:, 4:] = 1  # 8 px of class 1
    label[0, 0] = 255  # ignored, and dark enough to spoil a threshold if it were counted
    image = np.full((4, 6, 3), (100, 110, 120), np.uint8)  # gray 110
    image[:, 4:] = (200, 210, 220)  # gray 210
    image[0, 0] = (250, 250, 250)
    Image.fromarray(image).save(tmp_path / "images/val/a.png")
    Image.fromarray(label).save(tmp_path / "labels/val/a.png")
    b = split_baselines(tmp_path, "val", 2)
    assert b.threshold_iou == pytest.approx(1.0) and b.polarity == "above" and 111 <= b.threshold <= 210
    assert b.threshold == 111  # the first level that separates them
    assert b.majority_class == 0 and b.majority_iou == pytest.approx(15 / 23 / 2)  # 15 of 23 px, IoU 0 for class 1


def test_warning_words() -> None:
    b = Baselines(0, 0.40, 100, "above", 0.65)
    assert b.warning(0.80) is None
    assert "only 0.010 above" in b.warning(0.66)
    assert "0.150 below" in b.warning(0.50)
    assert b.warning(float("nan")) is None
    assert b.lines(["bg", "fg"])[0].startswith("every pixel 'bg'") and "gray >= 100" in b.lines()[1]
    assert b.record()["best_mean_iou"] == 0.65


def test_evaluate_states_the_sanity_bar(semantic_run, tmp_path, capsys) -> None:
    import json

    from seglab.cli import main

    out = tmp_path / "m.json"
    assert main(["evaluate", str(semantic_run["run"]), "--data", str(semantic_run["data"]), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sanity bar" in printed and "(the majority class)" in printed and "the model" in printed
    bar = json.loads(out.read_text())["baselines"]
    # by hand: 4 labels (row 0 ignored), class 1 a 10x10 square, class 2 four full rows; class 0 the rest:
    # 3888 of 4928 counted pixels, IoU 0 for the two other classes
    assert bar["majority_class"] == 0 and bar["majority_mean_iou"] == pytest.approx(3888 / 4928 / 3)
    assert bar["threshold"] is None and bar["best_mean_iou"] == bar["majority_mean_iou"]
    record_miou = json.loads(out.read_text())["mean_iou"]
    assert (bar["warning"] is None) == (record_miou >= bar["best_mean_iou"] + 0.10)


def test_saved_predictions_get_the_sanity_bar_too(semantic_run, tmp_path) -> None:
    import shutil

    from seglab.inference.scoring import score_predictions

    preds = tmp_path / "preds"
    shutil.copytree(semantic_run["data"] / "labels" / "val", preds)  # the truth itself: mIoU 1
    for p in preds.glob("*.png"):  # ignored pixels must get a class in a prediction
        image = np.array(Image.open(p))
        image[image == 255] = 0
        Image.fromarray(image).save(p)
    result = score_predictions(preds, semantic_run["data"], "val")
    assert result.metrics["mean_iou"] == pytest.approx(1.0)
    assert result.baselines.majority_iou == pytest.approx(3888 / 4928 / 3) and result.baseline_warning() is None
    assert result.record()["baselines"]["warning"] is None
