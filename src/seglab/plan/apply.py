"""How a plan meets a user's config: what the user wrote always wins, the plan fills the rest.

``seglab train``, ``seglab ablate`` and a run without ``--model`` all resolve a config here, so ``--print-config``
shows exactly what trains and an ablation never compares a config with itself (issue 29). The rules themselves
are in :mod:`seglab.plan.recipe`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from seglab.config import RunConfig, config_from_dict
from seglab.plan.recipe import Fingerprint, fingerprint, rules

# Rules that depend on the model the plan chooses (its width, its measured step, its learning rate) and on how
# an epoch is counted; a run that names its own model keeps its registry defaults for these. Every other rule
# (channels, normalization, augmentation for the data's kind, crop, loss, sampling) comes from the data alone.
MODEL_RULES = frozenset({"model.name", "model.options", "train.batch_size", "train.precision", "train.channels_last",
                         "train.optimizer", "train.lr", "train.warmup_epochs", "train.weight_decay", "data.repeats"})


def fingerprint_args(cfg: RunConfig) -> tuple[str, int, int | None, int]:
    """The arguments of :func:`fingerprint` a config fixes (one fingerprint serves every config that agrees)."""
    return cfg.data.root, cfg.data.ignore_index, cfg.data.num_classes, cfg.data.max_pixels


def apply_plan(cfg: RunConfig, device: str, given: Iterable[str] = (), fp: Fingerprint | None = None
               ) -> tuple[RunConfig, str | None]:
    """``cfg`` with the plan for its data applied, and a note that says what was applied and what was kept.

    What the user wrote always wins: keys in ``given`` (``section.key``: flags, ``--set``/``--vary`` items,
    keys of a ``--config``/``--plan`` file) and values that differ from the built-in defaults (configs built in
    Python) are kept. With ``model.name`` unset the whole plan applies (:data:`MODEL_RULES` included); with a
    model named, only the data's rules. ``--model-opt`` values apply on top of the planned options. ``cfg`` is
    not changed. ``device``: ``"cpu"`` or ``"cuda"`` (a ``torch.device.type``).
    """
    if not cfg.data.root:
        return cfg, None
    fp = fp or fingerprint(*fingerprint_args(cfg))
    chosen, given, default = cfg.model.name is None, set(given), RunConfig()
    if not chosen:
        from seglab.models.registry import get_entry

        kind = get_entry(cfg.model.name).task
        if kind != fp.task:  # e.g. a semantic model on panoptic data: the detector's data rules do not apply
            return cfg, (f"the plan is for {fp.task} data and your {cfg.model.name} is a {kind} model: none of the "
                         "plan's rules applied (`seglab plan DATA` shows them).")
    decisions = rules(fp, "cuda" if str(device).startswith("cuda") else "cpu")
    updates: dict[str, dict[str, Any]] = {}
    applied, kept = [], []
    for key, value, _ in decisions:
        section, name = key.split(".", 1)
        if key in MODEL_RULES and not chosen:
            continue
        if key == "model.options":
            value = {**value, **cfg.model.options}
        elif key != "model.name" and (key in given or getattr(getattr(cfg, section), name) != getattr(
                getattr(default, section), name)):
            kept.append(key)
            continue
        updates.setdefault(section, {})[name] = value
        applied.append((key, value))
    channels = updates.get("data", {}).get("in_channels", cfg.data.in_channels)
    if "mean" in updates.get("data", {}) and len(updates["data"]["mean"]) != channels:  # the user's own channels
        del updates["data"]["mean"], updates["data"]["std"]
        applied = [(k, v) for k, v in applied if k not in ("data.mean", "data.std")]
    planned = config_from_dict(updates, copy.deepcopy(cfg))
    return planned, plan_note(planned, device, applied, kept, chosen)


def plan_note(planned: RunConfig, device: str, applied: list[tuple[str, Any]], kept: list[str], chosen: bool) -> str:
    """The one line a run prints about its plan: what was applied, what of the user's was kept, where to look."""
    settings = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in applied if k.startswith(("data.", "train.")))
    yours = f"; your own {', '.join(sorted(kept))} kept" if kept else ""
    if chosen:
        options = ", ".join(f"{k}={v}" for k, v in planned.model.options.items())
        return (f"no --model given, so the plan for this data and {device}: {planned.model.name}"
                + (f" ({options})" if options else "") + (f", {settings}" if settings else "") + yours
                + ". `seglab plan DATA` gives each reason; pass --model to choose (`seglab models`).")
    return (f"the plan's rules for this data with your {planned.model.name}: {settings or 'nothing to change'}"
            + yours + "; the plan's model settings (" + ", ".join(sorted(k for k in MODEL_RULES if k not in (
                "model.name", "model.options"))) + ") are left to you. `seglab plan DATA` gives each reason.")


def given_keys(config: str | Path | None = None, updates: dict[str, dict[str, Any]] | None = None,
               sets: Iterable[str] = ()) -> set[str]:
    """``section.key`` of every value a user wrote: ``updates`` (flags), ``--set`` items, keys of a ``--config``,
    ``--plan`` or ``--base`` file. The plan leaves them alone, even where they equal the built-in defaults."""
    from seglab.config import section_of

    keys = {f"{s}.{k}" for s, kv in (updates or {}).items() for k in kv}
    for item in sets:
        key = item.split("=", 1)[0].strip()
        keys.add(key if "." in key else f"{section_of(key)}.{key}")
    if config is not None and Path(config).is_file():
        try:
            raw = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return keys  # load_config refuses the file with the reason; nothing was read from it
        keys |= {f"{s}.{k}" for s, kv in raw.items() if isinstance(kv, dict) for k in kv} if isinstance(raw, dict) \
            else set()
    return keys


def resolve_run(cfg: RunConfig, given: Iterable[str] = ()) -> tuple[RunConfig, str | None]:
    """The config a ``seglab train`` command trains, the plan applied for its device (``--print-config`` shows
    exactly this); a resumed run trains its own ``config.yaml`` unchanged."""
    if cfg.train.resume:
        return cfg, None
    from seglab.distributed import resolve_device

    return apply_plan(cfg, resolve_device(cfg.train.device).type, given)
