"""Semantic models to ONNX (dynamic batch/height/width) or TorchScript, checked on two input shapes.

The exported graph takes a normalized ``image`` ``(N, C, H, W)`` float32 and returns ``logits``
``(N, K, H, W)``; softmax/argmax over dim 1 give probabilities and labels. ONNX axes are named ``batch``,
``height`` and ``width``; ``opset`` picks the ONNX opset; ``half`` stores float16 weights and computes in
float16 inside the same float32 interface, kept only where onnxruntime runs it within the tolerance.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from seglab.errors import ModelError
from seglab.export.common import (
    AXES,
    DOCS,
    HALF_TOLERANCE,
    ExportResult,
    can_run,
    check_opset,
    first_line,
    name_axes,
    require_onnx,
)
from seglab.fileio import atomic_path
from seglab.inference.tta import model_output

SAMPLE_SIZE = (64, 96)
# A second, deliberately odd shape (and batch 2): a graph that baked the sample's shape in fails here.
PROBE_SIZE = (2, 61, 83)
# Models whose ONNX graph is not shape-general (the exporter bakes the example's feature-map size into
# index/reshape constants); an export would fail on other input sizes, so it is refused up front.
NO_ONNX = {
    "pspnet": "its pyramid pooling (AdaptiveAvgPool2d with bins 1, 2, 3, 6) is lowered to index ops fixed "
              "to the example's feature-map size",
    "swin_unet": "Swin window partition/merge reshapes are exported with the example's window grid as "
                 "constants",
}


class ExportWrapper(nn.Module):
    """Logits only, with the input padded to the model's stride *inside the graph*.

    The models pad to their stride with a Python ``if`` on the shape; tracing/exporting freezes that
    branch for the sample's size. Padding here, unconditionally and symbolically, means every input
    reaches the model at a multiple of its stride, so the frozen branch is right for all sizes.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.stride = int(getattr(model, "stride", 1) or 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` normalized image -> ``(N, K, H, W)`` logits."""
        h, w = image.shape[-2], image.shape[-1]
        s = self.stride
        x = F.pad(image, (0, (s - w % s) % s, 0, (s - h % s) % s))
        return model_output(self.model(x))[..., :h, :w]


class HalfPrecision(nn.Module):
    """float16 weights and arithmetic inside, float32 in and out: a half-size file with the same interface."""

    def __init__(self, wrapper: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(wrapper).half()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` float32 -> ``(N, K, H, W)`` float32 logits, computed in float16."""
        return self.inner(image.half()).float()


def export_semantic(model: nn.Module, path: Path, *, format: str, in_channels: int, metadata: dict[str, Any],
                    name: str, check: bool, tolerance: float | None, opset: int | None = None,
                    half: bool = False) -> ExportResult:
    """Semantic models: dynamic batch/height/width; the file is run on two shapes before it is kept.

    With ``half`` the file is always checked against the float32 model and refused above ``tolerance``
    (default ``HALF_TOLERANCE``), so a float16 graph that onnxruntime cannot run or that drifts is never kept.
    """
    if format == "onnx" and name in NO_ONNX:
        raise ModelError(f"model {name!r} cannot be exported to ONNX with dynamic height/width: "
                         f"{NO_ONNX[name]}. Try --format torchscript; see {DOCS}.")
    if half and not can_run("onnx"):
        raise ModelError("--half needs onnxruntime to check the float16 file before it is kept: "
                         "pip install 'seglab[export]'.")
    wrapper = ExportWrapper(model).eval()
    graph = HalfPrecision(wrapper).eval() if half else wrapper
    sample = torch.rand(1, in_channels, *SAMPLE_SIZE, generator=torch.Generator().manual_seed(0))
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    if half:
        meta["seglab.precision"] = "float16 weights and arithmetic; float32 input and output"
    path = Path(path)
    limit = (HALF_TOLERANCE if tolerance is None else tolerance) if half else tolerance
    with atomic_path(path) as tmp:
        if format == "onnx":
            _export_onnx(graph, sample, tmp, meta, name, opset)
        else:
            _export_torchscript(graph, sample, tmp, meta, name)
        diff = None
        if check or half or can_run(format):
            diff = check_export(tmp, wrapper, format=format, in_channels=in_channels, half=half)
        if diff is not None and limit is not None and (check or half) and not diff <= limit:
            hint = (f" float16 rounding grows with the logits' size: accept it with --tolerance {2 * diff:.2g}, or "
                    "export without --half.") if half else ""
            raise ModelError(f"{path}: exported {name!r} differs from PyTorch by up to {diff:.3g} (tolerance "
                             f"{limit:g}); the file was not written.{hint} See {DOCS} for known issues.")
    opset_written = _opset_in(path) if format == "onnx" else None
    return ExportResult(path, format, diff if check or half else None, tolerance=limit if check or half else None,
                        opset=opset_written, half=half)


def check_export(path: str | os.PathLike, model: nn.Module, *, format: str = "onnx",
                 in_channels: int = 3, half: bool = False) -> float:
    """Max |exported - PyTorch| over logits for a ``(1, C, 64, 96)`` sample and a ``(2, C, 61, 83)`` probe.

    Two shapes because a graph that froze the sample's shape would pass a one-shape check. ``model`` is
    the float32 reference; ``half`` says the file computes in float16 (named in a failure).
    """
    g = torch.Generator().manual_seed(1)
    inputs = [torch.rand(1, in_channels, *SAMPLE_SIZE, generator=g),
              torch.rand(PROBE_SIZE[0], in_channels, *PROBE_SIZE[1:], generator=g)]
    run = onnx_runner(path) if format == "onnx" else torchscript_runner(path)
    worst = 0.0
    model.eval()
    for x in inputs:
        with torch.no_grad():
            ref = model_output(model(x)).float()
        try:
            got = run(x)
        except Exception as e:  # onnxruntime raises its own types
            what = "the float16 (--half) model" if half else "the exported model"
            raise ModelError(f"{path}: {what} fails on input {tuple(x.shape)} in onnxruntime "
                             f"({type(e).__name__}: {first_line(e)}); the file was not written. See {DOCS}.") from e
        if got.shape != ref.shape:
            raise ModelError(f"{path}: exported output {tuple(got.shape)} != PyTorch {tuple(ref.shape)} "
                             f"for input {tuple(x.shape)}. See {DOCS}.")
        worst = max(worst, float((got - ref).abs().max()))
    return worst


def _export_onnx(wrapper: nn.Module, sample: torch.Tensor, tmp: Path, meta: dict[str, str], name: str,
                 opset: int | None) -> None:
    onnx = require_onnx()
    log = io.StringIO()
    version = {} if opset is None else {"opset_version": opset}
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # named axes: each becomes Dim.DYNAMIC (no constraint guessed from the sample) under that name
            program = torch.onnx.export(wrapper, (sample,), None, input_names=["image"],
                                        output_names=["logits"], dynamo=True,
                                        dynamic_shapes={"image": dict(AXES)}, **version)
    except Exception as e:  # the exporter raises many types; the user needs the model and the reason
        raise ModelError(f"model {name!r} cannot be exported to ONNX: {type(e).__name__}: {first_line(e)}. "
                         f"See {DOCS} for the models that export.") from e
    proto = program.model_proto
    check_opset(proto, opset, name)
    name_axes(proto.graph.input[0], AXES)
    name_axes(proto.graph.output[0], AXES)
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(tmp))


def _export_torchscript(wrapper: nn.Module, sample: torch.Tensor, tmp: Path, meta: dict[str, str],
                        name: str) -> None:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about frozen branches: checked by shape probes
            traced = torch.jit.trace(wrapper, sample, check_trace=False)
    except Exception as e:
        raise ModelError(f"model {name!r} cannot be traced to TorchScript: {type(e).__name__}: "
                         f"{first_line(e)}. Use --format onnx; see {DOCS}.") from e
    # Serialized in memory, written by Python: torch.jit.save to a full disk aborts the whole process
    # (std::terminate, measured with torch 2.14), a Python write raises OSError -> atomic_path's OutputError.
    data = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.save(traced, data, _extra_files={"seglab.json": json.dumps(meta)})
    tmp.write_bytes(data.getvalue())


def _opset_in(path: Path) -> int:
    from seglab.export.common import opset_of

    return opset_of(require_onnx().load(str(path), load_external_data=False))


def onnx_runner(path: str | os.PathLike):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("--check needs onnxruntime: pip install 'seglab[export]'.") from e
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types (an opset it does not know, a missing kernel)
        raise ModelError(f"{path}: onnxruntime {ort.__version__} cannot load the exported model "
                         f"({type(e).__name__}: {first_line(e)}); the file was not written. See {DOCS}.") from e
    return lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def torchscript_runner(path: str | os.PathLike):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x).float()

    return run
