"""SegMetrics.reduce() / BoundaryMetrics.reduce() across 2 gloo processes on CPU equal one process's result."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seglab.errors import SeglabError
from seglab.metrics import BoundaryMetrics, SegMetrics

NUM_CLASSES = 4


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(11)
    out = []
    for n in (1, 2, 3, 2):
        target = torch.randint(0, NUM_CLASSES, (n, 10, 12), generator=g)
        target[torch.rand(n, 10, 12, generator=g) < 0.1] = 255
        out.append((torch.randn(n, NUM_CLASSES, 10, 12, generator=g), target))
    return out


def _evaluate(batches: list, reduce: bool) -> dict:
    seg, edge = SegMetrics(NUM_CLASSES, per_image=True), BoundaryMetrics(NUM_CLASSES, band=2)
    for logits, target in batches:
        seg.update(logits, target)
        edge.update(logits, target)
    if reduce:
        seg.reduce()
        seg.reduce()  # a second call must not double the counts
        edge.reduce()
    return {**seg.compute(), **edge.compute(), "late_update_refused": _late_update_refused(seg)}


def _late_update_refused(metrics: SegMetrics) -> bool:
    if not metrics._reduced:
        return True
    try:
        metrics.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    except SeglabError:
        return True
    return False


SPLITS = ("even", "all_on_rank0")


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        batches = _batches()
        for split in SPLITS:  # the second split leaves rank 1 without a batch: it must still join
            mine = batches[rank::world] if split == "even" else (batches if rank == 0 else [])
            torch.save(_evaluate(mine, reduce=True), Path(out_dir) / f"{split}{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b or abs(a - b) < 1e-12


def test_two_gloo_ranks_equal_single_process(tmp_path: Path) -> None:
    single = _evaluate(_batches(), reduce=False)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for split in SPLITS:
        for rank in range(2):
            result = torch.load(tmp_path / f"{split}{rank}.pt", weights_only=False)
            assert result["late_update_refused"]
            assert result.keys() == single.keys()
            for key, value in single.items():
                assert _same(value, result[key]), (split, rank, key)
    assert single["confusion_matrix"].sum() > 0 and 0 < single["mean_iou"] < 1
