"""``report.md`` of an ablation with its pictures: ``curves.png`` (every run's validation curve on one plot)
and ``predictions.png`` (each variant's prediction on the same validation images)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seglab.ablate.runner import RunResult
from seglab.ablate.stats import mean_std, paired
from seglab.fileio import atomic_write_text
from seglab.tasks import KINDS, task_kind

# The metrics each task's ablation table shows, first = the per-seed column and the curves (seglab/tasks.py).
HEADLINES: dict[str, tuple[str, ...]] = {name: kind.headline for name, kind in KINDS.items()}


def _by_variant(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.variant, []).append(r)
    return groups


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")


def summary_rows(results: Sequence[RunResult], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per variant: mean/std and per-seed values of each metric, minutes, img/s, and paired differences."""
    groups = _by_variant(results)
    ref = next(iter(groups.values()))
    rows = []
    for name, runs in groups.items():
        row: dict[str, Any] = {"variant": name, "seeds": [r.seed for r in runs]}
        for m in (*metrics, "minutes", "images_per_s"):
            values = [float(r.metrics.get(m, math.nan)) if m in metrics else float(getattr(r, m)) for r in runs]
            row[m] = (values, *mean_std(values))
        for m in metrics:
            row[f"diff_{m}"] = paired([float(r.metrics.get(m, math.nan)) for r in runs],
                                      [float(r.metrics.get(m, math.nan)) for r in ref])
        rows.append(row)
    return rows


def write_report(results: Sequence[RunResult], out: str | Path, task: str = "semantic",
                 classes: Sequence[str] | None = None) -> Path:
    """``report.md`` (+ ``curves.png``, ``predictions.png``) under ``out``; returns the report's path."""
    out = Path(out)
    metrics = HEADLINES[task_kind(task).name]  # an unknown task: a clear error, not a KeyError
    rows = summary_rows(results, metrics)
    n_seeds = len(rows[0]["seeds"])
    lines = [f"# Ablation: {len(rows)} variants x {n_seeds} seed(s)", "",
             f"Reference (first row): `{rows[0]['variant']}`. Values are validation metrics of each run's "
             "best.pt (mean ± sample std over seeds); differences are paired by seed with a 95 % Student-t "
             "interval, and a variant is called better or worse only when that interval excludes 0.", "",
             "| variant | " + " | ".join(metrics) + " | minutes | img/s | per-seed " + metrics[0] + " |",
             "|---|" + "---:|" * (len(metrics) + 2) + "---|"]
    for row in rows:
        cells = [_fmt(*row[m][1:]) for m in (*metrics, "minutes")]
        cells.append(f"{row['images_per_s'][1]:.1f}")
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " | "
                     + ", ".join(f"{v:.4f}" for v in row[metrics[0]][0]) + " |")
    lines += ["", f"## Against the reference (paired by seed, {n_seeds} seeds)", "",
              "| variant | metric | difference | 95 % interval | verdict |", "|---|---|---:|---|---|"]
    for row in rows[1:]:
        for m in metrics:
            d = row[f"diff_{m}"]
            interval = "-" if math.isnan(d.low) else f"[{d.low:+.4f}, {d.high:+.4f}]"
            lines.append(f"| {row['variant']} | {m} | {d.mean:+.4f} | {interval} | {d.verdict(m)} |")
    if classes and task == "semantic":
        lines += ["", "## Per-class IoU (mean over seeds)", "",
                  "| variant | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
        for name, runs in _by_variant(results).items():
            per = np.nanmean(np.array([r.metrics.get("per_class_iou", [math.nan] * len(classes)) for r in runs],
                                      dtype=float), axis=0)
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in per) + " |")
    plot_curves(results, out / "curves.png", metrics[0])
    lines += ["", "![curves](curves.png)", ""]
    if plot_predictions(results, out / "predictions.png") is not None:  # semantic runs only
        lines += ["![predictions](predictions.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"


def plot_curves(results: Sequence[RunResult], path: Path, metric: str) -> Path:
    """Every run's validation ``metric`` per epoch on one axis: a colour per variant, a line style per seed."""
    from matplotlib.figure import Figure

    from seglab.viz.panels import save_figure

    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    colors = {name: f"C{i % 10}" for i, name in enumerate(_by_variant(results))}
    styles = ("-", "--", ":", "-.")
    for r in results:
        rows = list(csv.DictReader((Path(r.path) / "metrics.csv").open(encoding="utf-8")))
        pts = [(int(row["epoch"]), float(row[metric])) for row in rows if row.get(metric)]
        if pts:
            seed_index = sorted({x.seed for x in results}).index(r.seed)
            ax.plot(*zip(*pts, strict=True), color=colors[r.variant], linestyle=styles[seed_index % 4],
                    label=f"{r.variant} (seed {r.seed})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_predictions(results: Sequence[RunResult], path: Path, images: int = 3) -> Path | None:
    """Image | truth | one column per variant (its first seed's best.pt), on the same validation images."""
    from matplotlib.figure import Figure

    from seglab import viz
    from seglab.checkpoint import load_checkpoint, read_info
    from seglab.data.semantic.dataset import SegmentationFolder
    from seglab.inference.semantic import predict
    from seglab.viz.panels import save_figure

    first = [runs[0] for runs in _by_variant(results).values()]
    if read_info(first[0].path).task != "semantic":
        return None
    models = [load_checkpoint(r.path) for r in first]
    info = models[0][1]
    data = SegmentationFolder(info.config["data"]["root"], info.config["data"]["val_split"],
                              in_channels=info.in_channels, ignore_index=info.ignore_index, check=False)
    picks = np.linspace(0, len(data) - 1, min(images, len(data))).round().astype(int)
    palette = viz.default_palette(max(info.num_classes, 2), info.ignore_index)
    fig = Figure(figsize=(2.4 * (2 + len(first)), 2.4 * len(picks)))
    axes = np.atleast_2d(fig.subplots(len(picks), 2 + len(first)))
    for row, i in zip(axes, picks, strict=True):
        image, mask = data[int(i)]
        cells = [viz.to_uint8_image(image), viz.colorize(mask.numpy(), palette, info.ignore_index)]
        cells += [viz.colorize(predict(m, image, mean=i_.mean, std=i_.std, resize=i_.resize).numpy(), palette,
                               info.ignore_index)
                  for m, i_ in models]
        for ax, cell, title in zip(row, cells, ["image", "truth", *(r.variant for r in first)], strict=True):
            ax.imshow(cell)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)
