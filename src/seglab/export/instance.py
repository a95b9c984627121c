"""Instance models (Mask R-CNN) to ONNX for one fixed-size image: boxes, labels, scores and masks out."""

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
from seglab.export.common import DOCS, ExportResult, can_run, check_opset, first_line, opset_of, require_onnx
from seglab.fileio import atomic_path

INSTANCE_OUTPUTS = ("boxes", "labels", "scores", "masks")
INSTANCE_OPSET = 17  # the TorchScript-based exporter's opset unless --opset says otherwise


class InstanceExportWrapper(nn.Module):
    """One image in, the detector's four outputs out (ONNX graphs take tensors, not lists of dicts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(3, H, W)`` float in [0, 1] -> boxes (N, 4) XYXY, labels (N,), scores (N,), masks (N, 1, H, W)."""
        out = self.model([image])[0]
        return out["boxes"], out["labels"], out["scores"], out["masks"]

    @property
    def transform(self) -> nn.Module:
        """The detector's resize + normalize step (its sizes fix the export's input size)."""
        return self.model.transform

    output_note = ("boxes (N, 4) XYXY pixels, labels (N,) int64 class index (seglab.classes), scores (N,), masks "
                   "(N, 1, H, W) probabilities; one image per call")


def export_instance(model: nn.Module, path: Path, *, format: str, metadata: dict[str, Any], name: str,
                     check: bool, tolerance: float | None, check_images: list[torch.Tensor] | None = None,
                     opset: int | None = None, half: bool = False, wrapper: nn.Module | None = None,
                     outputs: tuple[str, ...] = INSTANCE_OUTPUTS) -> ExportResult:
    """Mask R-CNN to ONNX for square inputs of the model's ``min_size`` (see docs/export.md).

    ``check_images`` (``(3, H, W)`` float [0, 1] tensors, resized to the export size) make the parity
    check meet real detections; a trained model usually finds nothing in the default noise images.

    Height and width are fixed because the model's internal resize did not export faithfully for every
    size (61x83 and 78x83 inputs were resized differently by onnxruntime, measured; docs/export.md). At
    the size the model resizes to, that resize is the identity and the graph matches PyTorch. Torch's
    dynamo exporter fails on Mask R-CNN's data-dependent shapes, so the TorchScript-based exporter is used,
    as torchvision tests it. The number of detections stays dynamic.
    """
    if wrapper is None:  # a panoptic model brings its own wrapper (its outputs + the semantic map)
        _refuse(model, format, name, half)
        wrapper = InstanceExportWrapper(model)
    wrapper.eval()
    onnx = require_onnx()
    # A square of this side passes the model's resize unchanged (scale = min(min_size, max_size) / side = 1).
    h = w = min(int(wrapper.transform.min_size[-1]), int(wrapper.transform.max_size))
    sample = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    with atomic_path(path) as tmp:
        proto = detector_to_onnx(wrapper, sample, name, opset, outputs)
        onnx.helper.set_model_props(proto, _metadata(metadata, h, w, wrapper.output_note))
        onnx.save(proto, str(tmp))
        diff, compared = None, None
        if check or can_run("onnx"):  # always enforced: a fixed-size detector graph is easy to get subtly wrong
            diff, compared = check_instance_export(tmp, wrapper, (h, w), images=check_images)
            tolerance = 1e-3 if tolerance is None else tolerance
        if diff is not None and tolerance is not None and not diff <= tolerance:
            raise ModelError(f"{path}: exported {name!r} differs from PyTorch by up to {diff:.3g} (tolerance "
                             f"{tolerance:g}); the file was not written. See {DOCS} for known issues.")
    return ExportResult(path, format, diff if check else None, compared if check else None,
                        tolerance=tolerance if check else None, opset=opset_of(proto))


def _refuse(model: nn.Module, format: str, name: str, half: bool) -> None:
    from seglab.models.registry import is_instance_model

    if not is_instance_model(model):
        raise ModelError(f"model {name!r} is not a detector, but the checkpoint says task 'instance'; the "
                         "checkpoint is inconsistent. Retrain, or export with task='semantic'.")
    if format != "onnx":
        raise ModelError(f"model {name!r}: instance models export to ONNX only (--format onnx). See {DOCS}.")
    if half:
        raise ModelError(f"--half: model {name!r} is an instance model (Mask R-CNN), whose detection steps "
                         "run in float32 only (torchvision's NMS has no float16 kernel on the CPU, measured with "
                         f"torchvision 0.29). Export without --half; see {DOCS}.")


def detector_to_onnx(wrapper: nn.Module, sample: torch.Tensor, name: str, opset: int | None,
                     outputs: tuple[str, ...] = INSTANCE_OUTPUTS):
    """The detector's ONNX graph (TorchScript-based exporter), exported in memory: a write the disk refuses is
    then atomic_path's OutputError. The number of detections is the one dynamic axis (of the four detection
    outputs; a panoptic model's ``semantic`` map has the image's fixed size)."""
    onnx = require_onnx()
    graph = io.BytesIO()
    dynamic = {k: {0: "detections"} for k in INSTANCE_OUTPUTS}
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings: the fixed-size check covers them
            torch.onnx.export(wrapper, (sample,), graph, dynamo=False, opset_version=opset or INSTANCE_OPSET,
                              input_names=["image"], output_names=list(outputs), dynamic_axes=dynamic)
    except Exception as e:
        raise ModelError(f"model {name!r} cannot be exported to ONNX: {type(e).__name__}: "
                         f"{first_line(e)}. See {DOCS}.") from e
    proto = onnx.load_model_from_string(graph.getvalue())
    check_opset(proto, opset, name)
    return proto


def _metadata(metadata: dict[str, Any], h: int, w: int, output_note: str) -> dict[str, str]:
    """ONNX metadata strings: the checkpoint's, plus the fixed input size and what goes in and out."""
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in {**metadata, "seglab.input_size": [h, w]}.items()}
    meta["seglab.input"] = f"image (3, {h}, {w}) float32: RGB pixels / 255 (resize images to {h}x{w} first)"
    meta["seglab.output"] = output_note
    return meta


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
                             f"({type(e).__name__}: {first_line(e)}). See {DOCS}.") from e
        if got[0].shape[0] != ref[0].shape[0]:
            raise ModelError(f"{path}: exported model finds {got[0].shape[0]} detections, PyTorch "
                             f"{ref[0].shape[0]}. See {DOCS}.")
        compared += int(ref[0].shape[0])
        detector = getattr(wrapper.model, "detector", wrapper.model)  # Panoptic FPN holds its Mask R-CNN
        cap = int(getattr(getattr(detector, "roi_heads", None), "detections_per_img", 0) or 0)
        worst = max(worst, paired_difference([torch.from_numpy(a) for a in got[:4]], list(ref[:4]), cap))
        if len(ref) > 4:  # a panoptic model's semantic map: the share of pixels whose class differs
            worst = max(worst, float((torch.from_numpy(got[4]) != ref[4]).double().mean()))
    return worst, compared


def paired_difference(got: list[torch.Tensor], ref: list[torch.Tensor], cap: int) -> float:
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
