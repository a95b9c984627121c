"""The hooks on their own, with a stand-in trainer: best tracking, early stop, evaluation schedule, order."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from seglab.engine.hooks import BestTracker, CheckpointHook, EarlyStop, EvalHook, Hook, is_due, monitor_mode
from seglab.engine.state import EpochRecord, TrainState


def _trainer(**row: float) -> SimpleNamespace:
    saved: list[str] = []
    t = SimpleNamespace(state=TrainState(), record=EpochRecord(row=dict(row)), stop=False, saved=saved,
                        save=saved.append, log=lambda msg: None, eval_model=None, criterion=None,
                        device=torch.device("cpu"), autocast=None)
    return t


def _epoch(hooks: list[Hook], trainer: SimpleNamespace, **row: float) -> None:
    trainer.record = EpochRecord(row=dict(row))
    trainer.state.epoch += 1
    for h in hooks:
        h.after_epoch(trainer)


def test_best_tracking_max_min_and_nan_never_best() -> None:
    assert monitor_mode("val_loss") == "min" and monitor_mode("mean_iou") == "max"
    t, best = _trainer(), BestTracker("mean_iou")
    seen = []
    for value in (0.5, math.nan, 0.4, 0.6, 0.6):
        _epoch([best], t, mean_iou=value)
        seen.append(t.record.improved)
    assert seen == [True, False, False, True, False]
    assert t.state.best == 0.6 and t.state.bad_epochs == 1  # the NaN epoch did not count
    _epoch([best], t)  # not evaluated: nothing changes
    assert not t.record.improved and t.state.bad_epochs == 1
    t, low = _trainer(), BestTracker("val_loss")
    for value in (1.0, 0.5, 0.7):
        _epoch([low], t, val_loss=value)
    assert t.state.best == 0.5 and t.state.bad_epochs == 1


def test_checkpoints_and_early_stop() -> None:
    t = _trainer()
    hooks = [BestTracker("mean_iou"), CheckpointHook(save_every=2), EarlyStop("mean_iou", patience=2)]
    for value in (0.5, 0.4, 0.3):
        _epoch(hooks, t, mean_iou=value)
    assert t.saved == ["last.pt", "best.pt", "last.pt", "last.pt"] and t.stop
    t.saved.clear()
    for step in (1, 2, 3, 4):
        t.state.step = step
        hooks[1].after_step(t)
    assert t.saved == ["last.pt", "last.pt"]  # steps 2 and 4


def test_eval_every_and_the_last_epoch() -> None:
    assert [e for e in range(1, 11) if is_due(e, 4, 10)] == [4, 8, 10]
    calls = []

    def evaluate(model, loader, criterion, device, autocast):
        calls.append(loader)
        return {"mean_iou": 0.7, "confusion_matrix": [[1]]}, 0.25

    t, ev = _trainer(), EvalHook(evaluate, "val-loader", every=2)
    t.epochs = 3
    _epoch([ev], t, train_loss=1.0)
    assert t.record.metrics is None and "val_loss" not in t.record.row
    _epoch([ev], t, train_loss=1.0)
    assert t.record.row == {"train_loss": 1.0, "val_loss": 0.25, "mean_iou": 0.7}  # floats only in the row
    assert t.record.metrics["confusion_matrix"] == [[1]] and calls == ["val-loader"]


def test_nonfinite_monitor_value_is_never_best_even_first() -> None:
    t = _trainer()
    _epoch([BestTracker("mask_AP")], t, mask_AP=math.nan)
    assert t.state.best is None and not t.record.improved


@pytest.mark.parametrize("point", ["before_train", "before_epoch", "after_step", "after_epoch", "after_train"])
def test_base_hook_does_nothing(point: str) -> None:
    assert getattr(Hook(), point)(_trainer()) is None
