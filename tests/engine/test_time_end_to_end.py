"""``--time`` end to end for every task, as the README tour runs it: real planning (nothing stubbed), a budget
shorter than one epoch (the run stops mid-epoch with a final evaluation and a consistent last.pt), ``seglab
plan --time`` and ``seglab train --plan`` of its file, and a no-op ``--resume`` that leaves the run as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from seglab.checkpoint import read_checkpoint
from seglab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _check_cut_run(run: Path, monitor: str) -> dict:
    """The files of a run the budget ended early, and its last.pt: resumable, evaluated, config consistent."""
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "report.md"):
        assert (run / name).is_file(), name
    ck = read_checkpoint(run / "last.pt")
    assert ck["trainer"]["epoch"] >= 1 and ck["trainer"]["epoch_pos"] == 0  # the cut epoch closed
    assert monitor in ck["metrics"]  # the closing evaluation ran
    assert ck["config"]["train"]["monitor"] == monitor and ck["config"]["train"]["time"]
    assert "TimeBudget" in ck["hooks"] and ck["hooks"]["TimeBudget"]["spent"] > 0
    return ck


def test_semantic_time_budget_shorter_than_an_epoch(tiny_data: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    # 1600 steps per epoch (repeats 400): more than 4 s allow on any machine, so the budget ends epoch 1 early
    assert main(["train", "--data", str(tiny_data), "--time", "4s", "--out", str(run), "--model-opt",
                 "base_channels=4", "--model-opt", "depth=2", "--set", "data.repeats=400", "--set",
                 "train.num_samples=0", "--precision", "fp32"]) == 0
    err = capsys.readouterr().err
    assert "stopping inside epoch 1" in err and "is longer than what is left" in err  # warned at planning
    ck = _check_cut_run(run, "mean_iou")
    assert 0 < ck["step"] < 1600
    report = (run / "report.md").read_text()
    assert "budget ended the run inside epoch 1" in report and "left out: the rest of epoch 1" in report
    # a plain --resume of a spent budget changes nothing (report.md included)
    before = {n: (run / n).read_bytes() for n in ("report.md", "last.pt", "metrics.csv")}
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert "already used its --time" in capsys.readouterr().err
    assert {n: (run / n).read_bytes() for n in before} == before


def test_semantic_plan_time_then_train_plan(tiny_data: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    assert main(["plan", str(tiny_data), "--time", "6s", "--out", str(plan)]) == 0
    assert main(["train", "--plan", str(plan), "--out", str(tmp_path / "run"), "--model-opt", "base_channels=4",
                 "--set", "train.num_samples=0", "--precision", "fp32"]) == 0
    ck = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["config"]["train"]["time"] == "6s" and ck["config"]["train"]["monitor"] == "mean_iou"
    assert "mean_iou" in ck["metrics"]


def test_instance_time_budget(tmp_path: Path) -> None:
    from seglab.data.synthetic import make_shapes

    data = make_shapes(tmp_path / "shapes", n_train=4, n_val=2, size=64, seed=0)
    shutil.rmtree(data / "labels")  # instances only: the plan picks Mask R-CNN
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--time", "8s", "--out", str(run), "--set",
                 "train.num_samples=0", "--precision", "fp32"]) == 0
    ck = _check_cut_run(run, "mask_AP")
    assert ck["task"] == "instance"


def test_panoptic_plan_time_and_train_data_time(tmp_path: Path) -> None:
    """The issue's blocker: timed validation of a panoptic batch (no boxes in validation targets)."""
    from seglab.data.panoptic.synthetic import make_panoptic

    data = make_panoptic(tmp_path / "pan", n_train=4, n_val=2, size=64, seed=0)
    plan = tmp_path / "plan.yaml"
    assert main(["plan", str(data), "--time", "8s", "--out", str(plan)]) == 0
    assert "  time: 8s\n" in plan.read_text() and "s/epoch (measured)" in plan.read_text()
    run = tmp_path / "run"  # the README tour's command: --data alone with --time
    assert main(["train", "--data", str(data), "--time", "8s", "--out", str(run), "--set", "train.num_samples=0",
                 "--precision", "fp32"]) == 0
    ck = _check_cut_run(run, "PQ")
    assert ck["task"] == "panoptic" and torch.isfinite(torch.tensor(ck["metrics"]["PQ"]))
