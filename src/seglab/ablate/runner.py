"""Run an ablation: every variant x seed as its own training run, resumable, then one report.

A killed ablation continues where it stopped: a run with ``result.json`` is done and never redone; a run
with ``last.pt`` resumes exactly; a run killed before its first checkpoint starts again. ``ablation.yaml``
records what the folder holds, so a different ablation is never mixed into it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from seglab.ablate.grid import Variation, assign, run_dir, variant_name, variants
from seglab.config import RunConfig, check_config, load_config
from seglab.engine.rundir import RunLock
from seglab.errors import ConfigError, SeglabError
from seglab.fileio import atomic_write_text, check_output_path

SPEC_FILE, RESULT_FILE = "ablation.yaml", "result.json"
ALL_KEYS = frozenset(f"{s}.{k}" for s, values in RunConfig().to_dict().items() for k in values)


@dataclasses.dataclass
class RunResult:
    """One finished run: its variant, seed, folder and the numbers the report compares."""

    variant: str
    assignment: dict[str, Any]
    seed: int
    path: str
    metrics: dict[str, Any]
    minutes: float
    images_per_s: float
    epochs: int


def _spec(base: RunConfig, variations: list[Variation], seeds: list[int], mode: str) -> dict[str, Any]:
    return {"base": base.to_dict(), "vary": {v.key: list(v.values) for v in variations}, "seeds": seeds,
            "mode": mode}


def _check_spec(out: Path, spec: dict[str, Any]) -> None:
    path = out / SPEC_FILE
    if path.is_file():
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
        if saved != spec:
            raise ConfigError(f"{out} holds another ablation ({path} differs from this command's base config, "
                              "--vary, --seeds or mode). Use another --out, or the same settings to continue it.")
    else:
        atomic_write_text(path, yaml.safe_dump(spec, sort_keys=False))


def _images_per_s(run: Path) -> float:
    rows = list(csv.DictReader((run / "metrics.csv").open(encoding="utf-8")))
    values = [float(r["images_per_s"]) for r in rows if r.get("images_per_s")]
    return sum(values) / len(values) if values else float("nan")


def _evaluate(run: Path, split: str) -> dict[str, Any]:
    """Validation metrics of the run's best.pt, as ``seglab evaluate`` gives them (boundary IoU included)."""
    from seglab.checkpoint import load_checkpoint
    from seglab.inference.evaluation import evaluate_checkpoint

    model, info = load_checkpoint(run)
    metrics = evaluate_checkpoint(model, info, info.config["data"]["root"], split).metrics
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, list, dict)) and k != "confusion_matrix"}


def _one_run(cfg: RunConfig, assignment: dict[str, Any], seed: int, path: Path,
             log: Callable[[str], None]) -> RunResult:
    from seglab.engine.trainer import train

    result_file = path / RESULT_FILE
    if result_file.is_file():
        return RunResult(**json.loads(result_file.read_text(encoding="utf-8")))
    resume = (path / "last.pt").is_file()
    if path.exists() and not resume:
        shutil.rmtree(path)  # killed before its first checkpoint: nothing to keep
    log(f"{'resuming' if resume else 'training'} {variant_name(assignment)} seed {seed} -> {path}")
    # a resumed run keeps the epochs its --time plan chose (config.yaml), not the base config's
    epochs = load_config(path / "config.yaml").train.epochs if resume else cfg.train.epochs
    run_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed, out=str(path), epochs=epochs,
                                                                 resume=resume, num_samples=0))
    summary = train(run_cfg, given=ALL_KEYS)  # resolved already (resolve_variants): trained as it is
    result = RunResult(variant_name(assignment), assignment, seed, str(path),
                       _evaluate(path, run_cfg.data.val_split), float(summary["minutes"]), _images_per_s(path),
                       int(summary["epochs"]))
    atomic_write_text(result_file, json.dumps(dataclasses.asdict(result), indent=1) + "\n")
    return result


