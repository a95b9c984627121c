"""A bundle: an exported ``.onnx`` file and the seglab metadata inside it, opened with onnxruntime.

The metadata is read from onnxruntime's own view of the file (``custom_metadata_map``), so neither torch
nor the ``onnx`` package is needed. Every value was written as JSON by ``seglab export``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seglab.errors import ModelError

DOCS = "docs/export.md"
# The keys prediction cannot do without; a file lacking one was not written by `seglab export RUN`.
REQUIRED = ("seglab.classes", "seglab.in_channels")


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ONNX file (the CLI sends those to this runtime, checkpoints to torch)."""
    return Path(path).suffix.lower() == ".onnx"


def _require_ort():
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("running a .onnx bundle needs onnxruntime: pip install 'seglab[runtime]'.") from e
    return ort


@dataclass
class Bundle:
    """An opened bundle: the onnxruntime session and what the metadata says about its input and output."""

    path: Path
    session: Any
    meta: dict[str, Any]
    task: str = "semantic"
    classes: list[str] = field(default_factory=list)
    in_channels: int = 3
    mean: list[float] | None = None
    std: list[float] | None = None
    ignore_index: int = 255
    palette: np.ndarray | None = None
    tile: dict[str, Any] = field(default_factory=dict)
    resize: int | None = None
    input_name: str = "image"

    @property
    def image_channels(self) -> int:
        """Channels to decode files with: 1 (gray) for 1-channel models, else 3 (RGB), as checkpoints do."""
        return 1 if self.in_channels == 1 else 3

    @property
    def model(self) -> str:
        """The model's registered name (``seglab.model``'s ``name``), or the file name."""
        spec = self.meta.get("seglab.model")
        return spec.get("name", self.path.stem) if isinstance(spec, dict) else str(spec or self.path.stem)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``(N, K, H, W)`` float32 of a normalized float32 batch ``(N, C, H, W)``."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def load_bundle(path: str | os.PathLike, *, threads: int | None = None) -> Bundle:
    """Open ``path`` with onnxruntime (CPU) and read its seglab metadata.

    ``threads`` sets onnxruntime's intra-op threads (default: onnxruntime's choice).

    Raises:
        ModelError: missing file, not an ONNX model onnxruntime can load, or a file without seglab's
            metadata (exported by another tool, or by ``export_model`` without a checkpoint).
    """
    ort = _require_ort()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such bundle. Export one with `seglab export RUN --format onnx --out {path}`.")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ModelError(f"{path}: onnxruntime cannot load this file ({type(e).__name__}: {first}); is it a "
                         f"complete .onnx written by `seglab export`? Re-export it; see {DOCS}.") from e
    meta = decode_metadata(session.get_modelmeta().custom_metadata_map)
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ModelError(f"{path}: the ONNX file has no seglab metadata ({', '.join(missing)} missing), so its "
                         f"input and classes are unknown. Export it with `seglab export RUN --format onnx`; see "
                         f"{DOCS}.")
    return _bundle(path, session, meta)


def decode_metadata(raw: dict[str, str]) -> dict[str, Any]:
    """Metadata strings with their JSON values decoded (plain strings stay strings)."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            out[k] = v
    return out


def _bundle(path: Path, session: Any, meta: dict[str, Any]) -> Bundle:
    palette = meta.get("seglab.palette256")
    resize = meta.get("seglab.resize")
    return Bundle(
        path=path, session=session, meta=meta, task=str(meta.get("seglab.task", "semantic")),
        classes=[str(c) for c in meta["seglab.classes"]], in_channels=int(meta["seglab.in_channels"]),
        mean=meta.get("seglab.mean") or None, std=meta.get("seglab.std") or None,
        ignore_index=int(meta.get("seglab.ignore_index", 255)),
        palette=None if palette is None else np.asarray(palette, dtype=np.uint8).reshape(-1, 3),
        tile=dict(meta.get("seglab.tiling") or {}), resize=int(resize) if resize else None,
        input_name=session.get_inputs()[0].name,
    )
