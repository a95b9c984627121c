"""What keeps a run's saved state trustworthy: finite weights only, and interrupts that land between steps.

- :func:`nonfinite_weights`: the weights and buffers (BatchNorm statistics included) that hold NaN/Inf; the
  trainer checks them before every save and every evaluation, so a diverged model is never written.
- :class:`StepSnapshot`: what a forward pass changes outside the checkpointed counters (buffers, RNG, the
  epoch's losses). Taken at each optimizer step, restored on an interrupt, so Ctrl-C saves exactly the
  state of the last step and a resume is bit-exact.
- :func:`deferred_interrupts` holds Ctrl-C/SIGTERM during an optimizer step; :func:`sigterm_interrupts`
  turns SIGTERM (SLURM preemption, ``docker stop``, ``timeout``) into the same ``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from seglab.checkpoint import nonfinite_tensors
from seglab.engine.state import EpochRecord, rng_state, set_rng_state
from seglab.errors import SeglabError


class NonFiniteWeightsError(SeglabError):
    """Weights or buffers became NaN/Inf (a diverging run); nothing non-finite is ever saved."""


def nonfinite_weights(model: nn.Module, ema: nn.Module | None = None) -> list[str]:
    """Names of the model's (and the EMA copy's) state tensors holding NaN or Inf."""
    bad = nonfinite_tensors(model.state_dict())
    if ema is not None:
        bad += [f"ema.{k}" for k in nonfinite_tensors(ema.state_dict())]
    return bad


class StepSnapshot:
    """The state at the last optimizer step that a checkpoint does not capture by itself."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def take(self, model: nn.Module, record: EpochRecord) -> None:
        """Remember ``model``'s buffers, every RNG and how many losses ``record`` holds."""
        self.state = {"buffers": [b.detach().clone() for b in model.buffers()], "rng": rng_state(),
                      "losses": len(record.losses), "parts": dict(record.parts)}

    def restore(self, model: nn.Module, record: EpochRecord) -> None:
        """Put back what :meth:`take` saw: a half-done batch or accumulation window leaves no trace."""
        if not self.state:
            return
        with torch.no_grad():
            for buf, saved in zip(model.buffers(), self.state["buffers"], strict=True):
                buf.copy_(saved)
        set_rng_state(self.state["rng"])
        del record.losses[self.state["losses"]:]
        record.parts = dict(self.state["parts"])


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM is handled like Ctrl-C inside the block (signal handlers only work in the main thread)."""
    if not _in_main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block ends, then raise ``KeyboardInterrupt``."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        raise KeyboardInterrupt
