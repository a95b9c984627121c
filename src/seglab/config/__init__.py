"""Run configuration: one dataclass per area, YAML in and out, CLI overrides, strict validation.

A YAML config has three sections whose keys are the CLI flag names with ``_`` for ``-``::

    data:  {root: data/shapes, crop_size: 96, workers: 2}
    model: {name: unet, options: {base_channels: 16}}
    train: {epochs: 20, lr: 0.003, schedule: cosine, precision: bf16}

Unknown keys and values of the wrong type or outside the allowed choices raise :class:`ConfigError`
naming the key and what is accepted, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seglab.config.values import check_rule, coerce_value, did_you_mean, validate
from seglab.errors import ConfigError

__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "RunConfig", "SECTIONS", "apply_overrides", "choices",
           "check_config", "coerce_value", "config_from_dict", "did_you_mean", "flag_updates", "key_of",
           "load_config", "parse_options", "section_of", "validate"]

Schedule = Literal["cosine", "poly", "step", "multistep", "plateau", "constant"]
Optimizer = Literal["sgd", "adam", "adamw"]
Precision = Literal["fp32", "bf16", "fp16"]
Sampler = Literal["random", "balanced"]
WeightMethod = Literal["inverse", "median"]


@dataclass
class DataConfig:
    """Where the data is and how it is read and augmented."""

    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    num_classes: int | None = None
    in_channels: int = 3
    ignore_index: int = 255
    allow_ignore_class: bool = False  # let ignore_index name a real class (its pixels then never train)
    resize: int | None = None  # long side in px every image is scaled to (aspect kept); None: native resolution
    crop_size: int = 256
    scale: list[float] = field(default_factory=lambda: [0.5, 2.0])
    hflip: float = 0.5
    rotate: float = 0.0
    vflip: float = 0.0  # data with no upright (microscopy, aerial): vertical flips are as valid as horizontal
    rot90: bool = False  # and quarter turns (square crops; semantic training)
    elastic: float = 0.0  # px std of a smooth random warp (3x3 control points; U-Net's ISBI augmentation: 10)
    color_jitter: float = 0.2
    mean: list[float] | None = None
    std: list[float] | None = None
    workers: int = 2
    sampler: Sampler = "random"
    repeats: int = 1  # each training image this many times per epoch: few images still make a real epoch
    max_pixels: int = 178_956_970
    tta: str | None = None  # what `evaluate`/`predict` average by default (the plan's advice), e.g. hflip,vflip


@dataclass
class ModelConfig:
    """Which registered model and its options (passed to ``build_model``)."""

    name: str | None = None  # None: chosen for the data and device when training starts (the run says which)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Optimization, precision, checkpointing and logging."""

    out: str = "runs/exp"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    optimizer: Optimizer = "adamw"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: Schedule = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    poly_power: float = 0.9
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])
    gamma: float = 0.1
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    loss: str = "ce"
    class_weights: list[float] | None = None
    weight_method: WeightMethod = "median"
    precision: Precision = "fp32"
    accum: int = 1
    clip_grad: float | None = None
    grad_checkpointing: bool = False
    ema: float = 0.0
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    seed: int = 0
    save_every: int = 0
    eval_every: int = 1
    monitor: str | None = None  # None: the task's headline metric (mean_iou; mask_AP for instance models)
    early_stop: int = 0
    skip_nonfinite: bool = False
    num_samples: int = 4
    tb: bool = False
    no_review: bool = False  # True: no review/ of best.pt at the end (written when val has <= 500 images)
    device: str = "auto"
    time: str | None = None  # a budget such as "15m": epochs are fitted to it (overrides epochs)
    resume: bool = False


@dataclass
class RunConfig:
    """Everything a training run needs; ``config.yaml`` in a run directory is this, complete."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-safe)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """YAML text that :func:`load_config` reads back to an equal config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def check_config(cfg: RunConfig) -> RunConfig:
    """Every value of ``cfg`` checked as if it had been read from YAML (for configs built in Python)."""
    for section, cls in SECTIONS.items():
        obj = getattr(cfg, section)
        for key, tp in typing.get_type_hints(cls).items():
            check_rule(f"{section}.{key}", coerce_value(f"{section}.{key}", getattr(obj, key), tp))
    return validate(cfg)


