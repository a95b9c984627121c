"""Interrupt and resume every way a run can start (``--time``, ``--plan``, ``--data`` alone, ``seglab ablate`` with
and without ``--time-per-run``), through the CLI as a user does, bit-exact against an uninterrupted run.

A ``--time`` run's epoch count comes from timing, which no two runs share; here the plan is fixed (3 epochs) and
the re-fit is off, so both runs make the same decisions and only the resume is compared. Real planning is
tested in test_time_end_to_end.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import seglab.engine.budget as budget_module
import seglab.engine.trainer as trainer_module
from seglab.checkpoint import read_checkpoint
from seglab.cli import main
from seglab.engine.budget import BudgetPlan
from seglab.engine.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model-opt", "base_channels=4", "--model-opt", "depth=2", "--crop-size", "32", "--batch-size", "4",
        "--workers", "0", "--set", "train.num_samples=0", "--set", "data.repeats=1", "--precision", "fp32"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ck = read_checkpoint(run / "last.pt")
    return ck.get("raw_model_state", ck["model_state"])


def _assert_same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ca, cb = read_checkpoint(a / "last.pt"), read_checkpoint(b / "last.pt")
    assert (ca["epoch"], ca["step"]) == (cb["epoch"], cb["step"])
    if (a / "report.md").is_file():  # the resumed run's report still has the best epoch's metrics
        best = [(run / "report.md").read_text().split("## Best validation metrics")[1].split("## Pictures")[0]
                for run in (a, b)]
        assert best[0] == best[1] and "| mean_iou |" in best[0]


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Ctrl-C in the n-th training micro-batch of this process (its forward never runs)."""
    real, calls = Trainer.train_step, [0]

    def step(self: Trainer, inputs: object, targets: object) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt
        return real(self, inputs, targets)

    monkeypatch.setattr(Trainer, "train_step", step)


@pytest.fixture
def fixed_time_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_module, "plan_epochs", lambda trainer, budget: BudgetPlan(3, 1.0, 0.1, "planned 3"))
    monkeypatch.setattr(budget_module, "REFIT_AFTER", 10**6)


def _cut_and_resume(argv: list[str], out: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run ``argv`` (with ``--out out``) interrupted in micro-batch ``n``, then ``seglab train --resume``."""
    with monkeypatch.context() as m:
        _interrupt_at(m, n)
        assert main([*argv, "--out", str(out)]) != 0
    cut = read_checkpoint(out / "last.pt")
    assert cut["trainer"]["epoch_pos"] > 0  # saved mid-epoch
    assert main(["train", "--resume", "--out", str(out)]) == 0
    return cut


def test_a_time_run_resumes_bit_exactly_and_a_finished_one_extends(tiny_data: Path, tmp_path: Path,
                                                                   fixed_time_plan: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["train", "--data", str(tiny_data), "--model", "unet", "--time", "1h", "--warmup-epochs", "0", *TINY]
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    cut = _cut_and_resume(argv, tmp_path / "cut", 6, monkeypatch)  # epoch 2, step 2
    assert cut["config"]["train"]["monitor"] == "mean_iou"  # was None: "train.monitor: None in the run"
    assert cut["hooks"]["TimeBudget"]["spent"] > 0 and "BestTracker" in cut["hooks"]
    _assert_same(tmp_path / "ref", tmp_path / "cut")
    ck = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert ck["hooks"]["TimeBudget"]["spent"] > cut["hooks"]["TimeBudget"]["spent"]  # the budget went on
    assert ck["hooks"]["BestTracker"] == read_checkpoint(tmp_path / "ref" / "last.pt")["hooks"]["BestTracker"]
    # a finished --time run trains on with --resume --epochs N (the budget no longer applies)
    assert main(["train", "--resume", "--out", str(tmp_path / "ref"), "--epochs", "4"]) == 0
    ck = read_checkpoint(tmp_path / "ref" / "last.pt")
    assert ck["epoch"] == 4 and ck["config"]["train"]["time"] is None and "TimeBudget" not in ck["hooks"]


@pytest.mark.parametrize("entry", ["plan", "data"])
def test_plan_and_data_alone_runs_resume_bit_exactly(entry: str, tiny_data: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if entry == "plan":
        assert main(["plan", str(tiny_data), "--out", str(tmp_path / "plan.yaml")]) == 0
        argv = ["train", "--plan", str(tmp_path / "plan.yaml"), "--epochs", "2", *TINY]
    else:  # no --model: the plan for the data is applied
        argv = ["train", "--data", str(tiny_data), "--epochs", "2", *TINY]
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    _cut_and_resume(argv, tmp_path / "cut", 6, monkeypatch)
    _assert_same(tmp_path / "ref", tmp_path / "cut")


ABLATE = ["--vary", "train.lr=0.01,0.02", "--seeds", "1", "--set", "data.crop_size=32", "--set", "data.workers=0",
          "--set", "model.name=unet", "--set", "model.options={base_channels: 4, depth: 2}", "--set",
          "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.warmup_epochs=0", "--set",
          "train.precision=fp32"]


@pytest.mark.parametrize("timed", [False, True])
def test_an_interrupted_ablation_continues_bit_exactly(timed: bool, tiny_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, request) -> None:
    if timed:
        request.getfixturevalue("fixed_time_plan")
    argv = ["ablate", "--data", str(tiny_data), *ABLATE, *(["--time-per-run", "1h"] if timed else [])]
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    per_run = 4 * (3 if timed else 2)  # micro-batches of one run: 4 steps x its epochs
    with monkeypatch.context() as m:
        _interrupt_at(m, per_run + 6)  # the second variant, its epoch 2
        assert main([*argv, "--out", str(tmp_path / "cut")]) != 0
    second = "lr=0.02/seed0"
    assert read_checkpoint(tmp_path / "cut" / second / "last.pt")["trainer"]["epoch_pos"] > 0
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 0  # the same command continues it
    _assert_same(tmp_path / "ref" / second, tmp_path / "cut" / second)
    assert (tmp_path / "cut" / "report.md").is_file()
