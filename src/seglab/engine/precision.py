"""``train.precision`` resolved once: the autocast dtype (or none) and the gradient scaler that goes with it.

The names are those of :data:`seglab.config.Precision`; nothing else in the engine compares the string.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from seglab.errors import ConfigError

# precision name -> autocast dtype (None: plain float32, no autocast)
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """How a run computes: ``autocast()`` around forward passes, ``scaler`` around backward / step.

    The scaler is only enabled for fp16, whose small range needs loss scaling; for fp32 and bf16 it is a
    pass-through, so the loop calls it unconditionally.
    """

    name: str
    dtype: torch.dtype | None
    device_type: str
    scaler: torch.amp.GradScaler

    def autocast(self) -> AbstractContextManager:
        """A fresh autocast context for this run's device and dtype (``nullcontext`` in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The :class:`Precision` for ``name`` on ``device``; fp16 without CUDA is a :class:`ConfigError`."""
    if name not in AUTOCAST_DTYPES:
        raise ConfigError(f"train.precision must be one of {', '.join(AUTOCAST_DTYPES)}; got {name!r}.")
    dtype = AUTOCAST_DTYPES[name]
    if dtype is torch.float16 and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA GPU (it relies on GradScaler); on CPU use bf16.")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    return Precision(name, dtype, device.type, scaler)
