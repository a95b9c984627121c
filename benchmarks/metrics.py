"""SegMetrics vs the study guide's per-class loop vs torchmetrics: 21 classes, batches of 8x512x512 on CPU.

Run: ``python benchmarks/metrics.py [--batches 6] [--repeats 7]``. Every method sees the same batches
(class-index predictions, no ignored pixels so the guide's loop, which has no ignore handling, counts the
same pixels). torchmetrics runs twice: as a segmentation user would configure it (``ignore_index=255``,
argument checks on) and in its fastest form (no ignore handling, no checks). Methods are interleaved within
each repeat so background load hits them alike; the table reports the best and the median repeat, per batch.
The guide's number is a mean of per-batch mIoUs, the others are dataset-level (docs/metrics.md explains why
they differ).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from _common import write_result
from seglab.metrics import SegMetrics

NUM_CLASSES = 21


def compute_mean_iou(pred, target, num_classes):  # noqa: ANN001, ANN201 - the study guide's code, as written
    ious = []
    for cls in range(num_classes):
        pred_cls = (pred == cls)
        target_cls = (target == cls)

        intersection = (pred_cls & target_cls).sum().float()
        union = (pred_cls | target_cls).sum().float()

        if union == 0:
            ious.append(float('nan'))
        else:
            ious.append((intersection / union).item())

    # Mean IoU (ignoring NaN for classes not in ground truth)
    ious = [iou for iou in ious if not np.isnan(iou)]
    return np.mean(ious) if ious else 0.0


def guide_loop(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The guide's evaluate(): per-batch mIoU, averaged over batches."""
    return float(sum(compute_mean_iou(p, t, NUM_CLASSES) for p, t in batches) / len(batches))


def seglab_factory(per_image: bool) -> Callable[[list], float]:
    def run(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        metrics = SegMetrics(NUM_CLASSES, ignore_index=255, per_image=per_image)
        for pred, target in batches:
            metrics.update(pred, target)
        return metrics.compute()["mean_iou"]

    return run


def torchmetrics_factory(**options: object) -> Callable[[list], float]:
    from torchmetrics.classification import MulticlassJaccardIndex

    metric = MulticlassJaccardIndex(NUM_CLASSES, average="macro", **options)

    def run(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        metric.reset()
        for pred, target in batches:
            metric.update(pred, target)
        return float(metric.compute())

    return run


def make_batches(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Blocky truth maps (32x32 cells) and predictions that agree on ~70% of pixels."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        coarse = torch.randint(0, NUM_CLASSES, (8, 1, 16, 16), generator=g).float()
        target = torch.nn.functional.interpolate(coarse, size=(512, 512), mode="nearest")[:, 0].long()
        noise = torch.randint(0, NUM_CLASSES, target.shape, generator=g)
        pred = torch.where(torch.rand(target.shape, generator=g) < 0.7, target, noise)
        out.append((pred, target))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    batches = make_batches(args.batches)
    load_before = os.getloadavg()[0]
    methods = {
        "study guide compute_mean_iou loop": guide_loop,
        "seglab SegMetrics": seglab_factory(per_image=False),
        "seglab SegMetrics (per_image=True)": seglab_factory(per_image=True),
        "torchmetrics MulticlassJaccardIndex (ignore_index=255)": torchmetrics_factory(ignore_index=255),
        "torchmetrics MulticlassJaccardIndex (no ignore_index, validate_args=False)":
            torchmetrics_factory(validate_args=False),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    scores: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            scores[name] = run(batches)
            times[name].append((time.perf_counter() - start) / len(batches) * 1e3)
    guide_best = min(times["study guide compute_mean_iou loop"])
    seglab_best = min(times["seglab SegMetrics"])
    rows = [{"method": name, "ms_per_batch_best": min(t), "ms_per_batch_median": statistics.median(t),
             "seglab_speedup_x": min(t) / seglab_best, "mean_iou": scores[name]} for name, t in times.items()]
    for row in rows:
        print(f"{row['method']:<75} best {row['ms_per_batch_best']:8.2f} ms  median "
              f"{row['ms_per_batch_median']:8.2f} ms  seglab x{row['seglab_speedup_x']:6.1f}  "
              f"mIoU {row['mean_iou']:.6f}")
    notes = (f"{args.batches} batches of 8x512x512 class indices, {NUM_CLASSES} classes, {args.repeats} "
             "interleaved repeats; ms per batch (update of every batch + one compute, divided by the batch "
             "count). seglab_speedup_x = that method's best time / seglab's best time "
             f"(study guide loop: {guide_best / seglab_best:.1f}x). mean_iou: seglab and torchmetrics are "
             "dataset-level and agree; the guide's loop averages per-batch mIoUs. 1-minute load average "
             f"before / after the run: {load_before:.1f} / {os.getloadavg()[0]:.1f} (other jobs share the CPU: "
             "absolute times are inflated, the interleaved ratios much less).")
    write_result("metrics", "SegMetrics vs study-guide loop vs torchmetrics (CPU)", rows, notes)


if __name__ == "__main__":
    main()
