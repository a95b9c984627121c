"""Semantic models to ONNX (dynamic batch/height/width) or TorchScript, checked on two input shapes.

The exported graph takes a normalized ``image`` ``(N, C, H, W)`` float32 and returns ``logits``
``(N, K, H, W)``; softmax/argmax over dim 1 give probabilities and labels.
"""

from __future__ import annotations

import contextlib
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
from seglab.export.common import DOCS, ExportResult, can_run, first_line, require_onnx
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


def export_semantic(model: nn.Module, path: Path, *, format: str, in_channels: int, metadata: dict[str, Any],
                    name: str, check: bool, tolerance: float | None) -> ExportResult:
    """Semantic models: dynamic batch/height/width; the file is run on two shapes before it is kept."""
    if format == "onnx" and name in NO_ONNX:
        raise ModelError(f"model {name!r} cannot be exported to ONNX with dynamic height/width: "
                         f"{NO_ONNX[name]}. Try --format torchscript; see {DOCS}.")
    wrapper = ExportWrapper(model).eval()
    sample = torch.rand(1, in_channels, *SAMPLE_SIZE, generator=torch.Generator().manual_seed(0))
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    path = Path(path)
    export = _export_onnx if format == "onnx" else _export_torchscript
    with atomic_path(path) as tmp:
        export(wrapper, sample, tmp, meta, name)
        diff = None
        if check or can_run(format):
            diff = check_export(tmp, wrapper, format=format, in_channels=in_channels)
        diff = diff if check else None
        if diff is not None and tolerance is not None and not diff <= tolerance:
            raise ModelError(f"{path}: exported {name!r} differs from PyTorch by up to {diff:.3g} (tolerance "
                             f"{tolerance:g}); the file was not written. See {DOCS} for known issues.")
    return ExportResult(path, format, diff)


def check_export(path: str | os.PathLike, model: nn.Module, *, format: str = "onnx",
                 in_channels: int = 3) -> float:
    """Max |exported - PyTorch| over logits for a ``(1, C, 64, 96)`` sample and a ``(2, C, 61, 83)`` probe.

    Two shapes because a graph that froze the sample's shape would pass a one-shape check.
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
            raise ModelError(f"{path}: the exported model fails on input {tuple(x.shape)} "
                             f"({type(e).__name__}: {first_line(e)}). See {DOCS}.") from e
        if got.shape != ref.shape:
            raise ModelError(f"{path}: exported output {tuple(got.shape)} != PyTorch {tuple(ref.shape)} "
                             f"for input {tuple(x.shape)}. See {DOCS}.")
        worst = max(worst, float((got - ref).abs().max()))
    return worst


def _export_onnx(wrapper: nn.Module, sample: torch.Tensor, tmp: Path, meta: dict[str, str], name: str) -> None:
    onnx = require_onnx()
    dyn = torch.export.Dim.DYNAMIC
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapper, (sample,), None, input_names=["image"],
                                        output_names=["logits"], dynamo=True,
                                        dynamic_shapes={"image": {0: dyn, 2: dyn, 3: dyn}})
    except Exception as e:  # the exporter raises many types; the user needs the model and the reason
        raise ModelError(f"model {name!r} cannot be exported to ONNX: {type(e).__name__}: {first_line(e)}. "
                         f"See {DOCS} for the models that export.") from e
    proto = program.model_proto
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


def onnx_runner(path: str | os.PathLike):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("--check needs onnxruntime: pip install 'seglab[export]'.") from e
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def torchscript_runner(path: str | os.PathLike):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x).float()

    return run
