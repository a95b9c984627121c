"""Hooks that show a run and write its run directory: config.yaml, metrics.csv, TensorBoard, curves.png,
confusion.png, samples/, report.md, the progress bar and the epoch lines.

They only observe (see ``hooks.py`` for the contract); the trainer registers them on rank 0 alone, and
every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seglab.engine.hooks import Hook, Loop
from seglab.errors import ConfigError
from seglab.fileio import atomic_write_text

console = Console(stderr=True)


def log(msg: str) -> None:
    """One line on stderr (rich markup allowed)."""
    console.print(msg, highlight=False, soft_wrap=True)


class WriteConfig(Hook):
    """``config.yaml``: the complete, re-runnable config of the run (monitor resolved)."""

    def __init__(self, out: Path, yaml_text: str) -> None:
        self.out, self.yaml_text = Path(out), yaml_text

    def before_train(self, trainer: Loop) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", self.yaml_text)


class ProgressBar(Hook):
    """A transient rich bar per epoch (loss, LR, images/s); silent when stderr is not a terminal."""

    def __init__(self, epochs: int, batches: int, accum: int) -> None:
        self.epochs, self.batches, self.accum = epochs, batches, accum
        self.progress: Progress | None = None

    def before_epoch(self, trainer: Loop) -> None:
        self._close()
        self.progress = Progress(
            TextColumn(f"epoch {trainer.state.epoch + 1}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f} lr {task.fields[lr]:.2e} {task.fields[rate]:.1f} img/s"),
            TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal)
        self.bar = self.progress.add_task("train", total=self.batches, loss=math.nan, lr=0.0, rate=0.0)
        self.progress.start()

    def after_step(self, trainer: Loop) -> None:
        if self.progress is not None:
            self.progress.update(self.bar, advance=self.accum, loss=trainer.record.last_loss, lr=trainer.lr,
                                 rate=trainer.record.images_per_s())

    def after_epoch(self, trainer: Loop) -> None:
        self._close()

    def _close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class ConsoleLog(Hook):
    """The run's header line, one line per epoch (loss, headline metrics, LR, speed) and the closing line."""

    def __init__(self, header: str, epochs: int, headline: Sequence[tuple[str, str]], monitor: str) -> None:
        self.header, self.epochs, self.headline, self.monitor = header, epochs, tuple(headline), monitor

    def before_train(self, trainer: Loop) -> None:
        log(self.header)

    def after_epoch(self, trainer: Loop) -> None:
        row = trainer.record.row
        parts = [f"epoch {row['epoch']}/{self.epochs}", f"loss {row['train_loss']:.4f}"]
        if trainer.record.metrics is not None:  # evaluated this epoch
            parts += [f"val_loss {row['val_loss']:.4f}"] if "val_loss" in row else []
            parts += [f"{label} {row[key]:.4f}" for key, label in self.headline if key in row]
        parts += [f"lr {row['lr']:.2e}", f"{row['images_per_s']:.1f} img/s"]
        log("  ".join(parts) + ("  [green]best[/]" if trainer.record.improved else ""))

    def after_train(self, trainer: Loop) -> None:
        s = trainer.summary or {}
        best = "n/a" if s.get("best") is None else f"{s['best']:.4f}"
        out = Path(s.get("out", "."))
        files = [n for n in ("report.md", "curves.png", "samples/", "best.pt", "last.pt") if (out / n).exists()]
        log(f"done in {s.get('minutes')} min: best {self.monitor} {best}. "
            f"Run directory: {out} ({', '.join(files) or 'empty'})")


