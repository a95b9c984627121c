"""What a run knows about itself: the persisted counters, the running epoch, and the RNG state.

:class:`TrainState` goes into every checkpoint (as the plain dict under ``"trainer"``) together with the
RNG states, which is what makes a resumed run bit-exact. :class:`EpochRecord` lives for one epoch; hooks
read it and add to it (evaluation puts its metrics in ``row``, best tracking sets ``improved``).
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class TrainState:
    """Counters that survive a resume: epochs done, optimizer steps, samples into the current epoch, ..."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps
    epoch_pos: int = 0  # samples of this rank already seen in the current epoch
    best: float | None = None  # best monitored value so far
    bad_epochs: int = 0  # evaluations since the best one
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics.csv row per epoch
    skipped: int = 0  # steps skipped for a non-finite loss

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (a checkpoint is loaded with ``weights_only=True``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        """The state saved by :meth:`to_dict`."""
        return cls(**d)


@dataclass
class EpochRecord:
    """The epoch in progress, then its results for the ``after_epoch`` hooks."""

    started: float = field(default_factory=time.perf_counter)
    losses: list[float] = field(default_factory=list)  # finite micro-batch losses
    parts: dict[str, float] = field(default_factory=dict)  # summed loss terms (loss_ce, loss_mask, ...)
    images: int = 0  # images seen by all ranks
    seconds: float = 0.0
    row: dict[str, Any] = field(default_factory=dict)  # this epoch's metrics.csv row (also in history)
    metrics: dict[str, Any] | None = None  # the validation metrics, when this epoch evaluated
    improved: bool = False  # the monitored metric reached a new best

    @property
    def last_loss(self) -> float:
        return self.losses[-1] if self.losses else float("nan")

    def images_per_s(self) -> float:
        return self.images / max(1e-9, time.perf_counter() - self.started)

    def to_dict(self) -> dict[str, Any]:
        """The training numbers so far, for a checkpoint written mid-epoch (resume continues them)."""
        return {"losses": list(self.losses), "parts": dict(self.parts), "images": self.images,
                "seconds": time.perf_counter() - self.started}

    @classmethod
    def resumed(cls, d: dict[str, Any]) -> EpochRecord:
        """The record :meth:`to_dict` saved, its clock continuing from the seconds already spent."""
        return cls(started=time.perf_counter() - float(d.get("seconds", 0.0)), losses=list(d.get("losses", [])),
                   parts=dict(d.get("parts", {})), images=int(d.get("images", 0)))


def rng_state() -> dict[str, Any]:
    """Every global RNG (python, numpy, torch, CUDA) as plain values and tensors."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (tuples come back from a checkpoint as lists)."""
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
