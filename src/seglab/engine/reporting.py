"""Hooks that show a run and write its run directory: config.yaml, metrics.csv, TensorBoard, curves.png,
confusion.png, per_class_iou.png, labels.png, train_batch.png, samples/, report.md, the progress and the epoch
lines.

They only observe (see ``hooks.py`` for the contract); the trainer registers them on rank 0 alone, and
every file is written atomically. Without a terminal (nohup, SLURM, ``| tee``) progress is a plain line now
and then (:class:`Throttle`), and no line is wrapped (``soft_wrap``), so a pasted command stays whole.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seglab.engine.hooks import EvalHook, Hook, Loop, monitor_mode
from seglab.errors import ConfigError
from seglab.fileio import atomic_write_text

console = Console(stderr=True)


def log(msg: str) -> None:
    """One line on stderr (rich markup allowed)."""
    console.print(msg, highlight=False, soft_wrap=True)


class WriteConfig(Hook):
    """``config.yaml``: the complete, re-runnable config of the run (monitor resolved).

    ``yaml_text`` is the text, or a function giving the run's config now: then the file is rewritten after an
    epoch in which it changed (``--time`` re-fitted the epochs), so a resume reads the run as it is.
    """

    def __init__(self, out: Path, yaml_text: str | Callable[[], str]) -> None:
        self.out, self.yaml_text, self.written = Path(out), yaml_text, None

    def _text(self) -> str:
        return self.yaml_text() if callable(self.yaml_text) else self.yaml_text

    def before_train(self, trainer: Loop) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.written = self._text()
        atomic_write_text(self.out / "config.yaml", self.written)

    def after_epoch(self, trainer: Loop) -> None:
        if self._text() != self.written:
            self.before_train(trainer)


class Throttle:
    """When a plain progress line is due: once ``every_s`` seconds AND ``every_frac`` of the total (when known)
    have passed since the last one, so a job prints at most ``1 / every_frac`` lines, none faster than
    ``every_s``, whatever its length."""

    clock = staticmethod(time.monotonic)

    def __init__(self, every_s: float = 30.0, every_frac: float = 0.1) -> None:
        self.every_s, self.every_frac = every_s, every_frac
        self.started = self.last = self.clock()
        self.last_frac, self.lines = 0.0, 0

    def due(self, done: int, total: int | None) -> bool:
        now, frac = self.clock(), done / total if total else 0.0
        if now - self.last < self.every_s or (total and frac - self.last_frac < self.every_frac - 1e-9):
            return False
        self.last, self.last_frac, self.lines = now, frac, self.lines + 1
        return True

    def line(self, label: str, done: int, total: int | None) -> str:
        """``<label> 120/470 (26%) 0:41 elapsed`` (``<label> 120 0:41 elapsed`` without a total)."""
        count = f"{done}/{total} ({done / total:.0%})" if total else f"{done}"
        m, sec = divmod(int(self.clock() - self.started), 60)
        return f"{label} {count} {f'{m // 60}:{m % 60:02d}' if m >= 60 else m}:{sec:02d} elapsed"


class ProgressLoader:
    """``loader`` that calls ``callback(done, total)`` with 0 before the first batch and after each one."""

    def __init__(self, loader: Any, callback: Callable[[int, int], None]) -> None:
        self.loader, self.callback = loader, callback

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # dataset, batch_size, ... of the wrapped loader
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        total = len(self.loader)
        self.callback(0, total)
        for done, batch in enumerate(self.loader, start=1):
            yield batch
            self.callback(done, total)


class ProgressBar(Hook):
    """Training and validation progress on stderr: a transient rich bar on a terminal (loss, LR, images/s);
    without one, a plain line every ``every_s`` seconds and ``every_frac`` of the epoch, whichever is later.

    Validation reports through the evaluation hook's loader, wrapped in :class:`ProgressLoader` before
    training starts.
    """

    def __init__(self, epochs: int, batches: int, accum: int, every_s: float = 30.0, every_frac: float = 0.25) -> None:
        self.epochs, self.batches, self.accum = epochs, batches, accum
        self.every_s, self.every_frac = every_s, every_frac
        self.progress: Progress | None = None
        self.lines: Throttle | None = None
        self.done, self.what = 0, "validate"

    def before_train(self, trainer: Loop) -> None:
        for hook in getattr(trainer, "hooks", ()):
            if isinstance(hook, EvalHook) and not isinstance(hook.loader, ProgressLoader):
                hook.loader = ProgressLoader(hook.loader, self.validating)

    def before_epoch(self, trainer: Loop) -> None:
        self.epochs = getattr(trainer, "epochs", self.epochs)  # --time may have re-fitted them
        self.done, self.what = 0, f"epoch {trainer.state.epoch + 1}/{self.epochs}"
        self._start(self.batches, TextColumn("loss {task.fields[loss]:.4f} lr {task.fields[lr]:.2e} "
                                             "{task.fields[rate]:.1f} img/s"))

    def after_step(self, trainer: Loop) -> None:
        self.done += self.accum
        loss, lr, rate = trainer.record.last_loss, trainer.lr, trainer.record.images_per_s()
        if self.progress is not None:
            self.progress.update(self.bar, advance=self.accum, loss=loss, lr=lr, rate=rate)
        elif self.lines is not None and self.lines.due(self.done, self.batches):
            log(f"{self.lines.line(f'{self.what} step', self.done, self.batches)}  loss {loss:.4f}  lr {lr:.2e}  "
                f"{rate:.1f} img/s")

    def after_epoch(self, trainer: Loop) -> None:
        self._close()
        self.what = f"validate epoch {trainer.state.epoch}/{self.epochs}"

    def validating(self, done: int, total: int) -> None:
        """The validation loader's ``callback(done, total)``."""
        if done == 0:
            self._start(total, TextColumn(""))
        elif self.progress is not None:
            self.progress.update(self.bar, completed=done)
        elif self.lines is not None and self.lines.due(done, total):
            log(self.lines.line(f"{self.what}:", done, total))
        if done >= total:
            self._close()

    def _start(self, total: int, fields: TextColumn) -> None:
        self._close()
        if not console.is_terminal:
            self.lines = Throttle(self.every_s, self.every_frac)
            return
        self.progress = Progress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(), fields,
                                 TimeRemainingColumn(), console=console, transient=True)
        self.bar = self.progress.add_task("", total=total, loss=math.nan, lr=0.0, rate=0.0)
        self.progress.start()

    def _close(self) -> None:
        self.lines = None
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
        self.epochs = getattr(trainer, "epochs", self.epochs)  # --time may have re-fitted them
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
    """Pictures of the run (docs/pictures.md). Before epoch 1: ``labels.png`` (class pixel shares, object sizes)
    and ``train_batch.png`` (augmented training images). Each epoch: ``curves.png`` (best epoch marked, warm-up
    shaded). At each new best: ``confusion.png`` (row-normalized), ``confusion_pixels.png`` (pixel counts) and
    ``per_class_iou.png`` (semantic runs).

    ``monitor``, ``warmup_epochs`` and ``task`` left ``None`` are read from the trainer (``trainer.monitor``,
    ``trainer.t.warmup_epochs``, ``trainer.task``) where it has them.
    """

    def __init__(self, out: Path, classes: Sequence[str], monitor: str | None = None,
                 warmup_epochs: float | None = None, task: Any = None) -> None:
        self.out, self.classes, self.monitor = Path(out), list(classes), monitor
        self.warmup_epochs, self.task = warmup_epochs, task

    def before_train(self, trainer: Loop) -> None:
        self.monitor = self.monitor or getattr(trainer, "monitor", None)
        if self.warmup_epochs is None:
            self.warmup_epochs = float(getattr(getattr(trainer, "t", None), "warmup_epochs", 0.0) or 0.0)
        task = self.task or getattr(trainer, "task", None)
        if task is not None and not trainer.state.epoch:  # a resumed run drew them when it started
            from seglab.viz import save_data_pictures

            save_data_pictures(self.out, task)

    def after_epoch(self, trainer: Loop) -> None:
        from seglab import viz

        viz.plot_curves(trainer.state.history, self.out / "curves.png", self.monitor, self.warmup_epochs or 0.0)
        m = trainer.record.metrics
        if m is None or not trainer.record.improved:
            return
        if "confusion_matrix" in m:
            viz.plot_confusion(m["confusion_matrix"], self.classes, self.out / "confusion.png")
            viz.plot_confusion(m["confusion_matrix"], self.classes, self.out / "confusion_pixels.png", normalize=False)
        if "per_class_iou" in m:
            viz.plot_per_class(m["per_class_iou"], self.classes, self.out / "per_class_iou.png")


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (first and last included)."""
    k = min(k, n)
    return [round(i * (n - 1) / max(1, k - 1)) for i in range(k)] if k > 1 else list(range(k))


class Samples(Hook):
    """``samples/epoch_NNN.png``: the task's picture of predictions on fixed validation images.

    Three are kept, so the folder does not fill with near-copies: the first epoch's (the baseline), the best
    epoch's (what ``best.pt`` predicts) and the latest; the others are deleted as the run goes on.
    """

    def __init__(self, out: Path, save: Callable[..., None], indices: list[int], monitor: str | None = None) -> None:
        self.out, self.save, self.indices, self.monitor = Path(out), save, list(indices), monitor
        self.best: int | None = None

    def before_train(self, trainer: Loop) -> None:
        self.monitor = self.monitor or getattr(trainer, "monitor", None)
        if self.monitor and trainer.state.history:  # resumed: the best epoch so far, from the rows
            from seglab.viz import best_epoch

            found = best_epoch(trainer.state.history, self.monitor, monitor_mode(self.monitor))
            self.best = found[0] if found else None

    def after_epoch(self, trainer: Loop) -> None:
        if not self.indices:
            return
        epoch = trainer.record.row["epoch"]
        self.save(trainer.eval_model, self.indices, self.out / "samples" / f"epoch_{epoch:03d}.png", trainer.device,
                  trainer.autocast)
        self.best = epoch if trainer.record.improved else self.best
        pictures = sorted((self.out / "samples").glob("epoch_*.png"), key=lambda f: (len(f.name), f.name))
        keep = {pictures[0].name, f"epoch_{epoch:03d}.png", f"epoch_{self.best or 0:03d}.png"}
        for old in pictures:
            if old.name not in keep:
                old.unlink(missing_ok=True)


class Report(Hook):
    """``report.md``: the setup, the best epoch's metrics (with per-class IoU / Dice) and the pictures."""

    def __init__(self, out: Path, title: str, setup: str, notes: list[str], classes: Sequence[str]) -> None:
        self.out, self.title, self.setup, self.notes = Path(out), title, setup, list(notes)
        self.classes = list(classes)
        self.best_metrics: dict[str, Any] = {}
        self.best_epoch: int | None = None
        self.sanity: list[str] = []  # the sanity bar's markdown (trivial baselines of the val split)

    def after_epoch(self, trainer: Loop) -> None:
        if trainer.record.metrics is not None and trainer.record.improved:
            self.best_metrics, self.best_epoch = trainer.record.metrics, trainer.record.row["epoch"]

    def state_dict(self) -> dict[str, Any]:
        """The best epoch's metrics, so a resumed run's report still shows them (plain values only)."""
        plain = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in self.best_metrics.items()}
        return {"best_epoch": self.best_epoch, "best_metrics": {
            k: v for k, v in plain.items() if isinstance(v, (int, float, str, list)) and k != "confusion_matrix"}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_epoch, self.best_metrics = state.get("best_epoch"), dict(state.get("best_metrics") or {})

    def after_train(self, trainer: Loop) -> None:
        bar = getattr(getattr(trainer, "task", None), "sanity_bar", None)  # semantic: trivial baselines, in words
        self.sanity = bar(self.best_metrics.get("mean_iou", math.nan), self.classes) if callable(bar) else []
        atomic_write_text(self.out / "report.md", self.markdown(trainer.summary or {}))

    def markdown(self, summary: dict[str, Any]) -> str:
        """The report text for a run ``summary`` (epochs, steps, minutes, skipped_steps)."""
        m = self.best_metrics
        lines = [f"# {self.title}", "", f"{summary.get('epochs')} epochs, {summary.get('steps')} optimizer steps, "
                 f"{summary.get('minutes')} min; {self.setup}", ""]
        lines += [x for note in self.notes for x in (note, "")]
        if summary.get("skipped_steps"):
            lines += [f"Skipped {summary['skipped_steps']} steps with a non-finite loss.", ""]
        if summary.get("budget_cut"):  # --time stopped the run before its planned epochs
            lines += [summary["budget_cut"], ""]
        lines += ["## Best validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in m.items() if isinstance(v, float)]
        if "per_class_iou" in m:
            lines += ["", "## Per-class IoU and Dice", "", "| class | IoU | Dice |", "|---|---|---|"]
            dice = m.get("per_class_dice", [math.nan] * len(m["per_class_iou"]))
            lines += [f"| {name} | {iou:.4f} | {d:.4f} |"
                      for name, iou, d in zip(self.classes, m["per_class_iou"], dice, strict=False)]
        lines += ["", *self.sanity, "## Pictures", "", "![curves](curves.png)", ""]
        best = f"samples/epoch_{self.best_epoch or 0:03d}.png"
        latest = sorted((self.out / "samples").glob("epoch_*.png"), key=lambda f: (len(f.name), f.name))[-1:]
        for name, alt in (("per_class_iou.png", "per-class IoU"), ("confusion.png", "confusion, row-normalized"),
                          ("confusion_pixels.png", "confusion, pixels"), (best, "samples, best epoch"),
                          *((f"samples/{f.name}", "samples, last epoch") for f in latest if f.name not in best),
                          ("labels.png", "label statistics"), ("train_batch.png", "augmented training images")):
            if (self.out / name).is_file():
                lines += [f"![{alt}]({name})", ""]
        return "\n".join(lines)
