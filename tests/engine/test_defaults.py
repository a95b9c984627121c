"""Defaults that fit the machine: no --model means a model chosen for the data and device, and said so."""

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
    assert "no --model given" in why and "CPU" in why and "seglab models" in why
    cfg, _ = resolve_model(_cfg(tiny_data, options={"base_channels": 8, "depth": 2}), torch.device("cpu"))
    assert cfg.model.options == {"base_channels": 8, "depth": 2}  # --model-opt still applies
    assert resolve_model(_cfg(tiny_data, name="fcn8s"), torch.device("cpu")) == (_cfg(tiny_data, name="fcn8s"), None)


def test_no_model_on_instance_data_is_a_small_mask_rcnn(coco_root: Path) -> None:
    cfg, why = resolve_model(_cfg(coco_root), torch.device("cpu"))
    assert cfg.model.name == "maskrcnn_resnet18_fpn" and "instance data" in why


def test_the_choice_is_printed_and_written_to_the_run(tiny_data: Path, tmp_path: Path, capsys) -> None:
    cfg = config_from_dict({"data": {"root": str(tiny_data), "crop_size": 32, "workers": 0},
                            "model": {"options": {"depth": 2}},
                            "train": {"out": str(tmp_path / "run"), "epochs": 1, "batch_size": 4,
                                      "num_samples": 0, "warmup_epochs": 0.0}})
    train(cfg)
    assert "no --model given, so unet (base_channels=16, depth=2)" in capsys.readouterr().err
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: unet" in saved and "base_channels: 16" in saved


def test_a_config_built_in_python_is_checked_too(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "r", clip_grad=-1.0)
    with pytest.raises(ConfigError, match="train.clip_grad` must be > 0"):
        Trainer(cfg)
