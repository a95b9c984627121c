"""train.precision resolved once: dtype, scaler, and the CPU fp16 error."""

from __future__ import annotations

import typing

import pytest
import torch

from seglab.config import Precision as PrecisionName
from seglab.engine.precision import AUTOCAST_DTYPES, resolve_precision
from seglab.errors import ConfigError


def test_every_config_choice_resolves() -> None:
    assert set(AUTOCAST_DTYPES) == set(typing.get_args(PrecisionName))


def test_cpu_precisions() -> None:
    cpu = torch.device("cpu")
    fp32, bf16 = resolve_precision("fp32", cpu), resolve_precision("bf16", cpu)
    assert fp32.dtype is None and not fp32.scaler.is_enabled()
    assert bf16.dtype is torch.bfloat16 and not bf16.scaler.is_enabled()
    with bf16.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with fp32.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError, match="bf16"):
        resolve_precision("fp16", cpu)
