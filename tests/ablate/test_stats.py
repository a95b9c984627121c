"""Ablation statistics against hand-computed values (textbook paired t interval)."""

from __future__ import annotations

import math

import pytest

from seglab.ablate.stats import mean_std, paired, t975


def test_mean_and_sample_std() -> None:
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert math.isnan(mean_std([0.5])[1])


def test_paired_interval_by_hand() -> None:
    # differences 0.02, 0.04, 0.03: mean 0.03, sd 0.01, t(0.975, 2) = 4.303, half width 4.303 * 0.01 / sqrt(3)
    d = paired([0.72, 0.74, 0.73], [0.70, 0.70, 0.70])
    half = 4.303 * 0.01 / math.sqrt(3)
    assert d.mean == pytest.approx(0.03)
    assert (d.low, d.high) == (pytest.approx(0.03 - half), pytest.approx(0.03 + half))
    assert d.significant and "better" in d.verdict("mean_iou")


def test_a_noisy_difference_is_no_verdict() -> None:
    d = paired([0.71, 0.69], [0.70, 0.70])  # +0.01, -0.01
    assert not d.significant and d.verdict("mean_iou") == "no significant difference at 2 seeds"
    assert paired([0.8], [0.7]).verdict("mean_iou").startswith("one seed")


def test_t_table() -> None:
    assert t975(1) == 12.706 and t975(4) == 2.776 and t975(11) == 2.228 and t975(100) == 1.96
