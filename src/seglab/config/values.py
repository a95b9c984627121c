"""Value checks of the run config: types from the dataclass annotations, ranges from :data:`RULES`.

Kept apart from the dataclasses (``seglab.config``) so each file stays small; ``seglab.config`` applies
these whenever a value is set, and :func:`validate` once a whole config is assembled.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import yaml

from seglab.errors import ConfigError


def _within(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False) -> tuple[Callable[[Any], bool], str]:
    """A range check and its wording, e.g. ``_within(0, 1, hi_open=True)`` -> ``in [0, 1)``."""
    def ok(v: Any) -> bool:
        return ((lo is None or (v > lo if lo_open else v >= lo))
                and (hi is None or (v < hi if hi_open else v <= hi)))
    if hi is None:
        return ok, f"{'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return ok, f"{'<' if hi_open else '<='} {hi:g}"
    return ok, f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")


def parse_duration(text: Any) -> float:
    """Seconds in a duration such as ``15m``, ``90s``, ``1.5h`` or ``900`` (seconds); ``nan`` if unreadable."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        return math.nan
    return float(m.group(1)) * {"h": 3600, "hr": 3600, "m": 60, "min": 60}.get(m.group(2) or "s", 1)


def _tta_words(spec: str) -> bool:
    """Every item of a TTA spec is a flip, ``none`` or a positive scale (the words ``parse_tta`` reads)."""
    items = [w.strip().lower() for w in spec.split(",")]
    scales = False
    for item in items:
        if item.startswith("scales="):
            scales, item = True, item[len("scales="):]
        if scales and item:
            try:
                if not (0 < float(item) < math.inf):
                    return False
            except ValueError:
                return False
        elif item not in ("", "none", "flip", "hflip", "vflip"):
            return False
    return True


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
POSITIVE, NON_NEGATIVE, FRACTION = _within(0, lo_open=True), _within(0), _within(0, 1)
# Value rules per key (types and choices come from the annotations). A list field's rule applies to each
# item. Checked whenever a value is set, so a bad value stops the run before anything is built.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data.num_classes": _within(1), "data.in_channels": (lambda v: v in (1, 3), "1 (gray) or 3 (RGB)"),
    "data.ignore_index": _within(0, 65535), "data.crop_size": _within(8), "data.scale": POSITIVE,
    "data.resize": _within(16),  # the long side in px; below 16 no network sees anything
    "data.hflip": FRACTION, "data.rotate": _within(0, 180), "data.vflip": FRACTION, "data.color_jitter": FRACTION,
    "data.repeats": _within(1), "data.elastic": _within(0, 100),
    "data.std": POSITIVE, "data.workers": NON_NEGATIVE, "data.max_pixels": _within(1),
    "data.tta": (lambda v: _tta_words(v), "flips and scales as --tta takes them, e.g. hflip, hflip,vflip or "
                 "hflip,scales=0.75,1,1.25"),
    "model.name": (bool, "a registered model name (see `seglab models`)"),
    "train.out": (bool, "a folder path"), "train.epochs": _within(1), "train.batch_size": _within(1),
    "train.lr": POSITIVE, "train.momentum": _within(0, 1, hi_open=True), "train.weight_decay": NON_NEGATIVE,
    "train.warmup_epochs": NON_NEGATIVE, "train.min_lr_ratio": FRACTION, "train.poly_power": POSITIVE,
    "train.milestones": _within(1), "train.gamma": _within(0, 1, lo_open=True),
    "train.plateau_patience": NON_NEGATIVE, "train.plateau_factor": _within(0, 1, lo_open=True, hi_open=True),
    "train.loss": (bool, "a loss spec such as ce, ce+dice, 0.5*ce+1.0*dice"),
    "train.class_weights": NON_NEGATIVE, "train.accum": _within(1), "train.clip_grad": POSITIVE,
    "train.ema": _within(0, 1, hi_open=True), "train.seed": _within(0, 2**63 - 1),
    "train.save_every": NON_NEGATIVE, "train.eval_every": _within(1), "train.monitor": (bool, "a metric name"),
    "train.early_stop": NON_NEGATIVE, "train.num_samples": NON_NEGATIVE,
    "train.device": (lambda v: bool(_DEVICE.match(v)), "auto, cpu, cuda, cuda:N or mps"),
    "train.time": (lambda v: parse_duration(v) > 0, "a duration such as 15m, 90s, 1.5h (or seconds)"),
}


def check_rule(key: str, value: Any) -> None:
    rule = RULES.get(key)
    if rule is None or value is None:
        return
    ok, wording = rule
    for i, v in enumerate(value) if isinstance(value, list) else [(None, value)]:
        if not ok(v):
            where = key if i is None else f"{key}[{i}]"
            raise ConfigError(f"config key `{where}` must be {wording}; got {v!r}.")


def validate(cfg: Any) -> Any:
    """Checks across keys (each key alone is checked when set); returns ``cfg``."""
    d, t = cfg.data, cfg.train
    if len(d.scale) != 2 or d.scale[0] > d.scale[1]:
        raise ConfigError(f"config key `data.scale` must be [min, max] with min <= max; got {d.scale}.")
    if (d.mean is None) != (d.std is None):
        raise ConfigError("config keys `data.mean` and `data.std` go together: give both (one value per "
                          "channel) or neither (ImageNet's for RGB, 0.5/0.25 for gray).")
    for key in ("mean", "std"):
        values = getattr(d, key)
        if values is not None and len(values) != d.in_channels:
            raise ConfigError(f"config key `data.{key}` has {len(values)} values but data.in_channels is "
                              f"{d.in_channels}; give one value per channel.")
    if t.warmup_epochs > t.epochs:
        raise ConfigError(f"config key `train.warmup_epochs` ({t.warmup_epochs:g}) is longer than the run "
                          f"(train.epochs = {t.epochs}); lower it or train longer.")
    return cfg

def did_you_mean(word: str, options: Any) -> str:
    """`` Did you mean `x`?`` for the closest of ``options``, or "" when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" Did you mean `{close[0]}`?" if close else ""

def coerce_value(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; convert harmless cases (int -> float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce_value(key, value, a)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key `{key}` got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config key `{key}` must be one of {', '.join(map(str, args))}; got {value!r}.")
        return value
    if origin is list:
        if isinstance(value, str):  # "0.5,2.0" from the command line
            value = [v for v in value.split(",") if v.strip()]
            value = [yaml.safe_load(v) for v in value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key `{key}` expects a list; got {value!r}.")
        return [coerce_value(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key `{key}` expects a mapping; got {value!r}.")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key `{key}` expects true or false; got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key `{key}` expects an integer; got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config key `{key}` expects a finite number; got {value!r}.")
            return float(value)
        raise ConfigError(f"config key `{key}` expects a number; got {value!r}.")
    if tp is str:
        if isinstance(value, (str, os.PathLike)):
            return str(value)
        raise ConfigError(f"config key `{key}` expects a string; got {value!r}.")
    return value
