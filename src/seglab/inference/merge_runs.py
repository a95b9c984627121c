"""``seglab merge``: a semantic and an instance checkpoint, trained separately, as one panoptic checkpoint.

The result holds both weight sets (under ``semantic.`` and ``instance.``) and the ``panoptic_merge`` model
(:class:`seglab.models.panoptic.MergedPanoptic`), so ``load_checkpoint`` rebuilds it like any other model and
every panoptic use (evaluate, predict) takes it. The two models must agree on the classes: the instance
model's classes are found among the semantic model's by name; those are the things, the rest are stuff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seglab.checkpoint import CheckpointInfo, load_checkpoint, resolve_checkpoint_path, save_checkpoint
from seglab.errors import ConfigError, ModelError
from seglab.fileio import check_output_path, refuse_overwrite
from seglab.models.panoptic import check_merge_options
from seglab.models.registry import build_model


def instance_class_map(semantic: CheckpointInfo, instance: CheckpointInfo) -> list[int]:
    """The semantic class index of each instance label 1..N-1 (label 0 is the detector's background), by name.

    Raises:
        ConfigError: an instance class missing from the semantic classes (or named twice there), listing both.
    """
    names = semantic.classes
    mapping, missing = [], []
    for name in instance.classes[1:]:
        hits = [i for i, n in enumerate(names) if n == name]
        if len(hits) != 1:
            missing.append(name if not hits else f"{name} (twice)")
        mapping.append(hits[0] if hits else -1)
    if missing:
        raise ConfigError(f"{instance.path}: instance classes {missing} are not classes of the semantic model "
                          f"{semantic.path} (or name more than one). Semantic classes: {names}; instance classes: "
                          f"{instance.classes[1:]}. Every instance class must be one of the semantic classes, with "
                          "the same name: train both models on the same panoptic folder.")
    return mapping


def _check(info: CheckpointInfo, task: str, flag: str) -> None:
    if info.task != task:
        raise ConfigError(f"{info.path}: holds a model of task {info.task!r} ({info.model}) but is given as the "
                          f"{flag}; pass a {task} checkpoint there.")
    if info.in_channels != 3:
        raise ConfigError(f"{info.path}: the model reads {info.in_channels}-channel images; panoptic models read RGB. "
                          "Retrain it with --in-channels 3.")


def merge_checkpoints(semantic: str | os.PathLike, instance: str | os.PathLike, out: str | os.PathLike, *,
                      score_threshold: float = 0.5, overlap_threshold: float = 0.5, stuff_area: int = 128) -> Path:
    """Write the panoptic checkpoint ``out`` merging a semantic and an instance checkpoint (file or run folder).

    The panoptic classes are the semantic ones (cat_ids = class index + 1, its palette); the instance classes,
    matched by name, are the things. The thresholds become the model's options (see
    :func:`seglab.models.panoptic.combine`). Written atomically; never over either input.

    Returns:
        The path written.

    Raises:
        ConfigError: wrong tasks, classes that do not match, bad thresholds.
        OutputError: ``out`` would replace an input or cannot be written.
    """
    try:
        check_merge_options(score_threshold, overlap_threshold, stuff_area)
    except ModelError as e:
        raise ConfigError(f"seglab merge: {e}") from e
    sem_path, inst_path, out = resolve_checkpoint_path(semantic), resolve_checkpoint_path(instance), Path(out)
    refuse_overwrite([out], [sem_path, inst_path])
    check_output_path(out)
    sem_model, sem = load_checkpoint(sem_path)
    inst_model, inst = load_checkpoint(inst_path)
    _check(sem, "semantic", "semantic model (first argument)")
    _check(inst, "instance", "instance model (second argument)")
    mapping = instance_class_map(sem, inst)
    options: dict[str, Any] = {
        "semantic": sem.model_spec, "instance": inst.model_spec, "semantic_mean": sem.mean or [0.0] * 3,
        "semantic_std": sem.std or [1.0] * 3, "instance_to_class": mapping, "thing_classes": sorted(set(mapping)),
        "score_threshold": float(score_threshold), "overlap_threshold": float(overlap_threshold),
        "stuff_area": int(stuff_area)}
    state = {**{f"semantic.{k}": v for k, v in sem_model.state_dict().items()},
             **{f"instance.{k}": v for k, v in inst_model.state_dict().items()}}
    build_model("panoptic_merge", len(sem.classes), **options).load_state_dict(state)  # it must load back
    save_checkpoint(out, {
        "task": "panoptic", "model": {"name": "panoptic_merge", "num_classes": len(sem.classes), "options": options},
        "model_state": state, "classes": list(sem.classes), "cat_ids": [i + 1 for i in range(len(sem.classes))],
        "in_channels": 3, "mean": [0.0] * 3, "std": [1.0] * 3, "ignore_index": sem.ignore_index,
        "palette": sem.palette, "config": {}, "epoch": 0, "step": 0, "metrics": {},
        "merged_from": {"semantic": str(sem_path), "instance": str(inst_path)}})
    return out