# Flag (and keyword) names that differ from their config key; every other name is its key in the one section
# that has it (`section_of`).
RENAMED = {"data": ("data", "root"), "model": ("model", "name"), "model_options": ("model", "options")}


def key_of(name: str) -> tuple[str, str]:
    """``(section, key)`` of a flag or keyword name: ``lr`` -> ``("train", "lr")``, ``data`` -> ``("data", "root")``."""
    return RENAMED.get(name) or (section_of(name), name)


def flag_updates(flags: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` for flags or keywords given by name (``{"lr": 0.1, "data": "d"}``)."""
    updates: dict[str, dict[str, Any]] = {}
    for name, value in flags.items():
        section, key = key_of(name)
        updates.setdefault(section, {})[key] = value
    return updates


def section_of(key: str) -> str:
    """The one section whose dataclass has a field ``key`` (``ConfigError`` when none or several do)."""
    owners = [s for s, c in SECTIONS.items() if key in typing.get_type_hints(c)]
    if len(owners) != 1:
        every = [k for c in SECTIONS.values() for k in typing.get_type_hints(c)]
        raise ConfigError(f"unknown config key `{key}`.{did_you_mean(key, every)} Use section.key, sections: "
                          f"{', '.join(SECTIONS)}.")
    return owners[0]

def choices(section: str, key: str) -> tuple[str, ...]:
    """The accepted values of a ``Literal`` field, e.g. ``choices("train", "precision")``; () for others."""
    tp = typing.get_type_hints(SECTIONS[section])[key]
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else ()

def _set(section_obj: Any, section: str, key: str, value: Any) -> None:
    hints = typing.get_type_hints(type(section_obj))
    if key not in hints:
        raise ConfigError(f"unknown config key `{section}.{key}`.{did_you_mean(key, hints)} Valid keys in "
                          f"`{section}`: {', '.join(hints)}.")
    value = coerce_value(f"{section}.{key}", value, hints[key])
    check_rule(f"{section}.{key}", value)
    setattr(section_obj, key, value)


def config_from_dict(d: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Build (or update ``base``) from a nested dict; unknown sections/keys raise ``ConfigError``."""
    cfg = base or RunConfig()
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping with sections {', '.join(SECTIONS)}; got {type(d).__name__}.")
    for section, values in d.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section `{section}`. Valid sections: {', '.join(SECTIONS)}.")
        if not isinstance(values, dict):
            raise ConfigError(f"config section `{section}` must be a mapping; got {values!r}.")
        for key, value in values.items():
            if not isinstance(key, str):
                raise ConfigError(f"config section `{section}` has a key {key!r} that is not a name.")
            _set(getattr(cfg, section), section, key, value)
    return validate(cfg)


def load_config(path: str | os.PathLike, base: RunConfig | None = None) -> RunConfig:
    """Read a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found.")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start}); save the config as UTF-8 YAML.") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e}).") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e}).") from e
    try:
        return config_from_dict(d, base)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars), e.g. ``train.lr=0.01``.

    A bare ``key=value`` is looked up in every section; it must name exactly one.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=0.01).")
        key, raw = item.split("=", 1)
        value = _yaml_value(item, raw) if raw.strip() else ""
        if "." in key:
            section, name = key.split(".", 1)
            if section not in SECTIONS:
                raise ConfigError(f"unknown config section `{section}` in {item!r}. Valid: {', '.join(SECTIONS)}.")
        else:
            section, name = section_of(key), key
        _set(getattr(cfg, section), section, name, value)
    return validate(cfg)


def _yaml_value(item: str, raw: str) -> Any:
    """A command-line value parsed as a YAML scalar or flow list (``0.1``, ``[1, 2]``, ``null``)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise ConfigError(f"{item!r}: cannot read the value {raw!r} ({problem}). Quote strings, close brackets: "
                          "e.g. train.milestones=[30,60].") from e


def parse_options(items: list[str]) -> dict[str, Any]:
    """Parse ``--model-opt base_channels=32`` style items into a dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"model option {item!r} must look like name=value (e.g. base_channels=32).")
        k, v = item.split("=", 1)
        out[k.strip()] = _yaml_value(item, v)
    return out
