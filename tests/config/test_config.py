"""Config: YAML round trip, CLI-style overrides, and errors that name the key and the accepted values."""

from __future__ import annotations

from pathlib import Path

import pytest

from seglab.config import RunConfig, apply_overrides, config_from_dict, load_config, parse_options
from seglab.errors import ConfigError


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = config_from_dict({"data": {"root": "d", "crop_size": 128, "mean": [0.1, 0.2, 0.3],
                                     "std": [0.2, 0.2, 0.2]},
                            "model": {"name": "deeplabv3plus", "options": {"output_stride": 8}},
                            "train": {"lr": 0.01, "class_weights": [1.0, 2.5], "precision": "bf16"}})
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_unknown_key_names_the_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key `train.learning_rate`.*\blr\b"):
        config_from_dict({"train": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match="unknown config section `trian`"):
        config_from_dict({"trian": {}})


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("train", "optimizer", "rmsprop", "one of sgd, adam, adamw"),
    ("train", "precision", "fp8", "one of fp32, bf16, fp16"),
    ("train", "epochs", "ten", "expects an integer"),
    ("train", "epochs", 2.5, "expects an integer"),
    ("train", "nesterov", "yes", "true or false"),
    ("data", "scale", 3, "expects a list"),
    ("train", "lr", "fast", "expects a number"),
])
def test_bad_values_are_named(section: str, key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"`{section}.{key}`.*{message}"):
        config_from_dict({section: {key: value}})


def test_overrides_parse_yaml_scalars_and_lists() -> None:
    cfg = apply_overrides(RunConfig(), ["train.lr=0.5", "epochs=3", "data.scale=0.5,1.5", "class_weights=null"])
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 3 and cfg.data.scale == [0.5, 1.5]
    assert isinstance(cfg.train.lr, float) and cfg.train.class_weights is None
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(RunConfig(), ["lr"])
    with pytest.raises(ConfigError, match="unknown config key `nope`"):
        apply_overrides(RunConfig(), ["nope=1"])


def test_int_is_accepted_for_float_fields() -> None:
    cfg = config_from_dict({"train": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_model_options() -> None:
    assert parse_options(["base_channels=32", "upsample=bilinear", "dropout=0.1"]) == {
        "base_channels": 32, "upsample": "bilinear", "dropout": 0.1}
    with pytest.raises(ConfigError, match="name=value"):
        parse_options(["base_channels"])


def test_missing_and_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_monitor_defaults_to_unset_and_round_trips(tmp_path: Path) -> None:
    """None means "the task's headline metric"; the trainer fills it in, the config never does."""
    assert RunConfig().train.monitor is None
    path = tmp_path / "c.yaml"
    path.write_text(RunConfig().to_yaml())
    assert load_config(path).train.monitor is None
    assert apply_overrides(RunConfig(), ["monitor=box_AP"]).train.monitor == "box_AP"


def test_sections_and_choices_come_from_the_dataclasses() -> None:
    from seglab.config import choices, section_of

    assert section_of("crop_size") == "data" and section_of("lr") == "train" and section_of("options") == "model"
    with pytest.raises(ConfigError, match="unknown config key `nope`"):
        section_of("nope")
    assert choices("train", "precision") == ("fp32", "bf16", "fp16") and choices("train", "lr") == ()
