"""``seglab review``: one call from a checkpoint (or saved predictions) to a browsable error review.

:func:`review_checkpoint` / :func:`review_predictions` pick the source; :func:`write_review` streams its images
once: per-image metrics into the table, counts into the dataset sections, pictures to disk. Only the table
rows stay in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.review.page import worst_first, write_files
from seglab.review.render import PANEL_SIDE, Painter
from seglab.review.rows import Sample
from seglab.review.sources import HEADLINES, Source, checkpoint_source
from seglab.review.stats import CONFIDENT, DatasetStats

Progress = Callable[[int, int], None]
LABEL_ERRORS_SHOWN = 24


@dataclass
class ReviewResult:
    """Where the review is and what it found first (the CLI prints these)."""

    out: Path
    page: Path
    task: str
    num_images: int
    headline: str
    worst: list[tuple[str, float | None]]
    suspects: list[tuple[str, int]]
    ece: float | None


def review_checkpoint(model: nn.Module, info: CheckpointInfo, data: str | Path, split: str = "val",
                      out: str | Path | None = None, *, tta: str | None = None, tile: int | None = None,
                      device: str | torch.device | None = None, callback: Progress | None = None,
                      panel_side: int = PANEL_SIDE) -> ReviewResult:
    """Review ``model`` on ``data``'s ``split``; ``out`` defaults to ``review/`` beside the checkpoint."""
    source = checkpoint_source(model, info, data, split, tta=tta, tile=tile, device=device)
    if out is None:
        where = Path(info.path) if info.path else Path(".")
        out = (where.parent if where.suffix else where) / "review"
    return write_review(source, Path(out), callback=callback, panel_side=panel_side)


def review_predictions(predictions: str | Path, data: str | Path, split: str = "val",
                       out: str | Path | None = None, *, callback: Progress | None = None,
                       panel_side: int = PANEL_SIDE) -> ReviewResult:
    """Review saved predictions (``evaluate --predictions``'s files); ``out`` defaults to ``<predictions>_review``."""
    from seglab.review.saved import saved_source

    predictions = Path(predictions)
    source = saved_source(predictions, data, split)
    out = Path(out) if out is not None else predictions.with_name(predictions.stem + "_review")
    return write_review(source, out, callback=callback, panel_side=panel_side)


def review(run: str | Path | None, data: str | Path, split: str = "val", out: str | Path | None = None, *,
           predictions: str | Path | None = None, tta: str | None = None, tile: int | None = None,
           device: str = "cpu", callback: Progress | None = None) -> ReviewResult:
    """``seglab review``: a run folder or checkpoint (its best), or ``predictions`` saved by any tool.

    Raises:
        ConfigError: both or neither of ``run`` and ``predictions``; model options with saved predictions.
    """
    from seglab.errors import ConfigError

    if (run is None) == (predictions is None):
        raise ConfigError("seglab review: give a run folder (or checkpoint), or --predictions with saved outputs, "
                          "not both and not neither.")
    if predictions is not None:
        if tta is not None or tile is not None:
            raise ConfigError("--tta / --tile apply when a model predicts; saved --predictions are shown as they "
                              "are. Drop them.")
        return review_predictions(predictions, data, split, out, callback=callback)
    from seglab.checkpoint import load_checkpoint
    from seglab.distributed import resolve_device

    dev = resolve_device(device)
    model, info = load_checkpoint(run, device=dev)
    return review_checkpoint(model, info, data, split, out, tta=tta, tile=tile, device=dev, callback=callback)


def image_row(index: int, sample: Sample, files: dict[str, str], ignore_index: int,
              num_classes: int) -> dict[str, Any]:
    """One table row: the sample's metrics plus pixel error %, mean confidence and the suspected-label area."""
    valid = sample.truth != ignore_index
    n = int(valid.sum())
    wrong = (sample.pred != sample.truth) & valid
    row: dict[str, Any] = {"index": index, "stem": sample.stem, "height": int(sample.truth.shape[0]),
                           "width": int(sample.truth.shape[1]), **sample.metrics,
                           "pixel_error_pct": 100.0 * int(wrong.sum()) / n if n else None, "files": files}
    # whole-array bincounts, not np.unique or masked copies: no sort, no gather of a million pixels
    truth = sample.truth[valid] if 0 <= ignore_index < num_classes else sample.truth
    seen = [np.bincount(v.ravel().astype(np.int64, copy=False), minlength=num_classes)[:num_classes] > 0
            for v in (truth, sample.pred)]
    row["classes_present"] = np.flatnonzero(seen[0] | seen[1]).tolist()
    if sample.confidence is not None:
        row["mean_confidence"] = float(sample.confidence.mean())
        row["label_error_px"] = int((wrong & (sample.confidence >= CONFIDENT)).sum())
    if sample.kinds is not None:
        row["kinds"] = dict(sample.kinds)
    row["top_confusions"] = top_confusions(sample.truth[wrong], sample.pred[wrong], num_classes)
    return row


