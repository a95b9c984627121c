"""Devices are checked before anything runs: a device this machine lacks is a ConfigError, not a traceback."""

from __future__ import annotations

import pytest
import torch

from seglab.distributed import check_device, resolve_device
from seglab.errors import ConfigError


@pytest.mark.parametrize(("device", "message"), [
    ("tpu", "not a device name|runs on cpu, cuda or mps"), ("cuda:99", "GPU"), ("banana", "not a device name"),
])
def test_devices_this_machine_lacks_are_refused(device: str, message: str) -> None:
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    with pytest.raises(ConfigError, match=message):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_what_to_use() -> None:
    with pytest.raises(ConfigError, match="no usable CUDA GPU; use --device cpu"):
        check_device("cuda")


def test_cpu_and_auto_pass() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