class CSVLog(Hook):
    """``metrics.csv``: every epoch's row so far (columns: the union of the rows' keys, in order)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def after_epoch(self, trainer: Loop) -> None:
        history = trainer.state.history
        cols = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())


class TensorBoardLog(Hook):
    """The numbers of each row as TensorBoard scalars in ``<out>/tb`` (needs the ``tb`` extra)."""

    def __init__(self, out: Path) -> None:
        self.out, self.writer = Path(out), None

    def before_train(self, trainer: Loop) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("--tb needs TensorBoard: pip install 'seglab[tb]'.") from e
        self.writer = SummaryWriter(str(self.out / "tb"))

    def after_epoch(self, trainer: Loop) -> None:
        row = trainer.record.row
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "epoch":
                self.writer.add_scalar(k, v, row["epoch"])

    def after_train(self, trainer: Loop) -> None:
        if self.writer is not None:
            self.writer.close()


class Plots(Hook):
    """``curves.png`` after every epoch; ``confusion.png`` when an evaluated epoch is the new best."""

    def __init__(self, out: Path, classes: Sequence[str]) -> None:
        self.out, self.classes = Path(out), list(classes)

    def after_epoch(self, trainer: Loop) -> None:
        from seglab import viz

        viz.plot_curves(trainer.state.history, self.out / "curves.png")
        m = trainer.record.metrics
        if m is not None and trainer.record.improved and "confusion_matrix" in m:
            viz.plot_confusion(m["confusion_matrix"], self.classes, self.out / "confusion.png")


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (first and last included)."""
    k = min(k, n)
    return [round(i * (n - 1) / max(1, k - 1)) for i in range(k)] if k > 1 else list(range(k))


class Samples(Hook):
    """``samples/epoch_NNN.png``: the task's picture of predictions on fixed validation images."""

    def __init__(self, out: Path, save: Callable[..., None], indices: list[int]) -> None:
        self.out, self.save, self.indices = Path(out), save, list(indices)

    def after_epoch(self, trainer: Loop) -> None:
        if self.indices:
            path = self.out / "samples" / f"epoch_{trainer.record.row['epoch']:03d}.png"
            self.save(trainer.eval_model, self.indices, path, trainer.device, trainer.autocast)


class Report(Hook):
    """``report.md``: the setup, the best epoch's metrics (with per-class IoU / Dice) and the pictures."""

    def __init__(self, out: Path, title: str, setup: str, notes: list[str], classes: Sequence[str]) -> None:
        self.out, self.title, self.setup, self.notes = Path(out), title, setup, list(notes)
        self.classes = list(classes)
        self.best_metrics: dict[str, Any] = {}

    def after_epoch(self, trainer: Loop) -> None:
        if trainer.record.metrics is not None and trainer.record.improved:
            self.best_metrics = trainer.record.metrics

    def after_train(self, trainer: Loop) -> None:
        atomic_write_text(self.out / "report.md", self.markdown(trainer.summary or {}))

    def markdown(self, summary: dict[str, Any]) -> str:
        """The report text for a run ``summary`` (epochs, steps, minutes, skipped_steps)."""
        m = self.best_metrics
        lines = [f"# {self.title}", "", f"{summary.get('epochs')} epochs, {summary.get('steps')} optimizer steps, "
                 f"{summary.get('minutes')} min; {self.setup}", ""]
        lines += [x for note in self.notes for x in (note, "")]
        if summary.get("skipped_steps"):
            lines += [f"Skipped {summary['skipped_steps']} steps with a non-finite loss.", ""]
        lines += ["## Best validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in m.items() if isinstance(v, float)]
        if "per_class_iou" in m:
            lines += ["", "## Per-class IoU and Dice", "", "| class | IoU | Dice |", "|---|---|---|"]
            dice = m.get("per_class_dice", [math.nan] * len(m["per_class_iou"]))
            lines += [f"| {name} | {iou:.4f} | {d:.4f} |"
                      for name, iou, d in zip(self.classes, m["per_class_iou"], dice, strict=False)]
        samples = sorted((self.out / "samples").glob("epoch_*.png"))
        lines += ["", "## Pictures", "", "![curves](curves.png)", ""]
        if (self.out / "confusion.png").is_file():
            lines += ["![confusion](confusion.png)", ""]
        if samples:
            lines += [f"![samples]({samples[-1].relative_to(self.out).as_posix()})", ""]
        return "\n".join(lines)
