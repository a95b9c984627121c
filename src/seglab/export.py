"""Ship a trained model: ONNX (dynamic batch/height/width) or TorchScript, with seglab metadata inside.

The exported graph takes a normalized ``image`` ``(N, C, H, W)`` float32 and returns ``logits``
``(N, K, H, W)``; softmax/argmax over dim 1 give probabilities and labels. Class names, mean/std,
the training input size and the model spec travel in the file (ONNX ``metadata_props``, a
``seglab.json`` extra file in TorchScript), so a deployment needs nothing else.
Instance models (Mask R-CNN) export to ONNX for one fixed-size image and return boxes, labels, scores
and masks. See docs/export.md for which models export.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from seglab.errors import ConfigError, ModelError
from seglab.fileio import atomic_path
from seglab.inference import model_output

FORMATS = ("onnx", "torchscript")
SAMPLE_SIZE = (64, 96)
# A second, deliberately odd shape (and batch 2): a graph that baked the sample's shape in fails here.
PROBE_SIZE = (2, 61, 83)
DOCS = "docs/export.md"
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


@dataclass
class ExportResult:
    """Where the file went and, when checked, the largest |exported - PyTorch| difference."""

    path: Path
    format: str
    max_abs_diff: float | None = None
    detections_compared: int | None = None  # instance models: detections the check compared


def export_model(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx", in_channels: int = 3,
                 metadata: dict[str, Any] | None = None, model_name: str | None = None,
                 task: str = "semantic", check: bool = False, tolerance: float | None = None,
                 check_images: list[torch.Tensor] | None = None) -> ExportResult:
    """Export ``model`` to ``path`` (written atomically) and optionally check it against PyTorch.

    The written file is always run (onnxruntime / TorchScript) on two input shapes before it replaces
    ``path``, so a graph that only works at the example's size is never shipped. ``check`` returns
    the largest difference from PyTorch; above ``tolerance`` it raises. Instance models (``task="instance"``)
    export for one fixed-size image; ``check_images`` gives their check real pictures to detect in.

    Raises:
        ConfigError: unknown ``format``.
        ModelError: the model cannot be exported (unsupported operators, TorchScript for instance models);
            the message names the model and the reason.
    """
    if format not in FORMATS:
        raise ConfigError(f"Expected --format to be one of {', '.join(FORMATS)}, but got {format!r}.")
    name = model_name or type(model).__name__
    if task == "instance":
        return _export_instance(model, Path(path), format=format, metadata=metadata or {}, name=name, check=check,
                                tolerance=tolerance, check_images=check_images)
    if task != "semantic":
        raise ModelError(f"model {name!r} is a {task} model; seglab exports semantic and instance models. "
                         f"See {DOCS}.")
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
        if check or _can_run(format):
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
    run = _onnx_runner(path) if format == "onnx" else _torchscript_runner(path)
    worst = 0.0
    model.eval()
    for x in inputs:
        with torch.no_grad():
            ref = model_output(model(x)).float()
        try:
            got = run(x)
        except Exception as e:  # onnxruntime raises its own types
            raise ModelError(f"{path}: the exported model fails on input {tuple(x.shape)} "
                             f"({type(e).__name__}: {_first_line(e)}). See {DOCS}.") from e
        if got.shape != ref.shape:
            raise ModelError(f"{path}: exported output {tuple(got.shape)} != PyTorch {tuple(ref.shape)} "
                             f"for input {tuple(x.shape)}. See {DOCS}.")
        worst = max(worst, float((got - ref).abs().max()))
    return worst


class InstanceExportWrapper(nn.Module):
    """One image in, the detector's four outputs out (ONNX graphs take tensors, not lists of dicts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(3, H, W)`` float in [0, 1] -> boxes (N, 4) XYXY, labels (N,), scores (N,), masks (N, 1, H, W)."""
        out = self.model([image])[0]
        return out["boxes"], out["labels"], out["scores"], out["masks"]


INSTANCE_OUTPUTS = ("boxes", "labels", "scores", "masks")


