"""Dataset-level review statistics against hand-computed cases (no seglab code in the expected values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seglab.review.stats import (
    DatasetStats,
    boundary_distance,
    calibration_counts,
    component_areas,
    expected_calibration_error,
)


def test_ece_of_a_hand_computed_case() -> None:
    # 15 bins of width 1/15: 0.95 and 0.97 share bin 14, 0.5 is in bin 7 ((7/15, 8/15]), 0.2 in bin 2.
    conf = np.array([0.95, 0.97, 0.5, 0.5, 0.2])
    right = np.array([1, 0, 1, 1, 0], dtype=bool)
    # bin 14: n 2, conf 0.96, acc 0.5 -> 2/5 * 0.46; bin 7: n 2, conf 0.5, acc 1 -> 2/5 * 0.5;
    # bin 2: n 1, conf 0.2, acc 0 -> 1/5 * 0.2
    expected = 0.4 * 0.46 + 0.4 * 0.5 + 0.2 * 0.2
    assert expected_calibration_error(calibration_counts(conf, right)) == pytest.approx(expected)


def test_ece_bin_edges_and_empty() -> None:
    counts = calibration_counts(np.array([1 / 15, 0.0, 1.0]), np.array([1, 1, 1], dtype=bool))
    assert counts[0].tolist()[:2] == [2, 0] and counts[0][14] == 1  # (0, 1/15] holds 1/15 and 0
    assert math.isnan(expected_calibration_error(np.zeros((3, 15))))


def test_boundary_distance_is_chessboard_to_the_nearest_class_change() -> None:
    truth = np.zeros((1, 12), dtype=np.int64)
    truth[0, 6:] = 1  # boundary pixels: columns 5 and 6
    assert boundary_distance(truth)[0].tolist() == [5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5]
    assert (boundary_distance(np.zeros((3, 3), np.int64)) > 1000).all()  # no boundary: everything is far


def test_component_areas_split_same_class_regions() -> None:
    truth = np.array([[1, 1, 0, 1],
                      [1, 0, 0, 1],
                      [255, 0, 0, 0]])
    assert component_areas(truth, 255).tolist() == [[3, 3, 6, 2], [3, 6, 6, 2], [0, 6, 6, 6]]


def test_dataset_stats_tables() -> None:
    truth = np.zeros((40, 40), dtype=np.int64)
    truth[10:20, 10:20] = 1  # a 100-pixel "small" square
    truth[0, 0] = 255
    pred = truth.copy()
    pred[10:20, 10:20] = 0  # the square missed entirely: 100 errors
    pred[0, 0] = 1
    stats = DatasetStats(2)
    conf = np.full(truth.shape, 0.95, np.float32)
    stats.add(truth, pred, conf)
    r = stats.record()
    assert r["confusion"] == [[1599 - 100, 0], [100, 0]]
    assert r["confusion_normalized"][1] == [1.0, 0.0]
    small, medium, large = r["by_size"]
    assert small["errors"] == 100 and small["pixels"] == 100 and small["error_rate"] == 1.0
    assert medium["pixels"] == 1499 and medium["errors"] == 0 and large["pixels"] == 0  # 1499 < 96²
    assert sum(b["errors"] for b in r["by_distance"]) == 100
    assert sum(b["pixels"] for b in r["by_distance"]) == 1599
    # every pixel at 0.95: accuracy 1499 / 1599 in the top bin
    assert r["ece"] == pytest.approx(abs(1499 / 1599 - 0.95), abs=1e-6)
