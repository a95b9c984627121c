"""``--time 15m``: fit the run to a wall-clock budget, as Ultralytics' ``time=`` does: planned, then re-fitted.

Before the first epoch the trainer measures a few training steps and a validation batch on copies of the
model and optimizer (nothing of the run changes, RNG states included), turns them into the seconds an epoch
takes, and sets ``epochs`` so that training and its evaluations end inside the budget; the LR schedule is
built for those epochs, so cosine or poly still anneal to the end (:func:`plan_epochs`; ``seglab plan
--time`` measures the same way without a trainer, :func:`fit_to_budget`). :class:`TimeBudget` then re-fits
the epochs (``trainer.set_epochs``) to the measured epoch times during the first half of the run, and stops
early, after an epoch or inside one, if a busy machine makes epochs longer still; its state (budget spent,
epoch times) is saved in ``last.pt``, so a resumed run keeps the budget it had left. Under DDP rank 0 plans
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
    """Seconds of one validation batch (the task's unscored validation forward, at the training scale under
    ``data.resize``) on a copy of the model: the second of two runs, since the first pays one-off costs
    (allocations, kernel selection) an epoch pays once."""
    model = copy.deepcopy(trainer.raw_model).eval()
    batch = next(iter(trainer.val_loader))
    seconds = []
    for _ in range(2):
        start = _now(trainer.device)
        trainer.task.validation_forward(model, batch, trainer.device, trainer.autocast)
        seconds.append(_now(trainer.device) - start)
    return seconds[-1]


def _save_s(trainer: Any) -> float:
    """Seconds to serialise ``last.pt`` (in memory: the disk write is about as fast)."""
    import io

    start = time.perf_counter()
    torch.save(trainer.raw_model.state_dict(), io.BytesIO())
    return 2 * (time.perf_counter() - start)  # optimizer state (AdamW: twice the weights) is about as much again


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """What fits a budget: ``epochs``, the measured seconds of an epoch and of a run's closing evaluation and
    save (``finish_s``: what a stop mid-epoch must leave), the reason in words and a warning when one epoch does
    not fit at all."""

    epochs: int
    per_epoch_s: float
    finish_s: float
    why: str
    warning: str | None = None


def plan_epochs(trainer: Any, budget_s: float, steps: int = 3) -> BudgetPlan:
    """Epochs that fit ``budget_s`` seconds, measured on copies of ``trainer``'s model and optimizer.

    ``trainer`` is anything with the parts a step needs (:class:`~seglab.engine.trainer.Trainer`, or
    :func:`fit_to_budget`'s): ``task, raw_model, criterion, train_loader, val_loader, device, t, autocast,
    created`` (the clock the budget counts from).
    """
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
    validation = val_s * len(trainer.val_loader)
    per_epoch = step_s * len(trainer.train_loader) + evals * validation + writing
    left = budget_s - (time.perf_counter() - trainer.created)
    # at least the warm-up: a run shorter than its warm-up would be a config no resume could load
    epochs = max(1, math.ceil(trainer.t.warmup_epochs), math.floor(SAFETY * left / per_epoch))
    why = (f"--time {budget_s / 60:.1f} min: {step_s:.3g} s/step x {len(trainer.train_loader)} steps + "
           f"{val_s:.3g} s/val batch x {len(trainer.val_loader)} + writing {writing:.2g} s "
           f"= {per_epoch:.3g} s/epoch (measured), so {epochs} epochs")
    warning = None
    fit = max(1, math.floor((left - validation - writing) / step_s))  # steps before the closing evaluation
    if fit < len(trainer.train_loader):
        warning = (f"one epoch ({per_epoch:.0f} s measured) is longer than what is left of the --time "
                   f"{budget_s / 60:.1f} min budget ({max(0.0, left):.0f} s): the run stops inside epoch 1 after "
                   f"about {fit} of {len(trainer.train_loader)} steps"
                   + (f", inside its {trainer.t.warmup_epochs:g}-epoch warm-up" if trainer.t.warmup_epochs else "")
                   + ". Give more time, or use smaller crops / a smaller model.")
    return BudgetPlan(epochs, per_epoch, validation + writing, why, warning)


def fit_to_budget(cfg: Any, device: torch.device, budget_s: float) -> BudgetPlan:
    """The epochs a run of ``cfg`` gets from ``budget_s`` seconds on ``device``, without a Trainer (``seglab plan
    --time``): the task, model, loaders and loss are built as training builds them, a few steps are timed, and
    nothing is written. The budget counts from this call, as training's counts from the Trainer's start."""
    from types import SimpleNamespace

    from seglab import distributed as D
    from seglab.engine import build as B
    from seglab.engine.precision import resolve_precision

    created = time.perf_counter()
    dist = D.DistInfo(device=device)
    t = cfg.train
    task = B.build_task(cfg)
    options = B.merge_model_options(cfg.model.options, task.model_options())
    built = B.build_model(cfg.model.name, task.num_classes, options, cfg.data.in_channels, dist,
                          channels_last=t.channels_last)
    loaders = B.build_loaders(task, dist, t.batch_size, cfg.data.workers, t.seed,
                              balanced=cfg.data.sampler == "balanced", repeats=cfg.data.repeats)
    precision = resolve_precision(t.precision, device)
    parts = SimpleNamespace(task=task, raw_model=built.raw, criterion=task.criterion().to(device),
                            train_loader=loaders.train, val_loader=loaders.val, device=device, t=t,
                            autocast=precision.autocast, created=created)
    return plan_epochs(parts, budget_s)


class TimeBudget(Hook):
    """Re-fit the epochs to the measured epoch times during the first half of the run; stop when the budget is
    spent, mid-epoch if need be.

    From epoch ``REFIT_AFTER`` on, the recent epochs' time replaces the pre-run estimate, as Ultralytics'
    ``time=`` does: the run gets the epochs that fit the rest of the budget (``trainer.set_epochs``: config and
    LR schedule, so the cosine or poly still ends with the run); a median of recent epochs forgets a slow
    start (another job, a cold cache). Later re-fits move the run by two epochs or more (one is timing noise)
    and stop at half the run, where the LR curve would bend too late; the first one always applies, so a plan
    far too short gets the budget rather than wasting it. The trainer runs this hook before
    ``CheckpointHook``, so the epoch's ``last.pt`` already holds a re-fit.

    The budget is checked every ``check_every`` optimizer steps too: when what is left would not cover the
    closing evaluation and save (``finish_s``: measured by the plan, then the last epoch's closing from its last
    step to the next epoch), the epoch ends after this step; the
    loop then evaluates it and writes a consistent ``last.pt`` as after any epoch. After an epoch it stops
    when the next one would end past the budget. ``report.md`` says when and what was left out.

    Resume state (:meth:`state_dict`): the seconds of the budget already spent, the epoch times and the note
    of a cut, so an interrupted run continues with the budget it had left; ``restart`` gives a resumed run a
    new budget (``--resume --time T``). Under DDP every rank takes rank 0's decisions.
    """

    def __init__(self, budget_s: float, started: float, *, finish_s: float = 0.0, warmup_epochs: float = 0.0,
                 eval_every: int = 1, schedule: str = "cosine", steps_per_epoch: int = 1, samples_per_step: int = 1,
                 check_every: int = 1, refit: bool = True) -> None:
        self.budget_s, self.started, self.epoch_started = budget_s, started, started
        self.spent = 0.0  # seconds of this budget used by earlier sessions of the run (a resume continues them)
        self.finish_s, self.planned_finish_s, self.warmup_epochs = finish_s, finish_s, warmup_epochs
        self.last_step: float | None = None
        self.eval_every, self.schedule = eval_every, schedule
        self.steps_per_epoch, self.samples_per_step, self.check_every = steps_per_epoch, samples_per_step, check_every
        self.times: list[float] = []
        self.last_call: float | None = None
        self.refit = refit
        self.cut: str | None = None  # why the budget ended the run early, for the console and report.md

    def elapsed(self, now: float | None = None) -> float:
        """Seconds of the budget used so far, earlier sessions of the run included."""
        return self.spent + ((time.perf_counter() if now is None else now) - self.started)

    def spent_up(self) -> bool:
        """Whether nothing of the budget is left for another step and the closing evaluation (1.25 x its
        measured time: the run's last files, a busy machine)."""
        return self.elapsed() + 1.25 * self.finish_s >= self.budget_s

    def restart(self, budget_s: float) -> None:
        """A new budget, counted from this session's start (``--resume --time T``); epoch times are kept."""
        self.budget_s, self.spent, self.cut = budget_s, 0.0, None

    def state_dict(self) -> dict[str, Any]:
        return {"budget_s": self.budget_s, "spent": self.elapsed(), "finish_s": self.finish_s,
                "times": list(self.times), "cut": self.cut}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The budget as :meth:`state_dict` saved it, its clock going on from now (a resume, or an epoch's end
        rolled back by Ctrl-C)."""
        self.spent, self.finish_s = float(state.get("spent", 0.0)), float(state.get("finish_s", self.finish_s))
        self.times, self.cut = [float(x) for x in state.get("times", [])], state.get("cut")
        self.started, self.last_call, self.last_step = time.perf_counter(), None, None

    def before_epoch(self, trainer: Loop) -> None:
        self.epoch_started = time.perf_counter()
        if self.last_step is not None:  # the last epoch's closing (evaluation, checkpoints, files), as measured
            self.finish_s = max(self.planned_finish_s, self.epoch_started - self.last_step)

    def after_step(self, trainer: Loop) -> None:
        self.last_step = time.perf_counter()
        if trainer.stop or trainer.state.step % self.check_every:
            return
        if on_main_then_share(self.spent_up):
            done, epochs = trainer.state.epoch, trainer.epochs
            step = trainer.state.epoch_pos // max(1, self.samples_per_step)
            if step >= self.steps_per_epoch:  # the epoch's last step: it ends anyway, after it the epoch check
                return
            later = f"epoch {epochs}" if epochs == done + 2 else f"epochs {done + 2}-{epochs}"
            lost = f"the rest of epoch {done + 1}" + (f" and {later}" if epochs > done + 1 else "")
            self.cut = (f"The --time {self.budget_s / 60:.1f} min budget ended the run inside epoch {done + 1} of "
                        f"{epochs}, after step {step} of {self.steps_per_epoch}; left out: {lost}"
                        + self._schedule_note(trainer, done + 1, epochs))
            trainer.log(f"[yellow]--time: the budget is spent; stopping inside epoch {done + 1} after step {step} "
                        f"of {self.steps_per_epoch} (a final evaluation and last.pt follow)[/]")
            trainer.stop = True

    def _schedule_note(self, trainer: Loop, done: int, epochs: int) -> str:
        if done < self.warmup_epochs:
            return f"; the run stopped inside its {self.warmup_epochs:g}-epoch warm-up (lr {trainer.lr:.2g})."
        if self.schedule in ("cosine", "poly") and done < epochs:
            return f"; the {self.schedule} schedule had not reached its end (lr {trainer.lr:.2g})."
        return "."

    def after_epoch(self, trainer: Loop) -> None:
        now = time.perf_counter()
        self.times.append(now - (self.last_call if self.last_call is not None else self.epoch_started))
        self.last_call = now
        done = trainer.state.epoch
        # 1.25 x the longest recent epoch: a busy machine or a best epoch's extra pictures make epochs vary
        longest = max(self.times[-3:])
        over = on_main_then_share(lambda: self.elapsed(now) + 1.25 * longest > self.budget_s)
        if over and done < trainer.epochs and not trainer.stop:  # after the last epoch there is nothing to stop
            trainer.log(f"[yellow]--time: stopping after epoch {done}; another epoch ({longest:.0f} s) would end "
                        f"past the {self.budget_s / 60:.1f} min budget[/]")
            left = f"epoch {done + 1}" if trainer.epochs == done + 1 else f"epochs {done + 1}-{trainer.epochs}"
            self.cut = (f"The --time {self.budget_s / 60:.1f} min budget ended the run after epoch {done} of "
                        f"{trainer.epochs} (another epoch would have ended past it); left out: {left}"
                        + self._schedule_note(trainer, done, trainer.epochs))
            trainer.stop = True
        n = len(self.times)  # the first re-fit always; later ones in the first half of the run
        if self.refit and (n == REFIT_AFTER or n > REFIT_AFTER and 2 * done <= trainer.epochs) and not trainer.stop:
            epochs = on_main_then_share(lambda: self.fitted(done, now))
            if abs(epochs - trainer.epochs) >= (1 if n == REFIT_AFTER else 2):  # later: no see-saw over one epoch
                curve = "the LR schedule now ends with them" if self.schedule in ("cosine", "poly") else \
                    f"the {self.schedule} schedule is unchanged"
                trainer.log(f"--time: {epochs} epochs instead of {trainer.epochs} (measured "
                            f"{self.per_epoch(self.eval_every):.3g} s/epoch); {curve}")
                trainer.set_epochs(epochs)

    def after_train(self, trainer: Loop) -> None:
        if self.cut and trainer.summary is not None:
            trainer.summary["budget_cut"] = self.cut

    def per_epoch(self, eval_every: int = 1) -> float:
        """Seconds per epoch from the recent ones, the first (one-off costs) left out once there are others: the
        median of five, or with validation every ``eval_every`` epochs the mean of a whole cycle of them."""
        recent = (self.times[1:] or self.times)[-max(5, eval_every):]
        return statistics.median(recent) if eval_every == 1 else statistics.fmean(recent)

    def fitted(self, done: int, now: float | None = None) -> int:
        """The epochs (done + to come) that end ``MARGIN`` of the budget early at the measured epoch time."""
        left = self.budget_s * (1 - MARGIN) - self.elapsed(now) - 0.25 * max(self.times[-3:])
        return max(done + 1, math.ceil(self.warmup_epochs), done + math.floor(left / self.per_epoch(self.eval_every)))
