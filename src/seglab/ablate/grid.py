"""The runs of an ablation: which config keys vary, over which values, for which seeds, and where each run lives.

``--vary model.options.skip=concat,add,none`` names a key (any config key, ``section.key``, or a model option
as ``model.options.NAME``) and its values; the first value is the reference the others are compared with.
``grid`` crosses every ``--vary``; ``list`` changes one key at a time from the reference (one-factor-at-a-time,
``1 + sum(n_i - 1)`` variants instead of ``prod(n_i)``).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seglab.config import RunConfig, config_from_dict
from seglab.errors import ConfigError

MODES = ("grid", "list")


@dataclass(frozen=True)
class Variation:
    """One ``--vary``: a dotted config key and its values (the first is the reference)."""

    key: str
    values: tuple[Any, ...]


def parse_vary(item: str) -> Variation:
    """``"train.loss=ce,dice,ce+dice"`` -> ``Variation("train.loss", ("ce", "dice", "ce+dice"))`` (YAML-typed)."""
    if "=" not in item:
        raise ConfigError(f"--vary {item!r} must look like section.key=a,b (e.g. train.loss=ce,dice).")
    key, raw = (part.strip() for part in item.split("=", 1))
    if key.count(".") < 1:
        raise ConfigError(f"--vary {item!r}: name the key with its section, e.g. train.lr or model.options.skip.")
    values = []
    for text in (v.strip() for v in raw.split(",")):
        try:
            values.append(yaml.safe_load(text) if text else text)
        except yaml.YAMLError as e:
            raise ConfigError(f"--vary {item!r}: cannot read the value {text!r}.") from e
    if len(values) < 2 or len(set(map(repr, values))) != len(values):
        raise ConfigError(f"--vary {item!r} needs at least two different values.")
    return Variation(key, tuple(values))


def assign(cfg: RunConfig, assignment: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with ``{dotted key: value}`` applied through the config checks."""
    updates: dict[str, dict[str, Any]] = {}
    options = dict(cfg.model.options)
    for key, value in assignment.items():
        section, _, name = key.partition(".")
        if section == "model" and name.startswith("options."):
            options[name.removeprefix("options.")] = value
        else:
            updates.setdefault(section, {})[name] = value
    if options != cfg.model.options:
        updates.setdefault("model", {})["options"] = options
    return config_from_dict(updates, copy.deepcopy(cfg))


def variants(variations: list[Variation], mode: str = "grid") -> list[dict[str, Any]]:
    """The assignments to run, the reference (every first value) first."""
    if mode not in MODES:
        raise ConfigError(f"ablation mode {mode!r} is not one of {', '.join(MODES)}.")
    if len({v.key for v in variations}) != len(variations):
        raise ConfigError("each --vary key may appear once.")
    reference = {v.key: v.values[0] for v in variations}
    if mode == "grid":
        return [dict(zip(reference, combo, strict=True)) for combo in
                itertools.product(*(v.values for v in variations))]
    return [reference] + [{**reference, v.key: value} for v in variations for value in v.values[1:]]


def variant_name(assignment: dict[str, Any]) -> str:
    """A folder name for a variant: ``skip=add,loss=dice`` (keys shortened to their last part)."""
    text = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in assignment.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def run_dir(out: Path, assignment: dict[str, Any], seed: int) -> Path:
    """Where the run of ``assignment`` with ``seed`` lives under the ablation folder."""
    return Path(out) / variant_name(assignment) / f"seed{seed}"