def top_confusions(truth: np.ndarray, pred: np.ndarray, num_classes: int, n: int = 3) -> list[list[int]]:
    """The ``n`` most frequent ``[truth class, predicted class, pixels]`` among an image's wrong pixels."""
    known = (pred >= 0) & (pred < num_classes)
    counts = np.bincount(truth[known].astype(np.int64) * num_classes + pred[known], minlength=num_classes ** 2)
    best = np.argsort(-counts, kind="stable")[:n]
    return [[int(i // num_classes), int(i % num_classes), int(counts[i])] for i in best if counts[i] > 0]


def _columns(task: str, has_confidence: bool) -> list[dict[str, str]]:
    """The table's metric columns, the headline first (``fmt``: how the page shows the value)."""
    cols = {"semantic": [("mean_iou", "mIoU", "ratio"), ("pixel_accuracy", "pixel acc", "ratio"),
                         ("boundary_iou", "boundary IoU", "ratio")],
            "instance": [("mask_AP", "mask AP", "ratio"), ("mask_AP50", "mask AP50", "ratio"),
                         ("box_AP", "box AP", "ratio"), ("mean_iou", "mIoU (implied)", "ratio"),
                         ("boundary_iou", "boundary IoU", "ratio")],
            "panoptic": [("PQ", "PQ", "ratio"), ("SQ", "SQ", "ratio"), ("RQ", "RQ", "ratio"),
                         ("mean_iou", "mIoU (implied)", "ratio")]}[task]
    cols.append(("pixel_error_pct", "pixel error %", "pct"))
    if has_confidence:
        cols += [("mean_confidence", "mean confidence", "ratio"), ("label_error_px", "confident wrong px", "int")]
    return [{"key": k, "label": label, "fmt": fmt} for k, label, fmt in cols]


def write_review(source: Source, out: Path, *, callback: Progress | None = None,
                 panel_side: int = PANEL_SIDE) -> ReviewResult:
    """Stream ``source``'s images into ``out``: pictures, ``images.json``, ``images.csv``, ``index.html``."""
    from seglab.fileio import check_output_path

    check_output_path(out, directory=True)
    painter = Painter(out, source.palette, source.ignore_index, panel_side)
    stats = DatasetStats(len(source.classes), source.ignore_index)
    rows = []
    try:
        for i, sample in enumerate(source.samples()):
            stats.add(sample.truth, sample.pred, sample.confidence)
            rows.append(image_row(i, sample, painter.write(i, sample), source.ignore_index, len(source.classes)))
            if callback is not None:
                callback(i + 1, source.num_images)
    finally:
        painter.close()
    return finish_review(source, out, rows, stats)


def finish_review(source: Source, out: Path, rows: list[dict[str, Any]], stats: DatasetStats) -> ReviewResult:
    """Rank the rows and write the page's files (the step after every image was seen)."""
    headline, label = HEADLINES[source.task]
    rows = worst_first(rows, headline)
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    suspects = sorted((r for r in rows if r.get("label_error_px")), key=lambda r: -r["label_error_px"])
    dataset = stats.record()
    record = {"title": f"seglab review: {Path(source.origin).name or source.origin} on {source.data.name} "
                       f"({source.split})",
              "task": source.task, "origin": source.origin, "data": str(source.data), "split": source.split,
              "num_images": len(rows), "classes": source.classes, "palette": source.palette.tolist(),
              "ignore_index": source.ignore_index, "headline": headline, "headline_label": label,
              "columns": _columns(source.task, stats.has_confidence), "has_kinds": source.has_kinds,
              "has_confidence": stats.has_confidence, "confident": CONFIDENT, "dataset": dataset,
              "label_errors": [r["index"] for r in suspects[:LABEL_ERRORS_SHOWN]], "images": rows}
    paths = write_files(out, record)

    def value(r: dict[str, Any]) -> float | None:
        v = r.get(headline)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return ReviewResult(out, paths["html"], source.task, len(rows), label,
                        [(r["stem"], value(r)) for r in rows[:5]],
                        [(r["stem"], int(r["label_error_px"])) for r in suspects[:5]], dataset["ece"])
