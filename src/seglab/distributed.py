"""torchrun / DDP plumbing: process group setup, rank-0 I/O, and a resumable, shardable sampler.

``torchrun --nproc-per-node N -m seglab train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; we
initialise NCCL on GPUs and gloo on CPU. Multi-node is the same command with ``--nnodes``,
``--node-rank`` and ``--rdzv-endpoint HOST:PORT`` on every node (see docs/training.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from seglab.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun; pick the device for this rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    check_device(device)
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local) if device in ("auto", "cuda") else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu" if device == "auto" else device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means the GPU when there is one, else the CPU; anything else is checked, then used."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    return torch.device(device)


def check_device(device: str) -> None:
    """Refuse a device this machine does not have (``cuda:99``, ``cuda`` without a GPU, ``tpu``)."""
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"--device {device!r} is not a device name; use auto, cpu, cuda or cuda:N.") from e
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: this machine has no usable CUDA GPU; use --device cpu (or auto).")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS (Apple GPU) is not available here; use --device cpu.")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device}: seglab runs on cpu, cuda or mps.")


def cleanup() -> None:
    """Tear down the process group (safe to call when none exists)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: float, device: torch.device) -> float:
    """Average a Python float over ranks (for logging losses)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


class EpochSampler(torch.utils.data.Sampler):
    """Seeded per-epoch order, sharded over ranks, that can start mid-epoch and seeds each sample.

    Yields ``(index, sample_seed)`` pairs. The order depends only on ``(seed, epoch)`` and the
    per-sample seed on ``(seed, epoch, position)``, so a resumed run, a different worker count, or N
    ranks each taking every N-th sample see exactly the same samples and augmentations as one
    uninterrupted process. ``weights`` switches to sampling with replacement (repeat-factor / balanced
    sampling). ``repeats`` makes an epoch that many passes over the data (each a fresh permutation), so a
    split of 20 images still gives epochs long enough that validation and logging are a small share.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 weights: torch.Tensor | None = None, drop_last: bool = False, repeats: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = n, seed, rank, world_size
        if repeats < 1:
            raise ValueError(f"EpochSampler: repeats must be >= 1, got {repeats}")
        self.shuffle, self.weights, self.drop_last, self.repeats = shuffle, weights, drop_last, repeats
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch; skip the first ``start`` samples of this rank's share (resume)."""
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n * self.repeats, replacement=True, generator=g).tolist()
        elif self.shuffle:
            order = [i for _ in range(self.repeats) for i in torch.randperm(self.n, generator=g).tolist()]
        else:
            order = list(range(self.n)) * self.repeats
        if self.world > 1:
            if self.drop_last:
                order = order[: len(order) - len(order) % self.world]
            elif self.shuffle or self.weights is not None:  # pad so every rank takes equal steps
                order += order[: (-len(order)) % self.world]
        return order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        positions = range(self.rank, len(order), self.world)
        base = (self.seed * 1_000_003 + self.epoch) * 10_000_019
        for p in list(positions)[self.start:]:
            yield order[p], (base + p) % (2**63 - 1)

    def __len__(self) -> int:
        return max(0, len(range(self.rank, len(self._order()), self.world)) - self.start)


class Shard(torch.utils.data.Dataset):
    """Every ``world``-th sample from ``rank``: this process's share of an evaluation."""

    def __init__(self, dataset, rank: int = 0, world: int = 1) -> None:
        self.dataset, self.indices = dataset, list(range(rank, len(dataset), world))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]


class SeededDataset(torch.utils.data.Dataset):
    """Wraps a dataset so each item's random augmentation is seeded by the sampler's sample seed."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def gather_lists(items: list) -> list:
    """Every rank's list, concatenated in rank order, on every rank (the list itself without DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return items
    shards: list[list | None] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, items)
    return [x for shard in shards for x in shard or []]


def on_main_then_share(compute):
    """``compute()`` on rank 0 only, its (picklable) result broadcast to every rank; plain call without DDP."""
    if not (dist.is_available() and dist.is_initialized()):
        return compute()
    result = [compute() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(result, src=0)
    return result[0]
