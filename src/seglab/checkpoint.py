"""Checkpoints: plain dicts of tensors and Python values, written atomically, loaded weights-only.

Training writes them (``engine/``) and every use reads them (``inference/``, ``export/``, the CLI), so
they live at package level. What a checkpoint says about its model is read and validated once, into a
typed :class:`CheckpointInfo`; nothing else reads the raw dict or repeats its defaults.

Layout of a checkpoint file (every key always present unless noted)::

    seglab_version: str
    task: "semantic" | "instance" | "panoptic"  (older files: decided from the model's registry entry)
    model: {"name": str, "num_classes": int, "options": dict}
    model_state: state dict (EMA weights when EMA was on, raw weights under "raw_model_state")
    classes: list[str]             class names, index i = class i
    cat_ids: list[int]             instance checkpoints: COCO category id of each contiguous label
    in_channels: int
    mean, std: list[float]         input normalization (0-1 scaled pixels)
    ignore_index: int
    palette: list[[r, g, b]] | None
    config: dict                   the full run config (re-runnable)
    epoch, step: int
    metrics: dict[str, float]      last validation metrics (may be empty)
    optional: optimizer, scheduler, scaler, ema, rng, trainer ... (resume state); hooks: {name: state}
                                   (each training hook's own resume state, Hook.state_dict)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab import __version__
from seglab.errors import CheckpointError, ModelError
from seglab.fileio import atomic_path
from seglab.tasks import KINDS

REQUIRED_KEYS = ("model", "model_state", "classes")
TASKS = tuple(KINDS)  # seglab/tasks.py names every task kind


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its model: enough to rebuild it, feed it and name its outputs.

    Attributes:
        path: the file it was read from ("" for one built in memory).
        task: ``semantic`` or ``instance``, decided once here.
        model: registered model name; ``num_classes`` and ``options`` rebuild it with ``build_model``.
        classes: class names by contiguous index (instance: index 0 is the background).
        cat_ids: instance checkpoints: COCO category id of each contiguous index (else ``range(K)``).
        in_channels, mean, std: the input the model expects (pixels / 255, then ``(x - mean) / std``).
        ignore_index: the label value that meant "ignore" in training.
        palette: ``(r, g, b)`` per class, when the data had a palette.
        resize: the run's ``data.resize`` (long side in px the model saw; ``None``: native resolution, also
            for checkpoints older than the key): every use scales inputs to it and outputs back.
        config: the run's full config (a dict, re-runnable); epoch, step, metrics: where it was saved.
    """

    path: str
    task: str
    model: str
    num_classes: int
    options: dict[str, Any]
    classes: list[str]
    cat_ids: list[int]
    in_channels: int = 3
    mean: list[float] | None = None
    std: list[float] | None = None
    ignore_index: int = 255
    palette: list[list[int]] | None = None
    resize: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    @classmethod
    def from_dict(cls, ckpt: dict[str, Any], path: str | os.PathLike = "") -> CheckpointInfo:
        """Read and validate the metadata of a checkpoint dict (the file's own keys).

        Raises:
            CheckpointError: a key of the wrong type, an unknown task, or class names and category ids
                that disagree (the message names the file and the key).
        """
        where = str(path) or "checkpoint"
        spec = ckpt.get("model")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise CheckpointError(f"{where}: 'model' must be {{name, num_classes, options}}; got {spec!r}. "
                                  "The file is not a seglab checkpoint, or was edited by hand.")
        field_ = _Fields(ckpt, where)
        classes = [str(c) for c in field_.list("classes")]
        task = str(ckpt.get("task") or _registry_task(spec["name"]))
        if task not in TASKS:
            raise CheckpointError(f"{where}: unknown task {task!r} (expected one of {', '.join(TASKS)})."
                                  + version_note(str(ckpt.get("seglab_version", ""))))
        cat_ids = field_.ints("cat_ids", list(range(len(classes))))
        if len(cat_ids) != len(classes):
            raise CheckpointError(f"{where}: {len(classes)} class names but {len(cat_ids)} category ids; the "
                                  "checkpoint is inconsistent. Retrain or fix its 'cat_ids'.")
        options = spec.get("options") or {}
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise CheckpointError(f"{where}: 'model.options' must be a mapping of option names; got {options!r}.")
        palette = field_.optional_list("palette")
        if palette is not None and not all(isinstance(c, (list, tuple)) and len(c) == 3 for c in palette):
            raise CheckpointError(f"{where}: 'palette' must hold [r, g, b] triples; got {palette!r:.80}.")
        return cls(path=str(path), task=task, model=spec["name"],
                   num_classes=_Fields(spec, f"{where} (model)").int("num_classes", len(classes)),
                   options=dict(options), classes=classes, cat_ids=cat_ids, in_channels=field_.int("in_channels", 3),
                   mean=field_.floats("mean"), std=field_.floats("std"),
                   ignore_index=field_.int("ignore_index", 255),
                   palette=None if palette is None else [[_Fields.to_int(v, where, "palette") for v in c]
                                                         for c in palette],
                   config=field_.dict("config"), epoch=field_.int("epoch", 0), step=field_.int("step", 0),
                   metrics=field_.dict("metrics"), version=str(ckpt.get("seglab_version", "unknown")),
                   resize=_resize(field_.dict("config"), where))

    @property
    def model_spec(self) -> dict[str, Any]:
        """``{"name", "num_classes", "options"}``: the arguments of ``build_model``."""
        return {"name": self.model, "num_classes": self.num_classes, "options": dict(self.options)}

    @property
    def image_channels(self) -> int:
        """Channels to decode input files with: 1 (gray) for 1-channel models, else 3 (RGB)."""
        return 1 if self.in_channels == 1 else 3

    def build_model(self) -> nn.Module:
        """A fresh (untrained) model of the checkpoint's architecture."""
        from seglab.models.registry import build_model

        where = self.path or "checkpoint"
        try:
            return build_model(self.model, self.num_classes, **self.options)
        except ModelError as e:
            if is_newer_version(self.version):  # a model or option added after this release: name the versions
                raise CheckpointError(f"{where}: its model {self.model!r} cannot be rebuilt by this seglab."
                                      + version_note(self.version)) from e
            raise CheckpointError(f"{where}: its model cannot be rebuilt: {e}") from e


