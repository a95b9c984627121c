"""``--time 15m``: fit the run to a wall-clock budget, as Ultralytics' ``time=`` does: planned, then re-fitted.

Before the first epoch the trainer measures a few training steps and a validation batch on copies of the
model and optimizer (nothing of the run changes, RNG states included), turns them into the seconds an epoch
takes, and sets ``epochs`` so that training and its evaluations end inside the budget; the LR schedule is
built for those epochs, so cosine or poly still anneal to the end. :class:`TimeBudget` then re-fits the
epochs (and the schedule) to the measured epoch times during the first half of the run, and stops early,
after an epoch, if a busy machine makes later epochs longer still. Under DDP rank 0 plans
and decides; every rank follows.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
import time
from typing import Any

import torch

from seglab.distributed import on_main_then_share
from seglab.engine.build import build_optimizer
from seglab.engine.hooks import Hook, Loop
from seglab.engine.state import rng_state, set_rng_state

SAFETY = 0.85  # of the budget planned for; the rest absorbs the pictures drawn before epoch 1 and the final save
REFIT_AFTER = 2  # epochs timed before the epoch count is first re-fitted (the first pays one-off costs)
MARGIN = 0.03  # of the budget left free after the re-fitted last epoch (final save, report)
PER_EPOCH_S = 0.8  # metrics.csv, curves and sample pictures once per epoch (measured 0.85 s on a 2-core CPU, tiny run)


def _now(device: torch.device) -> float:
    """The clock after the device's queued work: CUDA runs asynchronously, so time it after a sync."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _timed_steps(trainer: Any, batches: list, steps: int) -> float:
    """Median seconds of a training step (forward, backward, optimizer) on copies of the model/optimizer."""
    model = copy.deepcopy(trainer.raw_model).train()
    t = trainer.t
    optimizer = build_optimizer(model, t.optimizer, t.lr, t.weight_decay, t.momentum, t.nesterov)
    times = []
    for batch in batches[: steps + 1]:
        inputs, targets = trainer.task.prepare_batch(batch, trainer.device, trainer.t.channels_last)
        start = _now(trainer.device)
        with trainer.autocast():
            loss, _ = trainer.task.compute_loss(model, trainer.criterion, inputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(_now(trainer.device) - start)
    return sorted(times[1:] or times)[len(times[1:] or times) // 2]  # the first step warms up caches


@torch.no_grad()
def _timed_validation(trainer: Any) -> float:
    """Seconds of one validation batch (forward only) on a copy of the model: the second of two runs, since
    the first pays one-off costs (allocations, kernel selection) an epoch pays once."""
    model = copy.deepcopy(trainer.raw_model).eval()
    batch = next(iter(trainer.val_loader))
    inputs, _ = trainer.task.prepare_batch(batch, trainer.device, False)
    seconds = []
    for _ in range(2):
        start = _now(trainer.device)
        with trainer.autocast():
            model(inputs)
        seconds.append(_now(trainer.device) - start)
    return seconds[-1]


def _save_s(trainer: Any) -> float:
    """Seconds to serialise ``last.pt`` (in memory: the disk write is about as fast)."""
    import io

    start = time.perf_counter()
    torch.save(trainer.raw_model.state_dict(), io.BytesIO())
    return 2 * (time.perf_counter() - start)  # optimizer state (AdamW: twice the weights) is about as much again


def plan_epochs(trainer: Any, budget_s: float, steps: int = 3) -> tuple[int, float, str]:
    """Epochs that fit ``budget_s`` seconds, the estimated seconds per epoch, and the reason in words."""
    rng = rng_state()
    try:
        batches = []
        for batch in trainer.train_loader:
            batches.append(batch)
            if len(batches) > steps:
                break
        step_s = _timed_steps(trainer, batches, steps)
        val_s = _timed_validation(trainer)
    finally:
        set_rng_state(rng)
    writing = PER_EPOCH_S + _save_s(trainer)
    evals = 1 / max(1, trainer.t.eval_every)  # validation runs every eval_every epochs
    per_epoch = step_s * len(trainer.train_loader) + evals * val_s * len(trainer.val_loader) + writing
    left = budget_s - (time.perf_counter() - trainer.created)
    # at least the warm-up: a run shorter than its warm-up would be a config no resume could load
    epochs = max(1, math.ceil(trainer.t.warmup_epochs), math.floor(SAFETY * left / per_epoch))
    why = (f"--time {budget_s / 60:.1f} min: {step_s:.3g} s/step x {len(trainer.train_loader)} steps + "
           f"{val_s:.3g} s/val batch x {len(trainer.val_loader)} + writing {writing:.2g} s "
           f"= {per_epoch:.3g} s/epoch (measured), so {epochs} epochs")
    return epochs, per_epoch, why


class TimeBudget(Hook):
    """Re-fit the epochs to the measured epoch times during the first half of the run, then stop after an epoch
    when the next one would end past the budget.

    From epoch ``REFIT_AFTER`` on, the recent epochs' time replaces the pre-run estimate, as Ultralytics'
    ``time=`` does: the run gets the epochs that fit the rest of the budget and an LR schedule rebuilt to end
    with them, so a cautious estimate no longer leaves minutes unused and an optimistic one no longer stops
    mid-schedule; a median of recent epochs forgets a slow start (another job, a cold cache). Later re-fits
    move the run by two epochs or more (one is timing noise) and stop at half the run, where the LR curve
    would bend too late; the first one always applies, so a plan far too short gets the budget (and a warm
    restart of its schedule) rather than wasting it. The trainer runs this hook before ``CheckpointHook``, so
    the epoch's ``last.pt`` already holds a re-fit. An epoch is timed from the previous epoch's call to this
    one: training, validation and the previous epoch's files. Not on a resume (the budget then counts from
    the resume). Under DDP every rank takes rank 0's decisions.
    """

    def __init__(self, budget_s: float, started: float, refit: bool = True) -> None:
        self.budget_s, self.started, self.epoch_started = budget_s, started, started
        self.times: list[float] = []
        self.last_call: float | None = None
        self.refit = refit

    def before_epoch(self, trainer: Loop) -> None:
        self.epoch_started = time.perf_counter()

    def after_epoch(self, trainer: Loop) -> None:
        now = time.perf_counter()
        self.times.append(now - (self.last_call if self.last_call is not None else self.epoch_started))
        self.last_call = now
        t, done = trainer.t, trainer.state.epoch  # type: ignore[attr-defined]
        # 1.25 x the longest recent epoch: a busy machine or a best epoch's extra pictures make epochs vary
        longest = max(self.times[-3:])
        over = on_main_then_share(lambda: now - self.started + 1.25 * longest > self.budget_s)
        if over and done < t.epochs and not trainer.stop:  # after the last epoch there is nothing to stop
            trainer.log(f"[yellow]--time: stopping after epoch {done}; another epoch ({longest:.0f} s) would end "
                        f"past the {self.budget_s / 60:.1f} min budget[/]")
            trainer.stop = True
        n = len(self.times)  # the first re-fit always; later ones in the first half of the run
        if self.refit and (n == REFIT_AFTER or n > REFIT_AFTER and 2 * done <= t.epochs) and not trainer.stop:
            epochs = on_main_then_share(lambda: self.fitted(done, now, t.warmup_epochs, t.eval_every))
            if abs(epochs - t.epochs) >= (1 if n == REFIT_AFTER else 2):  # later: no see-saw over one epoch
                curve = "the LR schedule now ends with them" if t.schedule in ("cosine", "poly") else \
                    f"the {t.schedule} schedule is unchanged"
                trainer.log(f"--time: {epochs} epochs instead of {t.epochs} (measured "
                            f"{self.per_epoch(t.eval_every):.3g} s/epoch); {curve}")
                refit_epochs(trainer, epochs)

    def per_epoch(self, eval_every: int = 1) -> float:
        """Seconds per epoch from the recent ones, the first (one-off costs) left out once there are others: the
        median of five, or with validation every ``eval_every`` epochs the mean of a whole cycle of them."""
        recent = (self.times[1:] or self.times)[-max(5, eval_every):]
        return statistics.median(recent) if eval_every == 1 else statistics.fmean(recent)

    def fitted(self, done: int, now: float, warmup_epochs: float, eval_every: int = 1) -> int:
        """The epochs (done + to come) that end ``MARGIN`` of the budget early at the measured epoch time."""
        left = self.budget_s * (1 - MARGIN) - (now - self.started) - 0.25 * max(self.times[-3:])
        return max(done + 1, math.ceil(warmup_epochs), done + math.floor(left / self.per_epoch(eval_every)))


def refit_epochs(trainer: Any, epochs: int) -> None:
    """Give a running trainer ``epochs`` epochs: its config (config.yaml and every later checkpoint), its LR
    schedule, and the hooks that count epochs (they keep the count in ``epochs``)."""
    from seglab.engine.reporting import WriteConfig

    trainer.cfg = dataclasses.replace(trainer.cfg, train=dataclasses.replace(trainer.t, epochs=epochs))
    trainer.t = trainer.cfg.train
    trainer.schedule.retotal(trainer.steps_per_epoch * epochs)
    for hook in trainer.hooks:
        if hasattr(hook, "epochs"):
            hook.epochs = epochs
        if isinstance(hook, WriteConfig):
            hook.yaml_text = trainer.cfg.to_yaml()
            hook.before_train(trainer)
