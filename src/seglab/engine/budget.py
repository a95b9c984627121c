"""``--time 15m``: fit the run to a wall-clock budget, as Ultralytics' ``time=`` does, but before it starts.

Before the first epoch the trainer measures a few training steps and a validation batch on copies of the
model and optimizer (nothing of the run changes, RNG states included), turns them into the seconds an epoch
takes, and sets ``epochs`` so that training and its evaluations end inside the budget; the LR schedule is
built for those epochs, so cosine or poly still anneal to the end. :class:`TimeBudget` then watches the
real epoch times and stops early, after an epoch, if the estimate was too optimistic. Under DDP rank 0 plans
and decides; every rank follows.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch

from seglab.distributed import on_main_then_share
from seglab.engine.build import build_optimizer
from seglab.engine.hooks import Hook, Loop
from seglab.engine.state import rng_state, set_rng_state

SAFETY = 0.85  # of the budget planned for; the rest absorbs the pictures drawn before epoch 1 and the final save
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
    """Stop after an epoch when the next one would end past the budget (the plan's estimate was short).

    Under DDP every rank takes rank 0's decision, so no rank waits for a gradient sync that never comes.
    """

    def __init__(self, budget_s: float, started: float) -> None:
        self.budget_s, self.started, self.epoch_started = budget_s, started, started
        self.longest = 0.0

    def before_epoch(self, trainer: Loop) -> None:
        self.epoch_started = time.perf_counter()

    def after_epoch(self, trainer: Loop) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.epoch_started)
        # 1.25 x the longest epoch so far: a busy machine or a best epoch's extra pictures make epochs vary
        over = on_main_then_share(lambda: now - self.started + 1.25 * self.longest > self.budget_s)
        if over and not trainer.stop:
            trainer.log(f"[yellow]--time: stopping after epoch {trainer.state.epoch}; another epoch "
                        f"({self.longest:.0f} s) would end past the {self.budget_s / 60:.1f} min budget[/]")
            trainer.stop = True