class _Fields:
    """Typed reads of a checkpoint's plain values: a wrong type is a CheckpointError naming file and key."""

    def __init__(self, d: dict[str, Any], where: str) -> None:
        self.d, self.where = d, where

    def _fail(self, key: str, expected: str) -> CheckpointError:
        v = self.d.get(key)
        return CheckpointError(f"{self.where}: '{key}' must be {expected}; got {type(v).__name__} ({v!r:.60}). The "
                               "file is not a seglab checkpoint, or was edited by hand.")

    @staticmethod
    def to_int(v: Any, where: str, key: str) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, torch.Tensor)) or (
                isinstance(v, torch.Tensor) and v.numel() != 1):
            raise CheckpointError(f"{where}: '{key}' must hold integers; got {v!r:.80}.")
        return int(v)

    def int(self, key: str, default: int) -> int:
        v = self.d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self._fail(key, "a non-negative integer")
        return v

    def list(self, key: str) -> list:
        v = self.d.get(key)
        if not isinstance(v, (list, tuple)):
            raise self._fail(key, "a list")
        return list(v)

    def optional_list(self, key: str) -> list | None:
        return None if self.d.get(key) is None else self.list(key)

    def ints(self, key: str, default: list[int]) -> list[int]:
        values = self.optional_list(key)
        return default if not values else [self.to_int(v, self.where, key) for v in values]

    def floats(self, key: str) -> list[float] | None:
        values = self.optional_list(key)
        if values is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise self._fail(key, "a list of numbers")
        return None if values is None else [float(v) for v in values]

    def dict(self, key: str) -> dict[str, Any]:
        v = self.d.get(key) or {}
        if not isinstance(v, dict):
            raise self._fail(key, "a mapping")
        return dict(v)


def _resize(config: dict[str, Any], where: str) -> int | None:
    """The run config's ``data.resize``: a positive int, or ``None`` (unset, or a checkpoint older than the key)."""
    data = config.get("data")
    value = data.get("resize") if isinstance(data, dict) else None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise CheckpointError(f"{where}: 'config.data.resize' must be a positive number of pixels or null; got "
                              f"{value!r:.40}. The file was edited by hand; fix the value or retrain.")
    return value


def _registry_task(name: str) -> str:
    """Checkpoints older than the 'task' key: the registry's word for the model, else semantic."""
    from seglab.models.registry import get_entry

    try:
        return get_entry(name).task
    except ModelError:
        return "semantic"