def run_ablation(base: RunConfig, variations: list[Variation], seeds: int, out: str | Path, mode: str = "grid",
                 time_per_run: str | None = None, log: Callable[[str], None] = print,
                 given: Iterable[str] = ()) -> list[RunResult]:
    """Train every variant with every seed under ``out`` (sequentially), skipping finished runs.

    Args:
        base: the reference config; each variant changes only its ``--vary`` keys.
        variations: the keys and values (first value = reference).
        seeds: runs per variant, with seeds ``base.train.seed + 0 .. seeds - 1`` (the same for every variant,
            so differences are paired by seed).
        time_per_run: a ``--time`` budget for every run (``3m``), else ``base.train.epochs``.
        given: ``section.key`` of the values the user wrote (``--set``, the base file); with the varied keys
            they always win over the plan.

    Returns:
        One :class:`RunResult` per run, reference variant first.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1; got {seeds}.")
    out = Path(out)
    check_output_path(out, directory=True)
    plan = variants(variations, mode)
    seed_list = [base.train.seed + k for k in range(seeds)]
    base = dataclasses.replace(base, train=dataclasses.replace(base.train, time=time_per_run or base.train.time))
    configs = resolve_variants(base, plan, given, log)  # every variant resolved and checked before any run
    with RunLock(out):
        _check_spec(out, _spec(base, variations, seed_list, mode))
        return [_one_run(cfg, a, seed, run_dir(out, a, seed), log)
                for a, cfg in zip(plan, configs, strict=True) for seed in seed_list]


def resolve_variants(base: RunConfig, plan: list[dict[str, Any]], given: Iterable[str] = (),
                     log: Callable[[str], None] = print) -> list[RunConfig]:
    """The config each variant trains: the plan applied as ``seglab train`` applies it (the varied keys, the
    ``--set`` items and the base file's keys always win), every one checked as training would check it, and
    refused when two variants would train the same config (the comparison would be a config with itself)."""
    from seglab.distributed import resolve_device
    from seglab.plan.apply import apply_plan, fingerprint_args
    from seglab.plan.recipe import fingerprint

    fingerprints: dict[tuple, Any] = {}  # the data is read once, not once per variant
    configs, notes = [], set()
    for a in plan:
        cfg = check_config(assign(base, a))
        key = fingerprint_args(cfg)
        if cfg.data.root and key not in fingerprints:
            fingerprints[key] = fingerprint(*key)
        mine = {*given, *(k if not k.startswith("model.options.") else "model.options" for k in a)}
        cfg, note = apply_plan(cfg, resolve_device(cfg.train.device).type, mine, fingerprints.get(key))
        try:
            check_trainable(cfg, fingerprints.get(key))
        except SeglabError as e:
            raise ConfigError(f"variant {variant_name(a)}: {e} Nothing was trained; fix the --vary value.") from e
        configs.append(cfg)
        if note and note not in notes:
            notes.add(note)
            log(note)
    seen: dict[str, str] = {}
    for a, cfg in zip(plan, configs, strict=True):
        text = cfg.to_yaml()
        if text in seen:
            raise ConfigError(f"variants {seen[text]} and {variant_name(a)} would train the same config (after "
                              "the config's checks, e.g. 1 and 1.0 are one number), so the ablation would compare "
                              "a config with itself. Vary a key that changes the run, or set the keys that make "
                              "them differ (`seglab train ... --print-config` shows a resolved config).")
        seen[text] = variant_name(a)
    return configs


def check_trainable(cfg: RunConfig, fp: Any = None) -> None:
    """What training checks before its first step, without the data loaders: the model and its options, the
    loss against the number of classes, the monitor against the task's metrics."""
    from seglab.losses import build_loss
    from seglab.models.registry import build_model, get_entry

    entry = get_entry(cfg.model.name)
    classes = cfg.data.num_classes or (len(fp.classes) if fp is not None and fp.classes else 2)
    build_model(cfg.model.name, classes, **{"in_channels": cfg.data.in_channels, **cfg.model.options})
    if entry.task == "semantic":
        build_loss(cfg.train.loss, classes, cfg.train.class_weights)
    monitors = _monitors(entry.task)
    if cfg.train.monitor is not None and monitors and cfg.train.monitor not in monitors:
        raise ConfigError(f"train.monitor {cfg.train.monitor!r} is not a metric of {entry.task} training; "
                          f"choose one of: {', '.join(monitors)}.")


def _monitors(kind: str) -> tuple[str, ...]:
    from seglab.engine.instance import InstanceTask
    from seglab.engine.panoptic import PanopticTask
    from seglab.engine.semantic import SemanticTask

    return {"semantic": SemanticTask, "instance": InstanceTask, "panoptic": PanopticTask}[kind].monitors
