"""Export entry points: ``export_model`` (any model) and ``export_checkpoint`` (a loaded checkpoint + metadata).

Class names, mean/std, the training input size and the model spec travel in the file (ONNX
``metadata_props``, a ``seglab.json`` extra file in TorchScript), so a deployment needs nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError, ModelError
from seglab.export.common import DOCS, FORMATS, HALF_TOLERANCE, TOLERANCE, ExportResult
from seglab.export.instance import export_instance
from seglab.export.semantic import export_semantic
from seglab.fileio import check_output_path, refuse_overwrite
from seglab.runtime.bundle import decode_metadata
from seglab.tasks import INSTANCE, KINDS, PANOPTIC, SEMANTIC


def export_model(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx", in_channels: int = 3,
                 metadata: dict[str, Any] | None = None, model_name: str | None = None,
                 task: str = "semantic", check: bool = False, tolerance: float | None = None,
                 check_images: list[torch.Tensor] | None = None, opset: int | None = None,
                 half: bool = False) -> ExportResult:
    """Export ``model`` to ``path`` (written atomically) and optionally check it against PyTorch.

    The written file is always run (onnxruntime / TorchScript) on two input shapes before it replaces
    ``path``, so a graph that only works at the example's size is never shipped. ``check`` returns
    the largest difference from PyTorch; above ``tolerance`` it raises. Instance models (``task="instance"``)
    take any image size (scaled outside the graph, :mod:`seglab.export.instance`), panoptic ones one fixed size;
    ``check_images`` gives their check real pictures to detect in.
    ``opset`` is the ONNX opset (default: the exporter's); ``half`` (ONNX, semantic models) stores float16
    weights behind the same float32 input and output and is always checked (``tolerance`` default 1e-2).

    Raises:
        ConfigError: unknown ``format``, an ``opset`` below 1, ``half`` with TorchScript.
        ModelError: the model cannot be exported (unsupported operators, TorchScript for instance models, an
            opset the exporter cannot write, a float16 graph onnxruntime cannot run or that differs beyond
            ``tolerance``); the message names the model and the reason.
        OutputError: ``path`` is a folder or cannot be written (checked before exporting).
    """
    _check_choices(format, opset, half)
    check_output_path(path)
    with _quiet_opset_converter():
        return _export(model, path, format, in_channels, metadata, model_name, task, check, tolerance, check_images,
                       opset, half)


@contextlib.contextmanager
def _quiet_opset_converter() -> Iterator[None]:
    """onnxscript logs a failed opset conversion with a traceback; seglab reports it cleanly (``check_opset``)."""
    logger = logging.getLogger("onnxscript.version_converter")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _export(model: nn.Module, path: str | os.PathLike, format: str, in_channels: int,
            metadata: dict[str, Any] | None, model_name: str | None, task: str, check: bool,
            tolerance: float | None, check_images: list[torch.Tensor] | None, opset: int | None,
            half: bool) -> ExportResult:
    name = model_name or type(model).__name__
    if task not in EXPORTERS:
        raise ModelError(f"model {name!r} is a {task} model; seglab exports semantic, instance and panoptic "
                         f"models. See {DOCS}.")
    return EXPORTERS[task](model, Path(path), format=format, in_channels=in_channels, metadata=metadata or {},
                           name=name, check=check, tolerance=tolerance, check_images=check_images, opset=opset,
                           half=half)


def _semantic(model: nn.Module, path: Path, *, check_images: Any, **kw: Any) -> ExportResult:
    return export_semantic(model, path, **kw)  # checked on a random input of in_channels


def _instance(model: nn.Module, path: Path, *, in_channels: int, **kw: Any) -> ExportResult:
    return export_instance(model, path, **kw)  # RGB in, detections out


def _panoptic(model: nn.Module, path: Path, *, in_channels: int, **kw: Any) -> ExportResult:
    from seglab.export.panoptic import export_panoptic

    return export_panoptic(model, path, **kw)


# How each task's models are exported (seglab/tasks.py names the kinds).
EXPORTERS: dict[str, Callable[..., ExportResult]] = {SEMANTIC.name: _semantic, INSTANCE.name: _instance,
                                                     PANOPTIC.name: _panoptic}


def _newest_opset() -> int | None:
    """The newest ONNX opset the installed onnx package defines (None without onnx: export refuses later)."""
    try:
        import onnx.defs
    except ImportError:
        return None
    return int(onnx.defs.onnx_opset_version())


def _check_choices(format: str, opset: int | None, half: bool) -> None:
    if format not in FORMATS:
        raise ConfigError(f"Expected --format to be one of {', '.join(FORMATS)}, but got {format!r}.")
    if opset is not None and format != "onnx":
        raise ConfigError(f"--opset applies to --format onnx, not {format}. Drop --opset.")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 1):
        raise ConfigError(f"Expected `opset` (--opset) to be a positive integer such as 18, but got {opset!r}.")
    newest = _newest_opset()
    if opset is not None and newest and opset > newest:
        raise ConfigError(f"--opset {opset}: the installed onnx knows opsets up to {newest}. Pass --opset {newest} "
                          "or lower (18 is torch's default), or leave it out.")
    if half and format != "onnx":
        raise ConfigError(f"--half applies to --format onnx, not {format}. Drop --half.")


def export_checkpoint(model: nn.Module, info: CheckpointInfo, out: str | os.PathLike | None = None, *,
                      format: str = "onnx", check: bool = False, tolerance: float | None = None,
                      check_images: list[str | os.PathLike] | None = None, opset: int | None = None,
                      half: bool = False) -> ExportResult:
    """Export a loaded checkpoint with its metadata: what ``seglab export`` does, in one call.

    ``out`` defaults to the checkpoint's path with ``.onnx`` / ``.torchscript.pt``. ``check_images`` (instance
    checkpoints) are image files the parity check runs on. ``tolerance`` defaults to 1e-3, or 1e-2 with
    ``half`` (float16 rounding); ``opset`` and ``half`` as in :func:`export_model`.

    Raises:
        ConfigError: ``check_images`` for a semantic checkpoint (its check uses random inputs of two shapes).
        OutputError: ``out`` would replace the checkpoint or a check image, or cannot be written.
    """
    if check_images and info.task == "semantic":
        raise ConfigError("--check-image: semantic exports are checked on random inputs of two shapes; the "
                          "option is for instance checkpoints. Drop it.")
    images = None
    if check_images:
        from seglab.data.io import read_image
        from seglab.inference.source import prepare_image

        images = [prepare_image(read_image(p, channels=3)) for p in check_images]
    src = Path(info.path)
    out = Path(out) if out is not None else src.with_suffix(".onnx" if format == "onnx" else ".torchscript.pt")
    refuse_overwrite([out], [*filter(None, [info.path]), *(check_images or [])])
    limit = tolerance if tolerance is not None else HALF_TOLERANCE if half else TOLERANCE
    from seglab.export.bundle import bundle_metadata

    metadata = {**checkpoint_metadata(info), **bundle_metadata(model, info)}
    return export_model(model, out, format=format, in_channels=info.in_channels, metadata=metadata,
                        model_name=info.model, task=info.task, check=check,
                        tolerance=limit if check or half else None, check_images=images, opset=opset, half=half)


def checkpoint_metadata(info: CheckpointInfo) -> dict[str, Any]:
    """The metadata a deployment needs, taken from a loaded checkpoint's ``info``."""
    from seglab import __version__

    return {
        "seglab.version": __version__,
        "seglab.model": info.model_spec,
        "seglab.classes": list(info.classes),
        "seglab.mean": list(info.mean or []),
        "seglab.std": list(info.std or []),
        "seglab.in_channels": info.in_channels,
        "seglab.ignore_index": info.ignore_index,
        "seglab.input_size": input_size(info),
        "seglab.input": "image (N, C, H, W) float32: pixels / 255, then (x - mean) / std",
        "seglab.output": "logits (N, K, H, W); softmax / argmax over dim 1",
        **({"seglab.task": info.task, "seglab.cat_ids": list(info.cat_ids)} if KINDS[info.task].detector else {}),
    }


def input_size(info: CheckpointInfo) -> list[int]:
    """The ``[height, width]`` the model was trained at: the run config's crop size, else the registry's."""
    config = info.config
    for section in (config.get("data") or {}, config.get("train") or {}, config):
        for key in ("crop_size", "input_size", "image_size", "size"):
            v = section.get(key) if isinstance(section, dict) else None
            if isinstance(v, int) and v > 0:
                return [v, v]
            if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) for i in v):
                return [int(v[0]), int(v[1])]
    from seglab.models.registry import get_entry

    try:
        size = get_entry(info.model).default_input
    except ModelError:
        size = 512
    return [size, size]


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The seglab metadata stored in an exported ``.onnx`` or TorchScript file (JSON values decoded)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        raw = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    else:
        files = {"seglab.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            torch.jit.load(str(path), _extra_files=files)
        raw = json.loads(files["seglab.json"] or "{}")
    return decode_metadata(raw)