def _export_instance(model: nn.Module, path: Path, *, format: str, metadata: dict[str, Any], name: str,
                     check: bool, tolerance: float | None,
                     check_images: list[torch.Tensor] | None = None) -> ExportResult:
    """Mask R-CNN to ONNX for square inputs of the model's ``min_size`` (see docs/export.md).

    ``check_images`` (``(3, H, W)`` float [0, 1] tensors, resized to the export size) make the parity
    check meet real detections; a trained model usually finds nothing in the default noise images.

    Height and width are fixed because the model's internal resize did not export faithfully for every
    size (61x83 and 78x83 inputs were resized differently by onnxruntime, measured; docs/export.md). At
    the size the model resizes to, that resize is the identity and the graph matches PyTorch. Torch's
    dynamo exporter fails on Mask R-CNN's data-dependent shapes, so the TorchScript-based exporter is used,
    as torchvision tests it. The number of detections stays dynamic.
    """
    from seglab.inference import is_instance_model

    if not is_instance_model(model):
        raise ModelError(f"model {name!r} is not a detector, but the checkpoint says task 'instance'; the "
                         "checkpoint is inconsistent. Retrain, or export with task='semantic'.")
    if format != "onnx":
        raise ModelError(f"model {name!r}: instance models export to ONNX only (--format onnx). See {DOCS}.")
    try:
        import onnx
    except ImportError as e:
        raise ModelError("ONNX export needs the 'export' extra: pip install 'seglab[export]'.") from e
    # A square of this side passes the model's resize unchanged (scale = min(min_size, max_size) / side = 1).
    h = w = min(int(model.transform.min_size[-1]), int(model.transform.max_size))
    wrapper = InstanceExportWrapper(model).eval()
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in {**metadata, "seglab.input_size": [h, w]}.items()}
    meta["seglab.input"] = f"image (3, {h}, {w}) float32: RGB pixels / 255 (resize images to {h}x{w} first)"
    meta["seglab.output"] = ("boxes (N, 4) XYXY pixels, labels (N,) int64 class index (seglab.classes), "
                             "scores (N,), masks (N, 1, H, W) probabilities; one image per call")
    sample = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    dynamic = {k: {0: "detections"} for k in INSTANCE_OUTPUTS}
    with atomic_path(path) as tmp:
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings: the fixed-size check below covers them
                torch.onnx.export(wrapper, (sample,), str(tmp), dynamo=False, opset_version=17,
                                  input_names=["image"], output_names=list(INSTANCE_OUTPUTS),
                                  dynamic_axes=dynamic)
        except Exception as e:
            raise ModelError(f"model {name!r} cannot be exported to ONNX: {type(e).__name__}: "
                             f"{_first_line(e)}. See {DOCS}.") from e
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, meta)
        onnx.save(proto, str(tmp))
        diff, compared = None, None
        if check or _can_run("onnx"):  # always enforced: a fixed-size detector graph is easy to get subtly wrong
            diff, compared = check_instance_export(tmp, wrapper, (h, w), images=check_images)
            tolerance = 1e-3 if tolerance is None else tolerance
        if diff is not None and tolerance is not None and not diff <= tolerance:
            raise ModelError(f"{path}: exported {name!r} differs from PyTorch by up to {diff:.3g} (tolerance "
                             f"{tolerance:g}); the file was not written. See {DOCS} for known issues.")
    return ExportResult(path, format, diff if check else None, compared if check else None)


