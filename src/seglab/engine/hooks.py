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
acts through ``save(name)``, ``log(msg)``, ``set_epochs(n)`` and ``stop``. The run's number of epochs is
``trainer.epochs``, read when needed: ``--time`` changes it with ``set_epochs`` (config and LR schedule together),
so no hook keeps a copy. A hook with state a resume needs returns it from ``state_dict`` (plain values) and takes
it back in ``load_state_dict``, as detectron2's hooks do; ``last.pt`` carries it under ``"hooks"``. This module
holds the hooks that steer the run (evaluation, LR, best, checkpoints, early stop); ``reporting.py`` holds those
that only write files and print.
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
    stop: bool  # set to end the run after this epoch (set in after_step: after this step, the epoch closed early)
    summary: dict[str, Any] | None  # set before after_train

    @property
    def epochs(self) -> int:
        """The epochs the run is configured for now (``--time`` may change them while it runs)."""
        ...

    def set_epochs(self, epochs: int) -> None:
        """Give the run ``epochs`` epochs: its config (config.yaml, every later checkpoint) and LR schedule."""
        ...

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

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs of this hook, as plain values (empty: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned (called on ``--resume``, before ``before_train``)."""


def monitor_mode(monitor: str) -> str:
    """``min`` for losses (``val_loss``, ...), ``max`` for every score."""
    return "min" if "loss" in monitor else "max"


def is_due(epoch: int, every: int, epochs: int, stopping: bool = False) -> bool:
    """Whether the ``epoch``-th completed epoch (1-based) is evaluated: every ``every``, the last one, and one the
    run stops after (``stopping``: a time budget cut it mid-epoch)."""
    return epoch % every == 0 or epoch >= epochs or stopping


class EvalHook(Hook):
    """Validate every ``every`` epochs and after the last; the metrics go into the epoch's row.

    ``evaluate`` is the task's ``evaluate(model, loader, criterion, device, autocast)``; it returns metrics
    equal on every DDP rank, so every rank takes the same decisions after it. The validation loss uses the
    trainer's ``criterion``, the one training uses. An epoch the run stops after (``trainer.stop`` already set,
    by a time budget mid-epoch) is evaluated too: the run ends with validation metrics.
    """

    def __init__(self, evaluate: Callable[..., tuple[dict[str, Any], float]], loader: torch.utils.data.DataLoader,
                 every: int) -> None:
        self.evaluate, self.loader, self.every = evaluate, loader, every

    def after_epoch(self, trainer: Loop) -> None:
        if not is_due(trainer.state.epoch, self.every, trainer.epochs, trainer.stop):
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

    The tracker owns ``best`` and ``bad`` (its resume state); it publishes them as ``state.best`` and
    ``state.bad_epochs`` for the summary and :class:`EarlyStop`.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor, self.mode = monitor, monitor_mode(monitor)
        self.best: float | None = None
        self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "best": self.best, "bad_epochs": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state.get("best"), int(state.get("bad_epochs", 0))

    def before_train(self, trainer: Loop) -> None:
        trainer.state.best, trainer.state.bad_epochs = self.best, self.bad

    def after_epoch(self, trainer: Loop) -> None:
        row = trainer.record.row
        value = row.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        if not math.isfinite(row.get("val_loss", 0.0)) or not math.isfinite(value):
            trainer.log(f"[yellow]epoch {row.get('epoch')}: validation is not finite (val_loss "
                        f"{row.get('val_loss')}, {self.monitor} {value}); it cannot be the best epoch[/]")
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        self.best, self.bad = (value, 0) if better else (self.best, self.bad + 1)
        trainer.state.best, trainer.state.bad_epochs = self.best, self.bad
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