def nonfinite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in a state dict that hold NaN or Inf."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    state = {"seglab_version": __version__, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file ``path`` names: itself, or a run directory's ``best.pt`` (else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run directory has no best.pt or last.pt. Train first, "
                              "or pass the checkpoint file itself.")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found. Pass a .pt file written by `seglab train`.")
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; a run directory means its ``best.pt``.

    Raises:
        CheckpointError: missing, corrupt, or not a seglab checkpoint.
    """
    path = resolve_checkpoint_path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path}: cannot load checkpoint ({_load_failure(e)}). The file may be truncated, "
                              "not a checkpoint, or hold objects other than tensors and plain values (seglab "
                              "reads checkpoints with torch's safe loader only); use last.pt, retrain, or re-save "
                              "it as a plain dict with seglab.checkpoint.save_checkpoint (docs/training.md).") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a seglab checkpoint (missing {', '.join(missing)}). "
                              "Plain state dicts can be loaded with build_model(...).load_state_dict().")
    ckpt["path"] = str(path)
    return ckpt


def _load_failure(error: Exception) -> str:
    """What ``torch.load(weights_only=True)`` found wrong, without its advice to turn the safe loader off.

    torch's message suggests re-running with ``weights_only=False``, which runs any code the file holds; a
    seglab user must never be told to do that for a file that does not load.
    """
    text = str(error)
    if "Weights only load failed" not in text:
        return f"{type(error).__name__}: {text}"[:300]
    detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
    detail = detail.split("Please use", 1)[0].split("Check the documentation", 1)[0]
    detail = " ".join(detail.split()).rstrip(". ")
    return f"the safe loader refused it: {detail or 'unsupported content'}"[:300]


def is_newer_version(version: str) -> bool:
    """Whether ``version`` (a checkpoint's ``seglab_version``) is later than this seglab's (release numbers)."""
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(re.match(r"\d*", p).group() or 0) for p in v.split("+")[0].split(".")[:3])

    mine, theirs = parts(__version__), parts(version)
    return version[:1].isdigit() and theirs > mine


def version_note(info_version: str) -> str:
    """A sentence for errors about a checkpoint written by a later seglab (empty otherwise)."""
    if not is_newer_version(info_version):
        return ""
    return (f" The checkpoint was written by seglab {info_version}, newer than this seglab {__version__}: "
            "upgrade seglab (pip install -U seglab) to read it.")


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """The validated metadata of the checkpoint at ``path`` (the weights are read too, then dropped)."""
    ckpt = read_checkpoint(path)
    return CheckpointInfo.from_dict(ckpt, ckpt["path"])


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model a checkpoint describes and load its weights.

    Returns:
        ``(model, info)``: the model in eval mode on ``device`` and its :class:`CheckpointInfo`.

    Raises:
        CheckpointError: unreadable file, bad metadata, or weights that do not fit the model.
        ModelError: a checkpoint whose task disagrees with the model it holds.
    """
    ckpt = read_checkpoint(path)
    info = CheckpointInfo.from_dict(ckpt, ckpt["path"])
    state = ckpt["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{info.path}: 'model_state' must be a state dict of tensors; the file is not a "
                              "seglab checkpoint, or was edited by hand.")
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"{info.path}: {len(bad)} weight tensor(s) hold NaN/Inf (e.g. {', '.join(bad[:3])}): "
                              "the run that wrote it diverged. Use an earlier checkpoint or retrain with a lower "
                              "--lr / --clip-grad.")
    model = info.build_model()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{info.path}: weights do not fit model {info.model!r}: {e}"
                              + version_note(info.version)) from e
    _check_task(model, info)
    model.to(device).eval()
    return model, info


def _check_task(model: nn.Module, info: CheckpointInfo) -> None:
    from seglab.models.registry import is_instance_model, is_panoptic_model

    if info.task == "instance" and not is_instance_model(model):
        raise ModelError(f"{info.path}: says task 'instance' but holds {info.model!r}, not a detector; the "
                         "checkpoint is inconsistent. Retrain or fix its 'task'.")
    if info.task == "panoptic" and not is_panoptic_model(model):
        raise ModelError(f"{info.path}: says task 'panoptic' but holds {info.model!r}, not a panoptic model; the "
                         "checkpoint is inconsistent. Retrain or fix its 'task'.")
