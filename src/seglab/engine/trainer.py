"""The training loop: one engine for every task, a short step, and named hooks for everything else.

``train_epoch`` reads like the study guide's: forward, loss, backward, then every ``accum`` micro-batches
step and zero_grad. What a real run adds around it (evaluation, LR schedule, best tracking, checkpoints,
early stop, logs and pictures) are hooks (``hooks.py``, ``reporting.py``) called at ``before_train``,
``before_epoch``, ``after_step``, ``after_epoch`` and ``after_train``. What is task-specific comes from the
:class:`~seglab.engine.task.Task`. The trainer itself owns the model, optimizer, schedule, precision, EMA
and the state a checkpoint needs for an exact resume.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab import distributed as D
from seglab.checkpoint import save_checkpoint
from seglab.config import RunConfig, check_config, config_from_dict, did_you_mean, flag_updates
from seglab.config.values import parse_duration
from seglab.engine import build as B
from seglab.engine import hooks as H
from seglab.engine import reporting as R
from seglab.engine.budget import TimeBudget, plan_epochs
from seglab.engine.precision import resolve_precision
from seglab.engine.review_hook import ReviewHook
from seglab.engine.run_state import hook_states, load_hook_states, resume_run, run_state
from seglab.engine.rundir import RunLock, fresh_run_dir, own_run_dir
from seglab.engine.safety import (
    NonFiniteWeightsError,
    StepSnapshot,
    deferred_interrupts,
    nonfinite_weights,
    sigterm_interrupts,
)
from seglab.engine.schedules import LRSchedule
from seglab.engine.state import EpochRecord, TrainState, seed_everything
from seglab.errors import ConfigError, SeglabError
from seglab.fileio import check_output_path


class NonFiniteLossError(SeglabError):
    """The loss became NaN/Inf; the run stops before the bad update touches the weights."""


def train(cfg: RunConfig | None = None, *, given: Iterable[str] = (), **settings: Any) -> dict[str, Any]:
    """Train as ``cfg`` (or the defaults) and ``settings`` say; returns the summary (best metric, out, ...).

    ``settings`` are the flag names of ``seglab train``: ``seglab.train(data="runs/demo/data", epochs=3,
    lr=0.01, model="unet", model_options={"base_channels": 16}, out="runs/py")``. A new run never writes into a
    folder holding another run: ``train.out`` becomes the next free name (``runs/exp2``) unless
    ``train.resume`` continues the run there. ``given``: ``section.key`` names set by the user (kept by the plan).
    """
    cfg = config_from_dict(flag_updates(settings), copy.deepcopy(cfg) if cfg else None) if settings else \
        (cfg or RunConfig())
    dist = D.setup(cfg.train.device)
    try:
        if not cfg.train.resume:
            out = fresh_run_dir(cfg.train.out)
            D.barrier()  # every rank chose the name before rank 0 creates the folder
            if dist.is_main and str(out) != cfg.train.out:
                R.log(f"{cfg.train.out} holds an earlier run, so this one goes to {out} (continue that one with "
                      f"`seglab train --resume --out {cfg.train.out}`)")
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out=str(out)))
        # the folder is claimed (locked) before the data scan and the model build, not only when fit() starts
        if dist.is_main:
            check_output_path(cfg.train.out, directory=True)
        with RunLock(cfg.train.out) if dist.is_main else contextlib.nullcontext():
            return Trainer(cfg, dist, {*given, *(f"{s}.{k}" for s, kv in flag_updates(settings).items() for k in kv)}
                           ).fit()
    finally:
        D.cleanup()


class Trainer:
    """Owns the model, optimizer, schedule, precision and state; ``fit`` runs the loop and the hooks.

    ``hooks`` is the list called at each hook point, in order (see ``hooks.py`` for the contract);
    :meth:`default_hooks` builds the standard run. Append to ``trainer.hooks`` to add one.
    """

    def __init__(self, cfg: RunConfig, dist: D.DistInfo | None = None, given: Iterable[str] = ()) -> None:
        check_config(cfg)  # a config built in Python gets the checks a YAML file or the flags get
        self.created = time.perf_counter()  # --time counts from here
        self.dist = dist or D.DistInfo()
        self.device = self.dist.device
        cfg, self.model_note = B.resolve_model(cfg, self.device, given)
        t = cfg.train
        self.out = Path(t.out)
        self.precision = resolve_precision(t.precision, self.device)
        seed_everything(t.seed)
        self.task = B.build_task(cfg)
        # The run's config, as config.yaml and every checkpoint show it: with the monitor actually used.
        self.cfg = B.resolve_monitor(cfg, self.task.default_monitor)
        self.t, self.monitor = self.cfg.train, self.cfg.train.monitor
        if self.monitor not in self.task.monitors:
            raise ConfigError(f"--monitor {self.monitor!r} is not a metric of {self.task.name} training."
                              f"{did_you_mean(self.monitor, self.task.monitors)} Choose one of: "
                              f"{', '.join(self.task.monitors)}.")
        options = B.merge_model_options(cfg.model.options, self.task.model_options())  # + the data's (things)
        built = B.build_model(cfg.model.name, self.task.num_classes, options, cfg.data.in_channels, self.dist,
                            grad_checkpointing=t.grad_checkpointing, sync_bn=t.sync_bn,
                            channels_last=t.channels_last, compile=t.compile)
        self.raw_model, self.model, self.model_spec = built.raw, built.model, built.spec
        loaders = B.build_loaders(self.task, self.dist, t.batch_size, cfg.data.workers, t.seed,
                                balanced=cfg.data.sampler == "balanced", repeats=cfg.data.repeats)
        self.sampler, self.train_loader, self.val_loader = loaders.sampler, loaders.train, loaders.val
        self.optimizer = B.build_optimizer(self.raw_model, t.optimizer, t.lr, t.weight_decay, t.momentum, t.nesterov)
        self.criterion = self.task.criterion().to(self.device)
        self.budget_note, self.budget_plan = None, None
        if self.t.time and not self.t.resume:  # epochs fitted to the budget before the schedule is built for them
            self.budget_plan = D.on_main_then_share(lambda: plan_epochs(self, parse_duration(self.t.time)))
            self.budget_note = self.budget_plan.why + (f"\n[yellow]--time: {self.budget_plan.warning}[/]"
                                                       if self.budget_plan.warning else "")
            self.set_epochs(self.budget_plan.epochs)
        t = self.t
        self.steps_per_epoch = max(1, len(self.train_loader) // t.accum)
        self.schedule = LRSchedule(
            self.optimizer, t.schedule, self.steps_per_epoch * t.epochs, self.steps_per_epoch, t.warmup_epochs,
            t.min_lr_ratio, t.poly_power, t.milestones, t.gamma, t.plateau_patience, t.plateau_factor,
            H.monitor_mode(self.monitor))
        self.ema = B.build_ema(self.raw_model, t.ema)
        self.state, self.record = TrainState(), EpochRecord()
        self.stop, self.summary, self.started = False, None, time.perf_counter()
        self._skip_update = False  # set by a skipped non-finite micro-batch until its optimizer step is dropped
        self.snapshot = StepSnapshot()  # the state at the last optimizer step; an interrupt rolls back to it
        self.hooks: list[H.Hook] = self.default_hooks()
        # a resume restores last.pt; with nothing left to do (finished, budget spent) fit() changes nothing
        self.finished = resume_run(self, given) if t.resume else False

    @property
    def epochs(self) -> int:
        """The epochs the run is configured for now (``--time`` re-fits them)."""
        return self.t.epochs

    def set_epochs(self, epochs: int) -> None:
        """Give the run ``epochs`` epochs: its config (config.yaml and every later checkpoint) and its LR
        schedule, stretched or shrunk to end with them. Hooks read ``trainer.epochs``; none keeps a copy."""
        self.cfg = dataclasses.replace(self.cfg, train=dataclasses.replace(self.cfg.train, epochs=epochs))
        self.t = self.cfg.train
        if getattr(self, "schedule", None) is not None:
            self.schedule.retotal(self.steps_per_epoch * epochs)

    def default_hooks(self) -> list[H.Hook]:
        """Steering hooks on every rank (order matters: eval, then LR, best, save); outputs on rank 0 only."""
        t, task = self.t, self.task
        plan = self.budget_plan
        budget = [TimeBudget(parse_duration(t.time), self.created, finish_s=plan.finish_s if plan else 0.0,
                             warmup_epochs=t.warmup_epochs, eval_every=t.eval_every, schedule=t.schedule,
                             steps_per_epoch=self.steps_per_epoch, samples_per_step=t.accum * t.batch_size,
                             check_every=10 if self.dist.distributed else 1)] if t.time else []
        hooks: list[H.Hook] = [H.EvalHook(task.evaluate, self.val_loader, t.eval_every),
                               H.LRScheduleHook(self.schedule, self.monitor), H.BestTracker(self.monitor),
                               *budget, H.CheckpointHook(t.save_every)]  # a re-fit lands in this epoch's saves
        if self.dist.is_main:
            c = self.cfg
            header = (f"[bold]seglab train[/] {c.model.name} on {c.data.root}: {len(task.train_set)} train / "
                      f"{len(task.val_set)} val images, {task.num_classes} classes, {self.steps_per_epoch} "
                      f"steps/epoch x {t.epochs} epochs, {t.precision} on {self.device}"
                      + (f" x{self.dist.world_size} processes" if self.dist.distributed else "") + f" -> {self.out}"
                      + "".join(f"\n{n}" for n in (self.model_note, self.budget_note) if n))
            setup = (f"{task.loss_description}, optimizer {t.optimizer} lr {t.lr}, schedule {t.schedule}, "
                     f"precision {t.precision}, batch {t.batch_size} x accum {t.accum}, sampler {c.data.sampler}.")
            hooks = [R.ProgressBar(t.epochs, len(self.train_loader), t.accum), *hooks,
                     R.WriteConfig(self.out, lambda: self.cfg.to_yaml()),
                     *([R.TensorBoardLog(self.out)] if t.tb else []),
                     R.CSVLog(self.out), R.Report(self.out, f"Run report: {c.model.name} on {c.data.root}", setup,
                                                  task.report_notes(), task.classes),
                     R.ConsoleLog(header, t.epochs, task.headline, self.monitor),
                     R.Plots(self.out, task.classes, self.monitor, t.warmup_epochs, task),
                     R.Samples(self.out, task.save_samples, R.spread(len(task.val_set), t.num_samples), self.monitor),
                     *([] if t.no_review else [ReviewHook(self.out, c.data.root, c.data.val_split, len(task.val_set))])]
        return [*hooks, H.EarlyStop(self.monitor, t.early_stop)]

    # --- what hooks use -----------------------------------------------------------------------------
    @property
    def eval_model(self) -> torch.nn.Module:
        """The model evaluation, samples and ``best.pt`` use: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def autocast(self) -> AbstractContextManager:
        """The run's autocast context (``train.precision``), fresh for each use."""
        return self.precision.autocast()

    def log(self, msg: str) -> None:
        """A console line, from rank 0 only."""
        if self.dist.is_main:
            R.log(msg)

    def _call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)(self)

    # --- checkpoints --------------------------------------------------------------------------------
    def checkpoint_state(self, resume: bool = True) -> dict[str, Any]:
        """Everything inference needs and, with ``resume``, everything an exact resume needs (``run_state``)."""
        return run_state(self, resume)

    def save(self, name: str = "last.pt") -> None:
        """Write ``<out>/<name>`` on rank 0, atomically: a kill mid-write leaves the old file intact.

        ``best.pt`` holds what using the model needs (weights and metadata); every other name also the
        resume state.

        Raises:
            NonFiniteWeightsError: a weight or buffer is NaN/Inf; the file on disk keeps its last good state.
        """
        if self.dist.is_main:
            self.check_finite(f"saving {name}")
            save_checkpoint(self.out / name, self.checkpoint_state(resume=name != "best.pt"))

    def check_finite(self, when: str, all_ranks: bool = False) -> None:
        """Refuse to go on with non-finite weights or buffers (e.g. BatchNorm statistics after a blow-up).

        ``all_ranks``: called on every rank (epoch end), so the ranks agree (BatchNorm statistics are per rank).
        """
        bad = nonfinite_weights(self.raw_model, self.ema.module if self.ema is not None else None)
        if all_ranks and self.dist.distributed and D.all_reduce_mean(float(bool(bad)), self.device) > 0 and not bad:
            bad = ["(another process's copy)"]  # every rank stops together, none waits in a collective
        if bad:
            last = self.out / "last.pt"
            good = (f"{last} holds the last good state." if last.is_file() else
                    "No checkpoint was written before it diverged.")
            raise NonFiniteWeightsError(
                f"the model diverged: {len(bad)} weight/buffer tensor(s) hold NaN/Inf at epoch "
                f"{self.state.epoch + 1}, step {self.state.step} (e.g. {', '.join(bad[:3])}), found when "
                f"{when}; nothing was saved. {good} Lower --lr (now {self.t.lr:g}), add --clip-grad 1.0 or use "
                "--precision fp32.")

    # --- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Run the remaining epochs with the hooks; returns the summary (also in ``self.summary``).

        The run directory is locked for the run (rank 0). Ctrl-C or SIGTERM (SLURM preemption, ``docker
        stop``) rolls back to the last optimizer step, saves ``last.pt`` and stops; ``--resume`` then ends
        with the same weights as an uninterrupted run.
        """
        with own_run_dir(self.out, self.log) if self.dist.is_main else contextlib.nullcontext(), \
                sigterm_interrupts():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        self.started = time.perf_counter()
        if self.finished:  # nothing to train: the run's files stay as they are (report.md included)
            self.summary = self._summary()
            return self.summary
        self._call("before_train")
        self.snapshot.take(self.raw_model, self.record)
        try:
            while self.state.epoch < self.t.epochs and not self.stop:
                self.train_epoch()
                self.end_epoch()
        except KeyboardInterrupt:  # back to the last optimizer step: a half-done batch leaves no trace
            self.snapshot.restore(self.raw_model, self.record)
            self.optimizer.zero_grad(set_to_none=True)
            self.save()
            raise SeglabError(f"interrupted; progress saved to {self.out / 'last.pt'} (epoch {self.state.epoch + 1},"
                              f" step {self.state.step}). Continue with: seglab train --resume --out {self.out}") \
                from None
        self.summary = self._summary()
        self._call("after_train")
        return self.summary

    def _summary(self) -> dict[str, Any]:
        s = self.state
        return {"out": str(self.out), "best": s.best, "monitor": self.monitor, "epochs": s.epoch,
                "steps": s.step, "skipped_steps": s.skipped, "last": s.history[-1] if s.history else {},
                "minutes": round((time.perf_counter() - self.started) / 60, 2)}

    def train_epoch(self) -> None:
        """One pass over this rank's share of the training split (from ``state.epoch_pos`` on a resume)."""
        s, t = self.state, self.t
        self.model.train()
        self.sampler.set_epoch(s.epoch, s.epoch_pos)
        if not s.epoch_pos:  # a fresh epoch; a resumed one keeps the record restored from last.pt
            self.record = EpochRecord()
            self.snapshot.take(self.raw_model, self.record)
        self._call("before_epoch")
        for micro, batch in enumerate(self.train_loader, start=1):
            inputs, targets = self.task.prepare_batch(batch, self.device, t.channels_last)
            stepping = micro % t.accum == 0
            # DDP all-reduces gradients on every backward unless told not to: only on the stepping one
            quiet = self.dist.distributed and not stepping
            with self.model.no_sync() if quiet else contextlib.nullcontext():
                self.train_step(inputs, targets)
            if stepping:
                with deferred_interrupts():  # the step and its counters land together or not at all
                    self.optimizer_step()
                    s.epoch_pos += t.accum * t.batch_size
                    self.record.images += t.accum * t.batch_size * self.dist.world_size
                    self.snapshot.take(self.raw_model, self.record)
                self._call("after_step")
                if self.stop:  # a time budget ended the epoch early: it closes (evaluated, saved) as any other
                    break
        self.record.seconds = time.perf_counter() - self.record.started

    def train_step(self, inputs: Any, targets: Any) -> torch.Tensor:
        """Forward, loss and backward of one micro-batch; a non-finite loss never reaches ``backward``."""
        with self.autocast():
            loss, parts = self.task.compute_loss(self.model, self.criterion, inputs, targets)
        if not torch.isfinite(loss):
            self._nonfinite(loss, parts)
            return loss
        self.precision.scaler.scale(loss / self.t.accum).backward()
        self.record.losses.append(float(loss.detach()))
        for k, v in parts.items():  # loss terms (loss_ce, loss_mask, ...) averaged per epoch in metrics.csv
            self.record.parts[k] = self.record.parts.get(k, 0.0) + float(v)
        return loss

    def _nonfinite(self, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        desc = ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items()) or f"loss={float(loss.detach())}"
        if not self.t.skip_nonfinite:
            last = self.out / "last.pt"
            good = f"{last} holds the last good state. " if last.is_file() else "No checkpoint was written yet. "
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.state.epoch + 1}, step {self.state.step + 1} ({desc}). {good}"
                "Lower --lr, use --precision fp32 or --clip-grad, or pass --skip-nonfinite to skip such steps.")
        self.state.skipped += 1
        self._skip_update = True

    def optimizer_step(self) -> None:
        """(Unscale, clip,) step, zero_grad and EMA once per ``accum`` micro-batches; dropped after a NaN."""
        scaler = self.precision.scaler
        if not self._skip_update:
            if self.t.clip_grad:
                scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.t.clip_grad)
            scaler.step(self.optimizer)
            scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None and not self._skip_update:
            self.ema.update_parameters(self.raw_model)
        self._skip_update = False
        self.state.step += 1

    def end_epoch(self) -> None:
        """Close the epoch's row, count the epoch, then run the ``after_epoch`` hooks (eval, best, save, ...)."""
        s, rec = self.state, self.record
        self.check_finite("closing the epoch", all_ranks=True)
        self.eval_model.eval()
        n = max(1, len(rec.losses))
        rec.row = {"epoch": s.epoch + 1, "step": s.step,
                   "train_loss": D.all_reduce_mean(float(np.mean(rec.losses)) if rec.losses else math.nan,
                                                   self.device),
                   **{f"train_{k}": D.all_reduce_mean(v / n, self.device) for k, v in sorted(rec.parts.items())},
                   "lr": self.lr, "epoch_time_s": round(rec.seconds, 2),
                   "images_per_s": round(rec.images / max(1e-9, rec.seconds), 2)}
        before, hooks_before = copy.deepcopy(s), hook_states(self.hooks)
        s.epoch, s.epoch_pos = s.epoch + 1, 0
        s.history.append(rec.row)
        try:
            self._call("after_epoch")
        except KeyboardInterrupt:
            # Interrupted during evaluation or saving: the Ctrl-C checkpoint keeps the epoch open, so a resume
            # redoes this epoch's end (evaluation, best tracking, best.pt) instead of skipping it.
            self.state = before
            load_hook_states(self.hooks, hooks_before)
            raise

