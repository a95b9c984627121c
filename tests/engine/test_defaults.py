"""Defaults that fit the machine: no --model means the plan for the data and device, and said so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seglab.config import RunConfig, config_from_dict
from seglab.engine.build import resolve_model
from seglab.engine.trainer import Trainer, train
from seglab.errors import ConfigError


def _cfg(root: Path, **model: object) -> RunConfig:
    return config_from_dict({"data": {"root": str(root)}, "model": model})


def test_no_model_on_a_cpu_is_a_small_unet(tiny_data: Path) -> None:
    cfg, why = resolve_model(_cfg(tiny_data), torch.device("cpu"))
    assert (cfg.model.name, cfg.model.options) == ("unet", {"base_channels": 16})
    assert "no --model given" in why and "cpu" in why and "seglab plan" in why and "seglab models" in why
    # the rest of the plan too: 32 px images give 32 px crops, the dataset's own mean
    assert cfg.data.crop_size == 32 and cfg.train.lr == pytest.approx(3e-3) and cfg.data.mean is not None


def test_values_given_equal_to_the_defaults_are_kept_too(tiny_data: Path, tmp_path: Path) -> None:
    from seglab.cli.train_cmd import explicit_keys

    cfg = config_from_dict({"data": {"root": str(tiny_data), "crop_size": 256}, "train": {"precision": "fp32"}})
    planned, why = resolve_model(cfg, torch.device("cpu"), given={"data.crop_size", "train.precision"})
    assert planned.data.crop_size == 256 and planned.train.precision == "fp32"  # both equal RunConfig's defaults
    assert "your own data.crop_size, train.precision kept" in why
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 0.01\ndata:\n  crop_size: 64\n")
    assert explicit_keys(config, {"batch_size": 8, "data": "d"}, ["precision=fp32", "train.ema=0.9"]) == {
        "train.lr", "data.crop_size", "train.batch_size", "data.root", "train.precision", "train.ema"}


def test_values_the_user_set_are_kept(tiny_data: Path) -> None:
    cfg = config_from_dict({"data": {"root": str(tiny_data), "crop_size": 16}, "train": {"lr": 0.01}})
    planned, why = resolve_model(cfg, torch.device("cpu"))
    assert planned.data.crop_size == 16 and planned.train.lr == 0.01 and planned.model.name == "unet"
    assert "your own data.crop_size, train.lr kept" in why
    assert cfg.model.name is None  # the caller's config is not changed
    cfg, _ = resolve_model(_cfg(tiny_data, options={"base_channels": 8, "depth": 2}), torch.device("cpu"))
    assert cfg.model.options == {"base_channels": 8, "depth": 2}  # --model-opt still applies
    assert resolve_model(_cfg(tiny_data, name="fcn8s"), torch.device("cpu")) == (_cfg(tiny_data, name="fcn8s"), None)


def test_no_model_on_instance_data_is_a_small_mask_rcnn(coco_root: Path) -> None:
    cfg, why = resolve_model(_cfg(coco_root), torch.device("cpu"))
    assert cfg.model.name == "maskrcnn_resnet18_fpn" and "maskrcnn_resnet18_fpn" in why and cfg.data.scale == [0.6, 1.0]


def test_the_choice_is_printed_and_written_to_the_run(tiny_data: Path, tmp_path: Path, capsys) -> None:
    cfg = config_from_dict({"data": {"root": str(tiny_data), "crop_size": 32, "workers": 0},
                            "model": {"options": {"depth": 2}},
                            "train": {"out": str(tmp_path / "run"), "epochs": 1, "batch_size": 4,
                                      "num_samples": 0, "warmup_epochs": 0.0}})
    train(cfg)
    assert "no --model given, so the plan for this data and cpu: unet (base_channels=16, depth=2)" in \
        capsys.readouterr().err
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: unet" in saved and "base_channels: 16" in saved


def test_a_config_built_in_python_is_checked_too(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "r", clip_grad=-1.0)
    with pytest.raises(ConfigError, match="train.clip_grad` must be > 0"):
        Trainer(cfg)
