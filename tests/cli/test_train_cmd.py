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


def test_cli_flags_reach_the_config(monkeypatch, tmp_path: Path, tiny_data: Path) -> None:
    """Only the flags given override the YAML; switches, renamed flags and --set land in their sections."""
    import seglab.engine.trainer as T

    seen = []
    monkeypatch.setattr(T, "train", lambda cfg, given=(): seen.append(cfg))
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
    assert main(["train", "--data", str(tiny_data)]) == 0
    assert seen[0].train.monitor is None and seen[0].train.resume is False  # left to the task


def test_help_shows_defaults_and_switches_take_no_value(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ --")}
    assert "(default 0.001)" in lines["--lr"] and "(default adamw)" in lines["--optimizer"]
    assert "sgd | adam | adamw" in lines["--optimizer"] and "(default 20)" in lines["--epochs"]
    assert "chosen for data and device" in lines["--model"]
    for switch in ("--resume", "--compile", "--tb", "--print-config"):
        assert "<bool>" not in lines[switch], lines[switch]


def test_print_config_is_a_dry_run_of_the_resolved_plan(tmp_path: Path, tiny_data: Path, capsys,
                                                        monkeypatch) -> None:
    """--print-config shows what trains: the plan resolved (issue 29 item 3), the user's values kept."""
    import yaml

    import seglab.engine.trainer as T
    from seglab.config import RunConfig, config_from_dict

    args = ["train", "--data", str(tiny_data), "--lr", "0.02", "--model-opt", "base_channels=8",
            "--out", str(tmp_path / "never"), "--device", "cpu"]
    assert main([*args, "--print-config"]) == 0
    cfg = config_from_dict(yaml.safe_load(capsys.readouterr().out), RunConfig())
    assert cfg.train.lr == 0.02 and cfg.data.root == str(tiny_data) and cfg.model.options == {"base_channels": 8}
    assert cfg.model.name == "unet" and cfg.data.crop_size == 32 and cfg.data.mean is not None  # the plan's
    assert not (tmp_path / "never").exists()
    seen = []
    monkeypatch.setattr(T, "train", lambda cfg, given=(): seen.append(cfg))
    assert main(args) == 0 and seen[0] == cfg  # exactly what the dry run printed


def test_seglab_config_writes_a_file_train_reads(tmp_path: Path, capsys) -> None:
    from seglab.config import load_config

    assert main(["config", "--model", "deeplabv3plus", "--out", str(tmp_path / "c.yaml")]) == 0
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.model.name == "deeplabv3plus" and cfg.model.options["output_stride"] == 16
    assert main(["config"]) == 0 and "model.name null" in capsys.readouterr().out
    assert main(["config", "--model", "unett"]) == 2 and "Did you mean 'unet'" in capsys.readouterr().err
