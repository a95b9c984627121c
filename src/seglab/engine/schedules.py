"""Learning-rate schedules from the study guide: warm-up + cosine, poly, step/multistep, plateau.

All but plateau are per-iteration multipliers of the base LR (``LambdaLR``), so their state is just the
step counter and resumes exactly. Plateau is torch's ``ReduceLROnPlateau`` stepped once per evaluation
on the monitored metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from seglab.errors import ConfigError


def lr_factor(
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    min_ratio: float = 0.0,
    power: float = 0.9,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
) -> Callable[[int], float]:
    """Multiplier of the base LR at optimizer step ``s`` (0-based).

    ``milestones`` are in steps here (the trainer converts epochs to steps). The linear warm-up goes
    from ``1/warmup_steps`` to 1 and applies to every schedule.
    """
    total = max(1, total_steps)
    ms = sorted(milestones or [])

    def after_warmup(s: int) -> float:
        t = min(1.0, max(0, s - warmup_steps) / max(1, total - warmup_steps))
        if schedule == "cosine":
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if schedule == "poly":
            return min_ratio + (1 - min_ratio) * (1 - t) ** power
        if schedule in ("step", "multistep"):
            return gamma ** sum(1 for m in ms if s >= m)
        return 1.0  # constant and plateau (plateau scales the LR itself)

    def factor(s: int) -> float:
        if s < warmup_steps:
            return (s + 1) / warmup_steps
        return after_warmup(s)

    return factor


class LRSchedule:
    """Per-iteration schedule plus, for ``plateau``, torch's ``ReduceLROnPlateau`` after the warm-up.

    ``LambdaLR`` rewrites the LR from the base LR at every step, which would undo plateau reductions,
    so under ``plateau`` it only runs during the warm-up and ``ReduceLROnPlateau`` owns the LR after.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: str,
        total_steps: int,
        steps_per_epoch: int,
        warmup_epochs: float = 0.0,
        min_lr_ratio: float = 0.0,
        poly_power: float = 0.9,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        plateau_patience: int = 5,
        plateau_factor: float = 0.5,
        monitor_mode: str = "max",
    ) -> None:
        if schedule not in ("cosine", "poly", "step", "multistep", "plateau", "constant"):
            raise ConfigError(f"unknown schedule {schedule!r}; use cosine, poly, step, multistep, plateau or "
                              "constant.")
        self.warmup_steps = int(round(warmup_epochs * steps_per_epoch))
        self._factor = (schedule, self.warmup_steps, min_lr_ratio, poly_power,
                        [m * steps_per_epoch for m in (milestones or [])], gamma)
        self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, self._fn(total_steps))
        self.plateau = None
        if schedule == "plateau":  # milestones in epochs, like the study guide's [30, 60, 90]
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=monitor_mode, patience=plateau_patience, factor=plateau_factor)

    def _fn(self, total_steps: int) -> Callable[[int], float]:
        schedule, warmup, min_ratio, power, milestones, gamma = self._factor
        return lr_factor(schedule, total_steps, warmup, min_ratio, power, milestones, gamma)

    def retotal(self, total_steps: int) -> None:
        """Stretch or shrink the schedule to end at ``total_steps`` (``--time`` re-fitted the epochs); the LR
        of the coming step follows the new curve. Plateau's reductions after the warm-up are left alone."""
        fn = self._fn(total_steps)
        self.per_step.lr_lambdas = [fn for _ in self.per_step.lr_lambdas]
        s = self.per_step.last_epoch
        if self.plateau is None or s < self.warmup_steps:
            for group, base in zip(self.per_step.optimizer.param_groups, self.per_step.base_lrs, strict=True):
                group["lr"] = base * fn(s)

    def step_iter(self) -> None:
        """Call after each optimizer step."""
        if self.plateau is None or self.per_step.last_epoch < self.warmup_steps:
            self.per_step.step()

    def step_eval(self, metric: float) -> None:
        """Call after each evaluation with the monitored metric."""
        if self.plateau is not None and self.per_step.last_epoch >= self.warmup_steps:
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        return {"per_step": self.per_step.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])
