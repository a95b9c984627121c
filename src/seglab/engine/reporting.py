"""What a run shows and leaves behind: progress bars, epoch lines, metrics.csv, plots, report.md.

Only rank 0 reports (``enabled``); every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seglab.fileio import atomic_write_text

console = Console(stderr=True)
# (metric key, short label) printed in each epoch line; a task adapter may define its own `headline`.
HEADLINE = (("mean_iou", "mIoU"), ("pixel_accuracy", "pixel_acc"))


class _EpochProgress:
    """A rich progress bar for one epoch (transient; silent when not a terminal or not rank 0)."""

    def __init__(self, epoch: int, epochs: int, total: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f} lr {task.fields[lr]:.2e} {task.fields[rate]:.1f} img/s"),
            TimeRemainingColumn(), console=console, transient=True,
            disable=not enabled or not console.is_terminal)
        self.task = self.progress.add_task("train", total=total, loss=math.nan, lr=0.0, rate=0.0)
        self.progress.start()

    def advance(self, n: int, **fields: float) -> None:
        self.progress.update(self.task, advance=n, **fields)

    def close(self) -> None:
        self.progress.stop()


class RunReporter:
    """Writes the run directory: config.yaml, metrics.csv, curves.png, samples/, confusion.png, report.md."""

    def __init__(self, out: Path, task, cfg, enabled: bool = True) -> None:
        self.out, self.task, self.cfg, self.enabled = Path(out), task, cfg, enabled
        self.tb = None
        self.best_metrics: dict[str, Any] | None = None
        n = len(task.val_set)
        k = min(cfg.train.num_samples, n)
        self.sample_indices = [round(i * (n - 1) / max(1, k - 1)) for i in range(k)] if k > 1 else list(range(k))

    def log(self, msg: str) -> None:
        if self.enabled:
            console.print(msg, highlight=False, soft_wrap=True)

    def start(self, trainer) -> None:
        self.t0 = time.perf_counter()
        if not self.enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", self.cfg.to_yaml())
        if self.cfg.train.tb:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                from seglab.errors import ConfigError

                raise ConfigError("--tb needs TensorBoard: pip install 'seglab[tb]'.") from e
            self.tb = SummaryWriter(str(self.out / "tb"))
        t = trainer
        self.log(f"[bold]seglab train[/] {self.cfg.model.name} on {self.cfg.data.root}: "
                 f"{len(self.task.train_set)} train / {len(self.task.val_set)} val images, "
                 f"{self.task.num_classes} classes, {t.steps_per_epoch} steps/epoch x {self.cfg.train.epochs} "
                 f"epochs, {self.cfg.train.precision} on {t.device}"
                 + (f" x{t.dist.world_size} processes" if t.dist.distributed else "") + f" -> {self.out}")

    def epoch_progress(self, epoch: int, total: int) -> _EpochProgress:
        return _EpochProgress(epoch, self.cfg.train.epochs, total, self.enabled)

    def epoch_end(self, trainer, row: dict[str, Any], metrics: dict | None, improved: bool) -> None:
        if not self.enabled:
            return
        self.write_csv(trainer.state["history"])
        parts = [f"epoch {row['epoch']}/{self.cfg.train.epochs}", f"loss {row['train_loss']:.4f}"]
        if "val_loss" in row:
            parts.append(f"val_loss {row['val_loss']:.4f}")
            parts += [f"{label} {row[key]:.4f}" for key, label in getattr(self.task, "headline", HEADLINE)
                      if key in row]
        parts += [f"lr {row['lr']:.2e}", f"{row['images_per_s']:.1f} img/s"]
        self.log("  ".join(parts) + ("  [green]best[/]" if improved else ""))
        from seglab import viz

        viz.plot_curves(trainer.state["history"], self.out / "curves.png")
        if self.sample_indices:
            eval_model = trainer.ema.module if trainer.ema is not None else trainer.model
            self.task.save_samples(eval_model, self.sample_indices,
                                   self.out / "samples" / f"epoch_{row['epoch']:03d}.png", trainer.device,
                                   trainer.autocast)
        if metrics is not None and improved:
            self.best_metrics = metrics
            if "confusion_matrix" in metrics:
                viz.plot_confusion(metrics["confusion_matrix"], self.task.classes, self.out / "confusion.png")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.tb.add_scalar(k, v, row["epoch"])

    def write_csv(self, history: list[dict[str, Any]]) -> None:
        cols = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())

    def finish(self, trainer) -> dict[str, Any]:
        s = trainer.state
        summary = {"out": str(self.out), "best": s["best"], "monitor": self.cfg.train.monitor,
                   "epochs": s["epoch"], "steps": s["step"], "skipped_steps": s["skipped"],
                   "last": s["history"][-1] if s["history"] else {},
                   "minutes": round((time.perf_counter() - self.t0) / 60, 2)}
        if self.enabled:
            if self.tb is not None:
                self.tb.close()
            atomic_write_text(self.out / "report.md", self.report_md(trainer, summary))
            best = "n/a" if s["best"] is None else f"{s['best']:.4f}"
            self.log(f"done in {summary['minutes']} min: best {self.cfg.train.monitor} {best}. "
                     f"Run directory: {self.out} (report.md, curves.png, samples/, best.pt)")
        return summary

    def report_md(self, trainer, summary: dict[str, Any]) -> str:
        m = self.best_metrics or {}
        c, t = self.cfg, self.cfg.train
        lines = [f"# Run report: {c.model.name} on {c.data.root}", "",
                 f"{summary['epochs']} epochs, {summary['steps']} optimizer steps, {summary['minutes']} min; "
                 f"loss `{t.loss}`, optimizer {t.optimizer} lr {t.lr}, schedule {t.schedule}, precision "
                 f"{t.precision}, batch {t.batch_size} x accum {t.accum}, sampler {c.data.sampler}.", ""]
        cw = getattr(trainer, "class_weights", None)
        if cw is not None:
            lines += ["Class weights (" + ("given" if t.class_weights else f"{t.weight_method} frequency, "
                      "computed from the training split") + "): " + ", ".join(f"{w:.3g}" for w in cw), ""]
        if summary["skipped_steps"]:
            lines += [f"Skipped {summary['skipped_steps']} steps with a non-finite loss.", ""]
        lines += ["## Best validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in m.items() if isinstance(v, float)]
        if "per_class_iou" in m:
            lines += ["", "## Per-class IoU and Dice", "", "| class | IoU | Dice |", "|---|---|---|"]
            dice = m.get("per_class_dice", [math.nan] * len(m["per_class_iou"]))
            lines += [f"| {name} | {iou:.4f} | {d:.4f} |"
                      for name, iou, d in zip(self.task.classes, m["per_class_iou"], dice, strict=False)]
        samples = sorted((self.out / "samples").glob("epoch_*.png"))
        lines += ["", "## Pictures", "", "![curves](curves.png)", ""]
        if (self.out / "confusion.png").is_file():
            lines += ["![confusion](confusion.png)", ""]
        if samples:
            lines += [f"![samples]({samples[-1].relative_to(self.out).as_posix()})", ""]
        return "\n".join(lines)