def check_instance_export(path: str | os.PathLike, wrapper: nn.Module, size: tuple[int, int],
                          images: list[torch.Tensor] | None = None) -> tuple[float, int]:
    """Max |onnxruntime - PyTorch| over scores, mask probabilities and box corners (pixels / 100).

    Runs ``images`` (resized to ``size``), else smooth noise and its mirror image; the detection counts
    must match. Returns ``(difference, detections compared)``: 0 compared means both found nothing, which
    says little (pass real ``images``).
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("--check needs onnxruntime: pip install 'seglab[export]'.") from e
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the graph's declared mask shape is (1, ...); N > 1 is right, not a warning
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if images:
        inputs = [F.interpolate(torch.as_tensor(im).float()[None, :3], size=size, mode="bilinear",
                                align_corners=False)[0].clamp(0, 1) for im in images]
    else:
        g = torch.Generator().manual_seed(1)
        x = F.interpolate(torch.rand(1, 3, size[0] // 8 + 1, size[1] // 8 + 1, generator=g), size=size,
                          mode="bilinear", align_corners=False)[0]
        inputs = [x, x.flip(-1)]
    worst, compared = 0.0, 0
    for image in inputs:
        with torch.no_grad():
            ref = wrapper(image)
        try:
            got = session.run(None, {"image": image.numpy()})
        except Exception as e:
            raise ModelError(f"{path}: the exported model fails on input {tuple(image.shape)} "
                             f"({type(e).__name__}: {_first_line(e)}). See {DOCS}.") from e
        if got[0].shape[0] != ref[0].shape[0]:
            raise ModelError(f"{path}: exported model finds {got[0].shape[0]} detections, PyTorch "
                             f"{ref[0].shape[0]}. See {DOCS}.")
        compared += int(ref[0].shape[0])
        cap = int(getattr(getattr(wrapper.model, "roi_heads", None), "detections_per_img", 0) or 0)
        worst = max(worst, _paired_difference([torch.from_numpy(a) for a in got], list(ref), cap))
    return worst, compared


def _paired_difference(got: list[torch.Tensor], ref: list[torch.Tensor], cap: int) -> float:
    """Largest difference between each PyTorch detection and its counterpart in the export.

    Detections are paired by label, then nearest score and box, not by position: detections with equal
    scores may come out in either order. When the list was cut at ``cap`` detections, those tied (within
    1e-4) with the last score may be different boxes on each side, so only their scores are compared.
    """
    boxes, labels, scores, masks = (t.double() for t in got)
    rboxes, rlabels, rscores, rmasks = (t.double() for t in ref)
    if not len(rscores):
        return 0.0
    tail = float(rscores.min()) + 1e-4 if len(rscores) >= cap > 0 else -1.0
    free = torch.ones(len(scores), dtype=torch.bool)
    worst = 0.0
    for i in range(len(rscores)):
        cost = (scores - rscores[i]).abs() + (boxes - rboxes[i]).abs().amax(1) / 100
        cost[(labels != rlabels[i]) | ~free] = float("inf")
        j = int(cost.argmin())
        if not torch.isfinite(cost[j]):
            return float("inf")
        d = max(float((scores[j] - rscores[i]).abs()), float((boxes[j] - rboxes[i]).abs().max()) / 100,
                float((masks[j] - rmasks[i]).abs().max()))
        if float(rscores[i]) <= tail and float((scores[j] - rscores[i]).abs()) < 1e-4:
            d = float((scores[j] - rscores[i]).abs())
        free[j] = False
        worst = max(worst, d)
    return worst


def checkpoint_metadata(info: dict[str, Any]) -> dict[str, Any]:
    """The metadata a deployment needs, taken from a loaded checkpoint's ``info``."""
    from seglab import __version__

    spec = info.get("model", {})
    return {
        "seglab.version": __version__,
        "seglab.model": spec,
        "seglab.classes": list(info.get("classes", [])),
        "seglab.mean": list(info.get("mean") or []),
        "seglab.std": list(info.get("std") or []),
        "seglab.in_channels": int(info.get("in_channels", 3)),
        "seglab.ignore_index": int(info.get("ignore_index", 255)),
        "seglab.input_size": input_size(info),
        "seglab.input": "image (N, C, H, W) float32: pixels / 255, then (x - mean) / std",
        "seglab.output": "logits (N, K, H, W); softmax / argmax over dim 1",
        **({"seglab.task": "instance", "seglab.cat_ids": [int(c) for c in info.get("cat_ids") or []]}
           if info.get("task") == "instance" else {}),
    }


def input_size(info: dict[str, Any]) -> list[int]:
    """The ``[height, width]`` the model was trained at: the run config's crop size, else the registry's."""
    config = info.get("config") or {}
    for section in (config.get("data") or {}, config.get("train") or {}, config):
        for key in ("crop_size", "input_size", "image_size", "size"):
            v = section.get(key) if isinstance(section, dict) else None
            if isinstance(v, int) and v > 0:
                return [v, v]
            if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) for i in v):
                return [int(v[0]), int(v[1])]
    from seglab.models.registry import get_entry

    try:
        size = get_entry(info.get("model", {}).get("name", "")).default_input
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
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            out[k] = v
    return out


def _export_onnx(wrapper: nn.Module, sample: torch.Tensor, tmp: Path, meta: dict[str, str], name: str) -> None:
    try:
        import onnx
    except ImportError as e:
        raise ModelError("ONNX export needs the 'export' extra: pip install 'seglab[export]'.") from e
    dyn = torch.export.Dim.DYNAMIC
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapper, (sample,), None, input_names=["image"],
                                        output_names=["logits"], dynamo=True,
                                        dynamic_shapes={"image": {0: dyn, 2: dyn, 3: dyn}})
    except Exception as e:  # the exporter raises many types; the user needs the model and the reason
        raise ModelError(f"model {name!r} cannot be exported to ONNX: {type(e).__name__}: {_first_line(e)}. "
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
            torch.jit.save(traced, str(tmp), _extra_files={"seglab.json": json.dumps(meta)})
    except Exception as e:
        raise ModelError(f"model {name!r} cannot be traced to TorchScript: {type(e).__name__}: "
                         f"{_first_line(e)}. Use --format onnx; see {DOCS}.") from e


def _can_run(format: str) -> bool:
    if format != "onnx":
        return True
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _onnx_runner(path: str | os.PathLike):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("--check needs onnxruntime: pip install 'seglab[export]'.") from e
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def _torchscript_runner(path: str | os.PathLike):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x).float()

    return run


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
