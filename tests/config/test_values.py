"""Every config value is checked where it is set: bad types and bad ranges of every field are ConfigErrors."""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path

import pytest

from seglab.config import SECTIONS, RunConfig, apply_overrides, config_from_dict, load_config, parse_options
from seglab.config.values import RULES
from seglab.errors import ConfigError, ModelError

FIELDS = [(s, k, tp) for s, c in SECTIONS.items() for k, tp in typing.get_type_hints(c).items()]


def _wrong_types(tp: object) -> list[object]:
    """Values of a type the annotation does not allow."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)][0]
        return [v for v in _wrong_types(inner) if v is not None]
    if origin is typing.Literal:
        return ["no-such-choice", 3]
    if origin is list:
        return [{"a": 1}, 7, ["x", "y"]] if args[0] is not str else [{"a": 1}, 7]
    if origin is dict:
        return ["abc", [1, 2]]
    return {bool: ["yes", 1], int: ["abc", 1.5, True, None], float: ["fast", True, math.nan, math.inf, None],
            str: [5, ["a"], None]}[tp]


@pytest.mark.parametrize(("section", "key", "tp"), FIELDS, ids=[f"{s}.{k}" for s, k, _ in FIELDS])
def test_every_field_refuses_wrong_types(section: str, key: str, tp: object) -> None:
    for value in _wrong_types(tp):
        if value is None and type(None) in typing.get_args(tp):
            continue
        with pytest.raises(ConfigError, match=f"`{section}.{key}"):
            config_from_dict({section: {key: value}})


# Out-of-range values for each ranged key (one value per case so the failure names it).
OUT_OF_RANGE = {
    "data.num_classes": [0, -3], "data.in_channels": [2, 4], "data.ignore_index": [-1, 70000], "data.crop_size": [0, 4],
    "data.resize": [0, 8, -64], "data.scale": [[0.0, 1.0], [-1.0, 2.0]], "data.hflip": [7.0, -0.1],
    "data.rotate": [-5.0, 400.0],
    "data.vflip": [1.5, -0.2], "data.repeats": [0, -2], "data.elastic": [-1.0, 500.0],
    "data.color_jitter": [2.0], "data.std": [[0.0, 1.0, 1.0]], "data.workers": [-1], "data.max_pixels": [0],
    "data.tta": ["bogus", "hflip,scales=0", "hflip,scales=abc"],
    "model.name": [""], "train.out": [""], "train.epochs": [0, -1], "train.batch_size": [0], "train.lr": [0.0, -1.0],
    "train.momentum": [1.0, -0.5], "train.weight_decay": [-1e-4], "train.warmup_epochs": [-1.0],
    "train.min_lr_ratio": [1.5], "train.poly_power": [0.0], "train.milestones": [[0], [-2]], "train.gamma": [0.0, 2.0],
    "train.plateau_patience": [-1], "train.plateau_factor": [1.0, 0.0], "train.loss": [""],
    "train.class_weights": [[1.0, -2.0]], "train.accum": [0], "train.clip_grad": [-1.0, 0.0], "train.ema": [1.0, 2.0],
    "train.seed": [-1], "train.save_every": [-5], "train.eval_every": [0], "train.monitor": [""],
    "train.early_stop": [-1], "train.num_samples": [-1], "train.device": ["tpu", "cuda:x", "gpu"],
    "train.time": ["soon", "-5m", "0"],
}


def test_every_rule_has_cases() -> None:
    assert set(OUT_OF_RANGE) == set(RULES)


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in OUT_OF_RANGE.items() for v in vs])
def test_out_of_range_values_are_refused_with_the_range(key: str, value: object) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=f"`{key}(\\[\\d+\\])?` must be"):
        config_from_dict({section: {name: value}})


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=.nan", "finite number"), ("train.lr=[0.1", "cannot read the value"), ("lr=-1", "must be > 0"),
    ("clip_grad=-1", "must be > 0"), ("weight_decay=-0.1", "must be >= 0"), ("ema=2", r"in \[0, 1\)"),
    ("data.hflip=7", r"in \[0, 1\]"), ("workers=-1", ">= 0"), ("epoch=3", "Did you mean `epochs`"),
    ("train.moniter=x", "Did you mean `monitor`"), ("data.scale=2,1", "min <= max"),
    ("warmup_epochs=50", "longer than the run"), ("data.mean=[0.5]", "go together"),
])
def test_overrides_are_checked(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(RunConfig(), [override])


def test_good_values_pass() -> None:
    cfg = apply_overrides(RunConfig(), ["lr=0.1", "clip_grad=1.0", "ema=0.999", "device=cuda:1", "data.scale=0.75,1.5",
                                        "data.mean=[0.1,0.2,0.3]", "data.std=[0.2,0.2,0.2]", "ignore_index=0",
                                        "data.resize=256"])
    assert cfg.train.clip_grad == 1.0 and cfg.train.device == "cuda:1" and cfg.data.ignore_index == 0
    assert cfg.data.resize == 256 and apply_overrides(cfg, ["data.resize=null"]).data.resize is None


def test_config_files_that_are_not_utf8_or_not_yaml(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("train:\n  loss: \xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin.yaml: not a UTF-8 text file"):
        load_config(latin)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="folder.yaml"):
        load_config(folder)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)
    numbered = tmp_path / "numbered.yaml"
    numbered.write_text("train:\n  1: 2\n")
    with pytest.raises(ConfigError, match="not a name"):
        load_config(numbered)


@pytest.mark.parametrize(("item", "message"), [
    ("base_channels=abc", "expects an integer"), ("base_channels=-8", "must be >= 1"), ("base_channels=0", ">= 1"),
    ("base_channels=[8", "cannot read the value"), ("dropout=2.0", "cannot be built with dropout=2.0"),
    ("upsample=sideways", "upsample"), ("depth=1.5", "expects an integer"), ("nope=1", "has no option"),
])
def test_model_options_are_checked_against_the_builder(item: str, message: str) -> None:
    from seglab.models.registry import build_model

    with pytest.raises((ConfigError, ModelError), match=message):
        build_model("unet", 2, **parse_options([item]))
