"""Reporting hooks: plain progress lines without a terminal, the run's pictures, a samples folder that stays small."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from seglab.engine import reporting as R
from seglab.engine.state import EpochRecord, TrainState
from seglab.engine.trainer import Trainer
from seglab.viz import best_epoch

STEP_LINE = re.compile(r"^epoch (\d)/3 step (\d+)/4 \(\d+%\) \d+:\d\d elapsed  loss \d\.\d{4}  lr \S+  [\d.]+ img/s$")
VAL_LINE = re.compile(r"^validate epoch (\d)/3: (\d+)/(\d+) \(\d+%\) \d+:\d\d elapsed$")


@pytest.fixture
def quick_lines(monkeypatch) -> None:
    """Progress lines due at every 25 % of an epoch or validation, without waiting 30 s."""
    init = R.ProgressBar.__init__
    monkeypatch.setattr(R.ProgressBar, "__init__",
                        lambda self, epochs, batches, accum: init(self, epochs, batches, accum, 0.0, 0.25))


def test_a_run_without_terminal_prints_bounded_plain_lines_and_draws_its_pictures(
        tiny_data: Path, tmp_path: Path, tiny_config, quick_lines, capsys) -> None:
    out = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_data, out, epochs=3, warmup_epochs=1.0))
    trainer.fit()
    err = capsys.readouterr().err
    assert "\x1b[" not in err  # no colour codes, no cursor moves in a log file
    lines = err.splitlines()
    steps = [m.groups() for m in map(STEP_LINE.match, lines) if m]
    vals = [m.groups() for m in map(VAL_LINE.match, lines) if m]
    # 16 images / batch 4 = 4 steps: a line at each 25 %, never more; every validation reports and ends at 100 %
    assert [(e, int(s)) for e, s in steps] == [(str(e), s) for e in (1, 2, 3) for s in (1, 2, 3, 4)]
    assert {e for e, _, _ in vals} == {"1", "2", "3"} and all(d == t for _, d, t in vals[-1:])
    assert len(vals) <= 3 * 4
    epoch_lines = [x for x in lines if x.startswith("epoch ") and "step" not in x]
    assert len(epoch_lines) == 3 and all("mIoU" in x for x in epoch_lines)  # one summary line each, unwrapped
    for name in ("labels.png", "train_batch.png", "curves.png", "confusion.png", "confusion_pixels.png",
                 "per_class_iou.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    best = best_epoch(rows, "mean_iou")[0]
    kept = sorted(p.name for p in (out / "samples").iterdir())
    assert kept == sorted({"epoch_001.png", f"epoch_{best:03d}.png", "epoch_003.png"})
    report = (out / "report.md").read_text()
    for name in ("per_class_iou.png", "confusion_pixels.png", "labels.png", "train_batch.png",
                 f"samples/epoch_{best:03d}.png"):
        assert f"]({name})" in report, name
    plots = next(h for h in trainer.hooks if isinstance(h, R.Plots))
    assert (plots.monitor, plots.warmup_epochs) == ("mean_iou", 1.0)  # read from the trainer


def _fake_trainer(epoch: int, improved: bool, history: list[dict] | None = None) -> SimpleNamespace:
    record = EpochRecord()
    record.row, record.improved = {"epoch": epoch}, improved
    state = TrainState()
    state.history = history or []
    return SimpleNamespace(record=record, state=state, eval_model=None, device="cpu", autocast=None,
                           monitor="mean_iou")


def test_samples_keep_the_first_the_best_and_the_latest(tmp_path: Path) -> None:
    def save(model, indices, path, device, autocast) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"png")

    hook = R.Samples(tmp_path, save, [0, 1])
    improved = {1: True, 2: False, 3: True, 4: False, 5: False, 6: False}
    for epoch, better in improved.items():
        hook.after_epoch(_fake_trainer(epoch, better))
        names = sorted(p.name for p in (tmp_path / "samples").iterdir())
        assert len(names) <= 3
    assert names == ["epoch_001.png", "epoch_003.png", "epoch_006.png"]
    # a resumed run finds the best epoch in the rows so far and keeps its picture
    resumed = R.Samples(tmp_path, save, [0, 1])
    rows = [{"epoch": e, "mean_iou": v} for e, v in ((1, 0.1), (2, 0.2), (3, 0.5), (4, 0.4), (5, 0.3), (6, 0.3))]
    resumed.before_train(_fake_trainer(6, False, rows))
    resumed.after_epoch(_fake_trainer(7, False))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == \
        ["epoch_001.png", "epoch_003.png", "epoch_007.png"]


def test_throttle_waits_for_time_and_progress(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(R.Throttle, "clock", staticmethod(lambda: now[0]))
    t = R.Throttle(every_s=30.0, every_frac=0.1)
    assert not t.due(50, 100)  # half done, but no 30 s yet
    now[0] += 31
    assert t.due(50, 100)
    now[0] += 60
    assert not t.due(55, 100)  # a minute later, but only 5 % more
    assert t.due(60, 100)
    now[0] += 3600 + 125
    assert t.line("predict:", 470, 470) == "predict: 470/470 (100%) 1:03:36 elapsed"
    now[0] += 30
    assert t.due(7, None) and t.line("scan:", 7, None) == "scan: 7 1:04:06 elapsed"  # no total: time only


def test_log_never_wraps_a_long_line(capsys) -> None:
    command = "seglab train --data " + "/very/long/path" * 12 + " --model unet --epochs 20"
    R.log(f"resume with: {command}")
    assert capsys.readouterr().err == f"resume with: {command}\n"


def test_on_a_terminal_training_and_validation_get_bars(tiny_data: Path, tmp_path: Path, tiny_config,
                                                        monkeypatch) -> None:
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(R, "console", Console(file=screen, force_terminal=True, width=120))
    Trainer(tiny_config(tiny_data, tmp_path / "run", epochs=1)).fit()
    shown = screen.getvalue()
    assert "epoch 1/1" in shown and "validate epoch 1/1" in shown and "img/s" in shown
