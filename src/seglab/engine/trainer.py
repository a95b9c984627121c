"""The training loop: one engine for every task, with named hooks around a short step.

Reads like the study guide's ``train_epoch`` (forward, loss, zero_grad, backward, step) plus what a
real run needs: autocast, gradient accumulation and clipping, EMA, DDP, atomic checkpoints with exact
resume, non-finite loss handling, and the run directory's reports.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.config import RunConfig
from seglab.engine import distributed as D
from seglab.engine.checkpoint import read_checkpoint, save_checkpoint
from seglab.engine.reporting import RunReporter
from seglab.engine.schedules import LRSchedule
from seglab.errors import ConfigError, SeglabError


class NonFiniteLossError(SeglabError):
    """The loss became NaN/Inf; the run stops before the bad update touches the weights."""


def train(cfg: RunConfig) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the final summary (best metric, paths, last metrics)."""
    dist = D.setup(cfg.train.device)
    try:
        return Trainer(cfg, dist).fit()
    finally:
        D.cleanup()


def build_task(cfg: RunConfig):
    """The task adapter for the configured model (semantic or instance)."""
    from seglab.models.registry import get_entry

    if get_entry(cfg.model.name).task == "instance":
        from seglab.engine.instance import InstanceTask

        return InstanceTask(cfg)
    from seglab.engine.semantic import SemanticTask

    return SemanticTask(cfg)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy(), *n[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on norm weights and biases (1-D parameters), decay elsewhere."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, t) -> torch.optim.Optimizer:
    groups = param_groups(model, t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr)
    return torch.optim.AdamW(groups, lr=t.lr)


class Trainer:
    """Owns the model, optimizer, schedule and the loop; hooks: on_step, on_eval, on_checkpoint."""

    def __init__(self, cfg: RunConfig, dist: D.DistInfo | None = None) -> None:
        self.cfg, self.t = cfg, cfg.train
        self.dist = dist or D.DistInfo()
        self.device = self.dist.device
        self.out = Path(self.t.out)
        self._check_precision()
        seed_everything(self.t.seed)
        self.task = build_task(cfg)
        self._build_model()
        self._build_loaders()
        self.optimizer = build_optimizer(self.raw_model, self.t)
        steps_per_epoch = max(1, len(self.train_loader) // self.t.accum)
        self.steps_per_epoch = steps_per_epoch
        self.schedule = LRSchedule(
            self.optimizer, self.t.schedule, steps_per_epoch * self.t.epochs, steps_per_epoch,
            self.t.warmup_epochs, self.t.min_lr_ratio, self.t.poly_power, self.t.milestones, self.t.gamma,
            self.t.plateau_patience, self.t.plateau_factor, self.monitor_mode)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.t.precision == "fp16")
        self.ema = None
        self._skip_update = False  # set by a skipped non-finite step until the optimizer step is dropped
        if self.t.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.raw_model, multi_avg_fn=get_ema_multi_avg_fn(self.t.ema), use_buffers=True)
        self.criterion = self.task.build_criterion() if hasattr(self.task, "build_criterion") else self._criterion()
        self.state = {"epoch": 0, "step": 0, "epoch_pos": 0, "best": None, "bad_epochs": 0, "history": [],
                      "skipped": 0}
        self.reporter = RunReporter(self.out, self.task, cfg, enabled=self.dist.is_main)
        if self.t.resume:
            self._resume()

    # --- construction ---------------------------------------------------------------------------
    @property
    def monitor_mode(self) -> str:
        return "min" if "loss" in self.t.monitor else "max"

    def _check_precision(self) -> None:
        if self.t.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA GPU (it relies on GradScaler); on CPU use bf16.")
        if self.t.accum < 1 or self.t.batch_size < 1 or self.t.epochs < 1:
            raise ConfigError("train.accum, train.batch_size and train.epochs must be >= 1.")

    def autocast(self):
        if self.t.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.t.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _build_model(self) -> None:
        from seglab.models.registry import build_model, get_entry

        options = dict(self.cfg.model.options)
        if "in_channels" in get_entry(self.cfg.model.name).options() and "in_channels" not in options:
            options["in_channels"] = self.cfg.data.in_channels
        self.model_spec = {"name": self.cfg.model.name, "num_classes": self.task.num_classes, "options": options}
        model = build_model(self.cfg.model.name, self.task.num_classes, **options)
        if self.t.grad_checkpointing:
            if not hasattr(model, "set_grad_checkpointing"):
                raise ConfigError(f"model {self.cfg.model.name!r} has no gradient checkpointing switch.")
            model.set_grad_checkpointing(True)
        if self.t.sync_bn and self.dist.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        if self.t.channels_last:
            model.to(memory_format=torch.channels_last)
        self.raw_model = model
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.model = torch.compile(model) if self.t.compile else model

    def _criterion(self) -> nn.Module:
        from seglab.losses import build_loss

        self.class_weights = self.task.class_weights()
        return build_loss(self.t.loss, self.task.num_classes, class_weights=self.class_weights,
                          ignore_index=self.task.ignore_index).to(self.device)

    def _build_loaders(self) -> None:
        d, t = self.cfg.data, self.t
        weights = self.task.sample_weights() if d.sampler == "balanced" else None
        self.sampler = D.EpochSampler(len(self.task.train_set), t.seed, self.dist.rank, self.dist.world_size,
                                      weights=weights)
        common = dict(num_workers=d.workers, collate_fn=self.task.collate(),
                      pin_memory=self.device.type == "cuda", persistent_workers=False)
        # Own generator: creating an iterator must not draw from the global RNG (exact resume).
        self.train_loader = torch.utils.data.DataLoader(
            D.SeededDataset(self.task.train_set), batch_size=t.batch_size, sampler=self.sampler, drop_last=True,
            generator=torch.Generator().manual_seed(t.seed), **common)
        if len(self.task.train_set) // max(1, self.dist.world_size) < t.batch_size:
            raise ConfigError(f"the training split has {len(self.task.train_set)} images, fewer than one batch of "
                              f"{t.batch_size} per process; lower --batch-size.")
        val_sampler = D.EpochSampler(len(self.task.val_set), 0, self.dist.rank, self.dist.world_size, shuffle=False)
        self.val_loader = torch.utils.data.DataLoader(
            _Unseeded(self.task.val_set), batch_size=t.batch_size, sampler=val_sampler,
            generator=torch.Generator(), **common)

    # --- checkpoints ------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        eval_model = self.ema.module if self.ema is not None else self.raw_model
        state = {**self.task.model_info(), "model": self.model_spec,
                 "model_state": eval_model.state_dict(), "config": self.cfg.to_dict(),
                 "epoch": self.state["epoch"], "step": self.state["step"],
                 "metrics": self.state["history"][-1] if self.state["history"] else {},
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
                 "scaler": self.scaler.state_dict(), "rng": _rng_state(),
                 "trainer": {k: v for k, v in self.state.items()},
                 "class_weights": getattr(self, "class_weights", None)}
        if self.ema is not None:
            state["raw_model_state"] = self.raw_model.state_dict()
            state["ema"] = self.ema.state_dict()
        return state

    def save(self, name: str = "last.pt") -> None:
        """Atomic write on rank 0 (temp file + rename): a kill mid-write leaves the old file intact."""
        if self.dist.is_main:
            save_checkpoint(self.out / name, self.checkpoint_state())

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.is_file():
            raise SeglabError(f"{path}: nothing to resume (no last.pt in {self.out}). Start without --resume.")
        ck = read_checkpoint(path)
        if ck.get("model") != self.model_spec:
            raise SeglabError(f"{path}: checkpoint is for model {ck.get('model')}, this run builds "
                              f"{self.model_spec}. Use the same --model and options, or another --out.")
        self.raw_model.load_state_dict(ck.get("raw_model_state", ck["model_state"]))
        self.optimizer.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        if self.ema is not None and "ema" in ck:
            self.ema.load_state_dict(ck["ema"])
        self.state = dict(ck["trainer"])
        _set_rng_state(ck["rng"])
        self.reporter.log(f"resumed from {path} at epoch {self.state['epoch'] + 1}, step {self.state['step']}")

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        self.reporter.start(self)
        try:
            while self.state["epoch"] < self.t.epochs:
                self.train_epoch()
                row = self.on_epoch_end()
                if self._should_stop(row):
                    break
        except KeyboardInterrupt:
            self.save()
            raise SeglabError(f"interrupted; progress saved to {self.out / 'last.pt'}. Continue with the same "
                              "command plus --resume.") from None
        return self.reporter.finish(self)

    def train_epoch(self) -> None:
        s, t = self.state, self.t
        self.model.train()
        self.sampler.set_epoch(s["epoch"], s["epoch_pos"])
        micro, self.epoch_loss, self.epoch_parts, self.epoch_images = 0, [], {}, 0
        start = time.perf_counter()
        progress = self.reporter.epoch_progress(s["epoch"], len(self.train_loader))
        for batch in self.train_loader:
            images, masks = self.task.loss_inputs(batch, self.device, t.channels_last)
            micro += 1
            sync = micro % t.accum == 0
            ctx = self.model.no_sync() if self.dist.distributed and not sync else contextlib.nullcontext()
            with ctx:
                loss, parts = self.train_step(images, masks)
            if not sync:
                continue
            self.optimizer_step(loss)
            s["epoch_pos"] += t.accum * t.batch_size
            self.epoch_images += t.accum * t.batch_size * self.dist.world_size
            rate = self.epoch_images / max(1e-9, time.perf_counter() - start)
            progress.advance(t.accum, loss=self.epoch_loss[-1] if self.epoch_loss else float("nan"),
                             lr=self.optimizer.param_groups[0]["lr"], rate=rate)
            if t.save_every and s["step"] % t.save_every == 0:
                self.save()
        progress.close()
        self.epoch_time = time.perf_counter() - start

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Forward, loss, backward of one micro-batch (the optimizer step happens every ``accum``)."""
        with self.autocast():
            loss, parts = self.task.compute_loss(self.model, self.criterion, images, masks)
        if not torch.isfinite(loss):
            self._nonfinite(loss, parts)
            return loss, parts
        self.scaler.scale(loss / self.t.accum).backward()
        self.epoch_loss.append(float(loss.detach()))
        for k, v in parts.items():  # loss terms (loss_ce, loss_mask, ...) averaged per epoch in metrics.csv
            self.epoch_parts[k] = self.epoch_parts.get(k, 0.0) + float(v)
        return loss, parts

    def _nonfinite(self, loss: torch.Tensor, parts: dict) -> None:
        desc = ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items()) or f"loss={float(loss.detach())}"
        if not self.t.skip_nonfinite:
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.state['epoch'] + 1}, step {self.state['step'] + 1} ({desc}). "
                f"{self.out / 'last.pt'} holds the last good state. Lower --lr, use --precision fp32 or "
                "--clip-grad, or pass --skip-nonfinite to skip such steps.")
        self.state["skipped"] += 1
        self._skip_update = True

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """Unscale, clip, step, zero_grad, LR schedule, EMA: once per ``accum`` micro-batches."""
        if self._skip_update:
            self._skip_update = False
            self.optimizer.zero_grad(set_to_none=True)
        else:
            if self.t.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.t.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update_parameters(self.raw_model)
        self.state["step"] += 1
        self.schedule.step_iter()

    def on_epoch_end(self) -> dict[str, Any]:
        """Evaluate, update LR-on-plateau / best / early stop, write checkpoints and reports."""
        s = self.state
        eval_model = self.ema.module if self.ema is not None else self.model
        eval_model.eval()
        row: dict[str, Any] = {"epoch": s["epoch"] + 1, "step": s["step"],
                               "train_loss": D.all_reduce_mean(float(np.mean(self.epoch_loss))
                                                               if self.epoch_loss else math.nan, self.device),
                               **{f"train_{k}": D.all_reduce_mean(v / max(1, len(self.epoch_loss)), self.device)
                                  for k, v in sorted(self.epoch_parts.items())},
                               "lr": self.optimizer.param_groups[0]["lr"],
                               "epoch_time_s": round(self.epoch_time, 2),
                               "images_per_s": round(self.epoch_images / max(1e-9, self.epoch_time), 2)}
        metrics = None
        if (s["epoch"] + 1) % self.t.eval_every == 0 or s["epoch"] + 1 == self.t.epochs:
            metrics, val_loss = self.task.evaluate(eval_model, self.val_loader, self.criterion, self.device,
                                                   self.autocast)
            row["val_loss"] = val_loss
            row.update({k: v for k, v in metrics.items() if isinstance(v, float)})
            self.schedule.step_eval(row.get(self.t.monitor, math.nan))
        improved = self._update_best(row)
        s["epoch"] += 1
        s["epoch_pos"] = 0
        s["history"].append(row)
        self.save()
        if improved:
            self.save("best.pt")
        self.reporter.epoch_end(self, row, metrics, improved)
        return row

    def _update_best(self, row: dict[str, Any]) -> bool:
        value = row.get(self.t.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        best = self.state["best"]
        better = best is None or (value > best if self.monitor_mode == "max" else value < best)
        if better:
            self.state["best"], self.state["bad_epochs"] = value, 0
        else:
            self.state["bad_epochs"] += 1
        return better

    def _should_stop(self, row: dict[str, Any]) -> bool:
        if self.t.early_stop and self.state["bad_epochs"] >= self.t.early_stop:
            self.reporter.log(f"early stop: {self.t.monitor} did not improve for {self.t.early_stop} evaluations")
            return True
        return False


class _Unseeded(torch.utils.data.Dataset):
    """Validation wrapper: accepts the sampler's ``(index, seed)`` pairs, ignores the seed."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]):
        return self.dataset[item[0]]
