"""What every export shares: the result record, the formats, and small helpers for errors and runtimes."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("onnx", "torchscript")
DOCS = "docs/export.md"


@dataclass
class ExportResult:
    """Where the file went and, when checked, the largest |exported - PyTorch| difference."""

    path: Path
    format: str
    max_abs_diff: float | None = None
    detections_compared: int | None = None  # instance models: detections the check compared


def can_run(format: str) -> bool:
    if format != "onnx":
        return True
    return importlib.util.find_spec("onnxruntime") is not None


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def require_onnx():
    """The ``onnx`` module, or a clear error naming the extra that installs it."""
    try:
        import onnx
    except ImportError as e:
        from seglab.errors import ModelError

        raise ModelError("ONNX export needs the 'export' extra: pip install 'seglab[export]'.") from e
    return onnx
