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
    tolerance: float | None = None  # the limit the check held the file to (None: not enforced)
    opset: int | None = None  # ONNX: the opset the file was written with
    half: bool = False  # float16 weights and arithmetic inside (float32 input and output)


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


# The names of an exported semantic graph's dynamic axes, on its input `image` and output `logits`.
AXES = {0: "batch", 2: "height", 3: "width"}
TOLERANCE = 1e-3  # --check's default: max |exported - PyTorch| over the logits
# --half's default: float16 keeps about 3 significant digits, so logits of size ~10 round by ~5e-3.
HALF_TOLERANCE = 1e-2


def opset_of(proto) -> int:
    """The default-domain opset an ONNX model was written with."""
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def check_opset(proto, opset: int | None, name: str) -> None:
    """Refuse a graph whose opset is not the one asked for (torch's exporters raise a low one silently)."""
    from seglab.errors import ModelError

    got = opset_of(proto)
    if opset is not None and got != opset:
        raise ModelError(f"--opset {opset}: torch's exporter wrote {name!r} with opset {got} instead; it cannot "
                         f"write opset {opset} for this model. Pass --opset {got} (or leave it out); see {DOCS}.")


def name_axes(value, axes: dict[int, str]) -> None:
    """Give a graph input or output's dynamic dims these names (``batch``, ``height``, ``width``).

    The exporter may declare an output dim as the formula it computed (``Min(height, 32*((height + ...)//32))``
    for a model that pads and crops back); the value equals the input's size, so the plain name is declared.
    """
    dims = value.type.tensor_type.shape.dim
    for i, label in axes.items():
        if i < len(dims) and not dims[i].dim_value:
            dims[i].dim_param = label
