"""Devices are checked before anything runs (a device this machine lacks is a ConfigError, not a traceback), and
EpochSampler's ``repeats`` makes an epoch several full passes, exact under resume and sharding."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from seglab.distributed import EpochSampler, check_device, resolve_device
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


def test_repeats_visit_every_image_once_per_pass() -> None:
    s = EpochSampler(7, seed=3, repeats=4)
    s.set_epoch(2)
    order = [i for i, _ in s]
    assert len(s) == len(order) == 28
    for p in range(4):  # each pass is a permutation of the split
        assert sorted(order[7 * p: 7 * p + 7]) == list(range(7))
    assert len({tuple(order[7 * p: 7 * p + 7]) for p in range(4)}) > 1  # fresh order per pass


def test_one_repeat_keeps_the_previous_order() -> None:
    # runs started before `repeats` existed resume with the same samples
    s = EpochSampler(10, seed=5)
    s.set_epoch(4)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(5 * 1_000_003 + 4)).tolist()
    assert [i for i, _ in s] == expected


def test_repeats_resume_mid_epoch_and_shard_over_ranks() -> None:
    full = EpochSampler(6, seed=1, repeats=3)
    full.set_epoch(1)
    pairs = list(full)
    resumed = EpochSampler(6, seed=1, repeats=3)
    resumed.set_epoch(1, start=5)
    assert list(resumed) == pairs[5:]  # same images and the same per-sample seeds
    ranks = []
    for r in range(2):
        shard = EpochSampler(6, seed=1, rank=r, world_size=2, repeats=3)
        shard.set_epoch(1)
        ranks.append(list(shard))
    assert sorted(ranks[0] + ranks[1]) == sorted(pairs)


def test_weighted_sampling_draws_repeats_times_the_split() -> None:
    s = EpochSampler(4, seed=0, weights=torch.tensor([1.0, 1.0, 1.0, 97.0]), repeats=5)
    counts = Counter(i for i, _ in s)
    assert sum(counts.values()) == 20 and counts[3] > 10


def test_validation_order_repeats_in_order() -> None:
    assert [i for i, _ in EpochSampler(3, shuffle=False, repeats=2)] == [0, 1, 2, 0, 1, 2]
