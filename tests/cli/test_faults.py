"""Fault cases through the real CLI: every case exits 0 or 2 (never 1, never a traceback), inputs stay as they
were, and no checkpoint written is non-finite.

Each case is ``(name, make)``: ``make(ctx)`` prepares what the case needs and returns the argv and the
message expected on stderr. Cases run in-process (``seglab.cli.main``): an exception that is not a
``SeglabError`` escapes ``main`` and fails the test, which is what a traceback would be for a user. Two
of them also run as a subprocess to check the printed output itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "unet", "--model-opt", "base_channels=4", "--model-opt", "depth=2", "--epochs", "1",
        "--batch-size", "4", "--crop-size", "32", "--warmup-epochs", "0", "--set", "train.num_samples=0"]


@dataclass
class Ctx:
    data: Path
    tmp: Path
    run: Path  # a finished tiny run (shared, read only)

    def train(self, *flags: str, out: str = "out", data: Path | None = None) -> list[str]:
        return ["train", "--data", str(data or self.data), *TINY, "--workers", "0", "--out", str(self.tmp / out),
                *flags]


def _latin_config(c: Ctx) -> tuple[list[str], str]:
    path = c.tmp / "latin.yaml"
    path.write_bytes("train:\n  loss: \xe9\n".encode("latin-1"))
    return c.train("--config", str(path)), "not a UTF-8 text file"


def _out_is_a_file(c: Ctx) -> tuple[list[str], str]:
    (c.tmp / "afile").write_text("x")
    return c.train(out="afile"), "is a file"


def _copy_data(c: Ctx) -> Path:
    return Path(shutil.copytree(c.data, c.tmp / "data_copy"))


def _truncated_image(c: Ctx) -> tuple[list[str], str]:
    data = _copy_data(c)
    victim = sorted((data / "images" / "train").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # header intact, pixels cut
    argv = c.train(data=data)
    argv[argv.index("--workers") + 1] = "2"
    return argv, f"{victim.name}: corrupt or truncated"


def _all_ignore(c: Ctx) -> tuple[list[str], str]:
    data = _copy_data(c)
    for label in (data / "labels" / "train").glob("*.png"):
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(label)
    return c.train(data=data), "every pixel of every label is the ignore value 255"


def _resume_changed(c: Ctx) -> tuple[list[str], str]:
    run = Path(shutil.copytree(c.run, c.tmp / "resumed"))
    return ["train", "--resume", "--out", str(run), "--lr", "0.5"], "train.lr: 0.001 in the run, 0.5 now"


def _resume_nothing(c: Ctx) -> tuple[list[str], str]:
    return c.train("--resume", out="empty"), "nothing to resume"


def _locked(c: Ctx) -> tuple[list[str], str]:
    out = c.tmp / "locked"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": 0}))
    return c.train("--resume", out="locked"), "in use by another seglab run"


def _nan_checkpoint(c: Ctx, command: str) -> tuple[list[str], str]:
    from seglab.checkpoint import read_checkpoint, save_checkpoint

    ck = read_checkpoint(c.run / "best.pt")
    ck.pop("path")
    for v in ck["model_state"].values():
        if v.is_floating_point():
            v.fill_(float("inf"))
            break
    save_checkpoint(c.tmp / "inf.pt", ck)
    argv = {"evaluate": ["evaluate", str(c.tmp / "inf.pt"), "--data", str(c.data)],
            "predict": ["predict", str(c.tmp / "inf.pt"), str(c.data / "images" / "val"), "--out", str(c.tmp / "p")],
            "export": ["export", str(c.tmp / "inf.pt"), "--out", str(c.tmp / "m.onnx")]}[command]
    return argv, "hold NaN/Inf"


def _odd_checkpoint(c: Ctx) -> tuple[list[str], str]:
    torch.save({"model": {"name": "unet", "num_classes": "three"}, "model_state": {}, "classes": ["a"]},
               c.tmp / "odd.pt")
    return ["evaluate", str(c.tmp / "odd.pt"), "--data", str(c.data)], "'num_classes' must be"


def _flag(*flags: str, message: str) -> Callable[[Ctx], tuple[list[str], str]]:
    return lambda c: (c.train(*flags), message)


CASES: list[tuple[str, Callable[[Ctx], tuple[list[str], str]]]] = [
    ("lr nan", _flag("--lr", "nan", message="finite number")),
    ("lr negative", _flag("--lr", "-1", message="must be > 0")),
    ("lr inf", _flag("--lr", "inf", message="finite number")),
    ("clip-grad negative", _flag("--clip-grad", "-1", message="must be > 0")),
    ("weight decay negative", _flag("--weight-decay", "-0.1", message=">= 0")),
    ("warm-up negative", _flag("--warmup-epochs", "-2", message=">= 0")),
    ("workers negative", _flag("--workers", "-1", message=">= 0")),
    ("ema 2", _flag("--ema", "2", message=r"in \[0, 1\)")),
    ("hflip 7", _flag("--set", "data.hflip=7", message=r"in \[0, 1\]")),
    ("model option text", _flag("--model-opt", "base_channels=abc", message="expects an integer")),
    ("model option negative", _flag("--model-opt", "base_channels=-8", message=">= 1")),
    ("model option broken yaml", _flag("--model-opt", "base_channels=[8", message="cannot read the value")),
    ("set broken yaml", _flag("--set", "train.lr=[0.1", message="cannot read the value")),
    ("unknown key", _flag("--set", "train.lrr=0.1", message="Did you mean `lr`")),
    ("device cuda:99", _flag("--device", "cuda:99", message="GPU")),
    ("device tpu", _flag("--device", "tpu", message="auto, cpu, cuda")),
    ("monitor typo", _flag("--monitor", "miou", message="Did you mean `mean_iou`")),
    ("ignore a real class", _flag("--ignore-index", "1", message="--allow-ignore-class")),
    ("unknown model", _flag("--model", "unett", message="Did you mean 'unet'")),
    ("missing data", lambda c: (c.train(data=c.tmp / "nowhere"), "nowhere")),
    ("config not utf-8", _latin_config),
    ("config missing", _flag("--config", "/nonexistent/c.yaml", message="config file not found")),
    ("out is a file", _out_is_a_file),
    ("truncated image, 2 workers", _truncated_image),
    ("all-ignore labels", _all_ignore),
    ("resume with another lr", _resume_changed),
    ("resume with nothing there", _resume_nothing),
    ("locked run directory", _locked),
    ("evaluate inf weights", lambda c: _nan_checkpoint(c, "evaluate")),
    ("predict inf weights", lambda c: _nan_checkpoint(c, "predict")),
    ("export inf weights", lambda c: _nan_checkpoint(c, "export")),
    ("checkpoint of wrong types", _odd_checkpoint),
]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny dataset and a 1-epoch run trained on it through the CLI (read only)."""
    from seglab.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("faults")
    data = make_shapes(root / "data", n_train=8, n_val=2, size=32, seed=0)
    assert main(["train", "--data", str(data), *TINY, "--workers", "0", "--out", str(root / "run")]) == 0
    return data, root / "run"


