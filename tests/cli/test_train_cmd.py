"""`seglab train` end to end (one tiny run), flags reaching the RunConfig, and bad values exiting 2.

What training does (run directory, resume, accumulation, non-finite losses, interrupts) is checked by calling
the library in tests/engine/.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from seglab.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_train_writes_the_run_directory(tiny_data: Path, tmp_path: Path) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.config import load_config

    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_data), "--model", "unet", "--model-opt", "base_channels=4",
                 "--model-opt", "depth=2", "--epochs", "1", "--batch-size", "4", "--crop-size", "32",
                 "--warmup-epochs", "0", "--workers", "0", "--out", str(out), "--set", "train.num_samples=0"]) == 0
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "report.md"):
        assert (out / name).is_file(), name
    assert [r["epoch"] for r in csv.DictReader((out / "metrics.csv").open())] == ["1"]
    cfg = load_config(out / "config.yaml")
    assert (cfg.data.root, cfg.model.options, cfg.train.epochs) == (str(tiny_data), {"base_channels": 4, "depth": 2}, 1)
    _, info = load_checkpoint(out / "best.pt")
    assert info.classes == ["background", "square", "disc"] and info.config["train"]["monitor"] == "mean_iou"


def test_cli_train_bad_value_exits_2(tiny_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "seglab", "train", "--data", str(tiny_data), "--optimizer",
                           "rmsprop", "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "train.optimizer" in proc.stderr and "adamw" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_flags_reach_the_config(monkeypatch, tmp_path: Path) -> None:
    """Only the flags given override the YAML; switches, renamed flags and --set land in their sections."""
    import seglab.engine.trainer as T

    seen = []
    monkeypatch.setattr(T, "train", seen.append)
    yaml = tmp_path / "c.yaml"
    yaml.write_text("train: {lr: 0.5, epochs: 7, monitor: pixel_accuracy}\ndata: {crop_size: 64}\n")
    assert main(["train", "--config", str(yaml), "--data", "d", "--model", "fcn", "--epochs", "3", "--resume",
                 "--monitor", "val_loss", "--class-weights", "1,2", "--sampler", "balanced", "--model-opt",
                 "base_channels=8", "--set", "train.gamma=0.5"]) == 0
    (cfg,) = seen
    assert (cfg.data.root, cfg.model.name, cfg.model.options) == ("d", "fcn", {"base_channels": 8})
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.resume, cfg.train.monitor) == (3, 0.5, True, "val_loss")
    assert cfg.train.class_weights == [1.0, 2.0] and cfg.data.sampler == "balanced" and cfg.train.gamma == 0.5
    assert cfg.data.crop_size == 64 and cfg.train.tb is False  # from the YAML / untouched defaults
    seen.clear()
    assert main(["train", "--data", "d"]) == 0
    assert seen[0].train.monitor is None and seen[0].train.resume is False  # left to the task
