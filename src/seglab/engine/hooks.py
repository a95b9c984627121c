"""Named hooks around the training loop, in the style of detectron2's ``HookBase``.

The :class:`~seglab.engine.trainer.Trainer` calls every hook, in list order, at five points:

- ``before_train``: once, before the first epoch (after a resume has restored the state);
- ``before_epoch``: before each epoch's first batch;
- ``after_step``: after each optimizer step (``state.step`` already counts it);
- ``after_epoch``: after each epoch; ``state.epoch`` counts it and ``record.row`` (this epoch's
  metrics.csv row, already last in ``state.history``) holds the training numbers. Hooks earlier in
  the list add to it for those after: :class:`EvalHook` puts the validation metrics in, :class:`BestTracker`
  sets ``record.improved``;
- ``after_train``: once, when the epochs are done (or early stop); ``trainer.summary`` is set.

A hook is constructed from plain values and sees the trainer only through :class:`Loop`: it reads
``state``, ``record``, ``eval_model``, ``criterion``, ``device``, ``autocast``, ``lr`` and ``summary``, and
acts through ``save(name)``, ``log(msg)`` and ``stop``. A hook that uses the run's number of epochs keeps it in
``epochs``: ``--time`` updates it when it re-fits the run (``budget.refit_epochs``). This module holds the
hooks that steer the run (evaluation, LR, best, checkpoints, early stop); ``reporting.py`` holds those that
only write files and print.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch
from torch import nn

from seglab.engine.schedules import LRSchedule
from seglab.engine.state import EpochRecord, TrainState


class Loop(Protocol):
    """The trainer as hooks see it (:class:`~seglab.engine.trainer.Trainer` implements it)."""

    state: TrainState  # persisted counters and history
    record: EpochRecord  # the current epoch
    criterion: nn.Module
    device: torch.device
    stop: bool  # set to end the run after this epoch
    summary: dict[str, Any] | None  # set before after_train

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and picture (EMA when on), in eval mode after each epoch."""
        ...

    @property
    def lr(self) -> float:
        """The current learning rate (first parameter group)."""
        ...

    def autocast(self) -> AbstractContextManager:
        """The run's autocast context."""
        ...

    def save(self, name: str = "last.pt") -> None:
        """Write the checkpoint ``<out>/<name>`` (rank 0, atomic)."""
        ...

    def log(self, msg: str) -> None:
        """A console line (rank 0)."""
        ...


class Hook:
    """Does nothing at every point; a hook overrides the points it needs."""

    def before_train(self, trainer: Loop) -> None:
        """Once, before the first epoch."""

    def before_epoch(self, trainer: Loop) -> None:
        """Before each epoch."""

    def after_step(self, trainer: Loop) -> None:
        """After each optimizer step."""

    def after_epoch(self, trainer: Loop) -> None:
        """After each epoch (see the module docstring for what is already in ``trainer.record``)."""

    def after_train(self, trainer: Loop) -> None:
        """Once, after the last epoch."""


def monitor_mode(monitor: str) -> str:
    """``min`` for losses (``val_loss``, ...), ``max`` for every score."""
    return "min" if "loss" in monitor else "max"


def is_due(epoch: int, every: int, epochs: int) -> bool:
    """Whether the ``epoch``-th completed epoch (1-based) is evaluated: every ``every`` and the last one."""
    return epoch % every == 0 or epoch == epochs


class EvalHook(Hook):
    """Validate every ``every`` epochs and after the last; the metrics go into the epoch's row.

    ``evaluate`` is the task's ``evaluate(model, loader, criterion, device, autocast)``; it returns metrics
    equal on every DDP rank, so every rank takes the same decisions after it. The validation loss uses the
    trainer's ``criterion``, the one training uses.
    """

    def __init__(self, evaluate: Callable[..., tuple[dict[str, Any], float]], loader: torch.utils.data.DataLoader,
                 every: int, epochs: int) -> None:
        self.evaluate, self.loader, self.every, self.epochs = evaluate, loader, every, epochs

    def after_epoch(self, trainer: Loop) -> None:
        if not is_due(trainer.state.epoch, self.every, self.epochs):
            return
        metrics, val_loss = self.evaluate(trainer.eval_model, self.loader, trainer.criterion, trainer.device,
                                          trainer.autocast)
        trainer.record.metrics = metrics
        if val_loss is not None:  # None: the task has no validation loss (Mask R-CNN)
            trainer.record.row["val_loss"] = val_loss
        trainer.record.row.update({k: v for k, v in metrics.items() if isinstance(v, float)})


class LRScheduleHook(Hook):
    """Step the per-iteration schedule after each optimizer step; plateau steps on each evaluation."""

    def __init__(self, schedule: LRSchedule, monitor: str) -> None:
        self.schedule, self.monitor = schedule, monitor

    def after_step(self, trainer: Loop) -> None:
        self.schedule.step_iter()

    def after_epoch(self, trainer: Loop) -> None:
        if trainer.record.metrics is not None:
            self.schedule.step_eval(trainer.record.row.get(self.monitor, math.nan))


class BestTracker(Hook):
    """Track the best monitored value (``state.best``) and evaluations since it (``state.bad_epochs``).

    An epoch without the metric (not evaluated) or with a NaN value (an AP without ground truth) changes
    nothing: it is never best and does not count towards early stop. An epoch whose validation loss is not
    finite is never best either, whatever the monitored metric says: its weights have diverged.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor, self.mode = monitor, monitor_mode(monitor)

    def after_epoch(self, trainer: Loop) -> None:
        row = trainer.record.row
        value = row.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        if not math.isfinite(row.get("val_loss", 0.0)) or not math.isfinite(value):
            trainer.log(f"[yellow]epoch {row.get('epoch')}: validation is not finite (val_loss "
                        f"{row.get('val_loss')}, {self.monitor} {value}); it cannot be the best epoch[/]")
            return
        s = trainer.state
        better = s.best is None or (value > s.best if self.mode == "max" else value < s.best)
        if better:
            s.best, s.bad_epochs = value, 0
        else:
            s.bad_epochs += 1
        trainer.record.improved = better


class CheckpointHook(Hook):
    """``last.pt`` after every epoch and every ``save_every`` steps, ``best.pt`` when the metric improved."""

    def __init__(self, save_every: int = 0) -> None:
        self.save_every = save_every

    def after_step(self, trainer: Loop) -> None:
        if self.save_every and trainer.state.step % self.save_every == 0:
            trainer.save("last.pt")

    def after_epoch(self, trainer: Loop) -> None:
        trainer.save("last.pt")
        if trainer.record.improved:
            trainer.save("best.pt")


class EarlyStop(Hook):
    """Stop after ``patience`` evaluations without a new best (0: never)."""

    def __init__(self, monitor: str, patience: int) -> None:
        self.monitor, self.patience = monitor, patience

    def after_epoch(self, trainer: Loop) -> None:
        if self.patience and trainer.state.bad_epochs >= self.patience:
            trainer.log(f"early stop: {self.monitor} did not improve for {self.patience} evaluations")
            trainer.stop = True