@pytest.mark.parametrize("make", [m for _, m in CASES], ids=[n for n, _ in CASES])
def test_fault_exits_2_with_a_message_and_changes_nothing(make, finished_run: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    data, run = finished_run
    ctx = Ctx(data, tmp_path, run)
    before = (_digest(data), _digest(run))
    argv, message = make(ctx)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and re.search(message, err), err
    assert "Traceback" not in err
    assert (_digest(data), _digest(run)) == before  # inputs (and the finished run) untouched
    for pt in tmp_path.rglob("*.pt"):  # whatever was written is finite (inf.pt is the case's own input)
        if pt.name != "inf.pt":
            state = torch.load(pt, weights_only=True)["model_state"]
            assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), pt


def test_a_diverging_run_ends_in_exit_2_without_a_nonfinite_file(finished_run: tuple[Path, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    data, _ = finished_run
    argv = Ctx(data, tmp_path, tmp_path).train("--lr", "1e6", "--optimizer", "sgd", "--epochs", "3")
    assert main(argv) == 2
    assert re.search("non-finite loss|diverged", capsys.readouterr().err)  # loss or weights, whichever goes first
    for pt in tmp_path.rglob("*.pt"):
        state = torch.load(pt, weights_only=True)["model_state"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), pt


def test_resume_from_the_run_folder_alone(finished_run: tuple[Path, Path], tmp_path: Path) -> None:
    """`seglab train --resume --out RUN --epochs 2`: the data, model and settings come from RUN/config.yaml."""
    _, run = finished_run
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    assert main(["train", "--resume", "--out", str(copy), "--epochs", "2"]) == 0
    assert torch.load(copy / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("case", ["lr nan", "truncated image, 2 workers"])
def test_the_printed_error_is_one_message_without_traceback(case: str, finished_run: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    data, run = finished_run
    argv, message = dict(CASES)[case](Ctx(data, tmp_path, run))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "seglab", *argv], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "DataLoader worker" not in proc.stderr
    assert proc.stderr.startswith("error:"), proc.stderr
