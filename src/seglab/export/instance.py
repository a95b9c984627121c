"""Instance models (Mask R-CNN) to ONNX: an image of any size in; boxes, labels, scores and masks out.

The graph starts after the detector's resize: ``image`` is the picture already scaled as the detector scales
it (:func:`seglab.runtime.instance.detector_size`, bilinear), ``size`` the ``(H, W)`` to answer in, and the
detections come back in those pixels with masks pasted at that size, as ``model([picture])`` returns them.
An in-graph resize did not export faithfully: torch picks the output size in float64 and samples at
``in / out``, ONNX ``Resize`` in float32 at the given scale (61x83 and 78x83 pictures came out different,
measured), so the runtime (numpy) and the check (torch) do that one step outside. Panoptic FPN still exports
for one fixed square size (:func:`export_fixed_size`).
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
from seglab.export.common import DOCS, ExportResult, can_run, check_opset, first_line, opset_of, require_onnx
from seglab.fileio import atomic_path
from seglab.runtime.instance import detector_size

INSTANCE_OUTPUTS = ("boxes", "labels", "scores", "masks")
INSTANCE_OPSET = 17  # the TorchScript-based exporter's opset unless --opset says otherwise
DYNAMIC_INPUT = ("image (3, h, w) float32: RGB pixels / 255 scaled (bilinear, align_corners=False, no antialias) to "
                 "h = floor(H * s), w = floor(W * s), s = min(min_size / min(H, W), max_size / max(H, W)) with "
                 "seglab.detector's sizes; size (2,) int64: the (H, W) to answer in")


class InstanceExportWrapper(nn.Module):
    """The detector after its resize: ``(image, size)`` in, its four outputs out (ONNX takes tensors, not dicts)."""

    output_note = ("boxes (N, 4) XYXY pixels of `size`, labels (N,) int64 class index (seglab.classes), scores (N,), "
                   "masks (N, 1, H, W) probabilities at `size`; one image per call")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(3, h, w)`` float in [0, 1] at the detector's input size, ``size`` = ``(H, W)`` -> boxes, labels,
        scores, masks, as ``model([picture])`` gives them for an ``H x W`` picture that resizes to ``image``."""
        from torchvision.models.detection.image_list import ImageList

        m = self.model
        t = m.transform
        batch = t.batch_images([t.normalize(image)], size_divisible=t.size_divisible)
        images = ImageList(batch, [(image.shape[-2], image.shape[-1])])
        features = m.backbone(images.tensors)
        if isinstance(features, torch.Tensor):
            features = {"0": features}
        proposals, _ = m.rpn(images, features)
        detections, _ = m.roi_heads(features, proposals, images.image_sizes)
        out = t.postprocess(detections, images.image_sizes, [(size[0], size[1])])[0]
        return out["boxes"], out["labels"], out["scores"], out["masks"]


def detector_sizes(model: nn.Module) -> tuple[int, int]:
    """``(min_size, max_size)`` of a torchvision detector's inference resize."""
    return int(model.transform.min_size[-1]), int(model.transform.max_size)


def detector_input(image: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """A ``(3, H, W)`` picture scaled as the detector scales it: the graph's ``image`` input (torch's rule)."""
    size = detector_size(*image.shape[-2:], *detector_sizes(model))
    return F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def export_instance(model: nn.Module, path: Path, *, format: str, metadata: dict[str, Any], name: str,
                     check: bool, tolerance: float | None, check_images: list[torch.Tensor] | None = None,
                     opset: int | None = None, half: bool = False) -> ExportResult:
    """Mask R-CNN to ONNX for pictures of any size (see the module docstring and docs/export.md).

    The graph is always run against PyTorch before it is written (``check_images``, ``(3, H, W)`` float
    [0, 1] tensors at their own sizes, else two noise pictures of different shapes): a trained model usually
    finds nothing in noise, so real images make the check meet detections. Torch's dynamo exporter fails on
    Mask R-CNN's data-dependent shapes, so the TorchScript-based exporter is used, as torchvision tests it.
    """
    _refuse(model, format, name, half)
    model.eval()
    wrapper = InstanceExportWrapper(model).eval()
    min_size, max_size = detector_sizes(model)
    picture = torch.rand(3, 3 * min_size // 4 + 5, min_size + 9, generator=torch.Generator().manual_seed(0))
    sample = (detector_input(picture, model), torch.tensor(picture.shape[-2:]))
    meta = {**metadata, "seglab.detector": {"min_size": min_size, "max_size": max_size}}
    with atomic_path(path) as tmp:
        proto = detector_to_onnx(wrapper, sample, name, opset, INSTANCE_OUTPUTS, ["image", "size"],
                                 {"image": {1: "height", 2: "width"}, "masks": {0: "detections", 2: "H", 3: "W"}})
        onnx_metadata(proto, meta, DYNAMIC_INPUT, wrapper.output_note)
        require_onnx().save(proto, str(tmp))
        result = _checked(path, format, name, check, tolerance, opset_of(proto),
                          lambda: check_instance_export(tmp, model, images=check_images))
    return result


def export_fixed_size(model: nn.Module, wrapper: nn.Module, path: Path, *, format: str, metadata: dict[str, Any],
                      name: str, check: bool, tolerance: float | None, outputs: tuple[str, ...],
                      check_images: list[torch.Tensor] | None = None, opset: int | None = None) -> ExportResult:
    """A detector (Panoptic FPN) to ONNX for square inputs of the model's ``min_size``.

    At the size the model resizes to, its internal resize is the identity and the graph matches PyTorch.
    ``wrapper`` maps one ``(3, S, S)`` image to ``outputs``; its ``transform`` is the detector's.
    """
    wrapper.eval()
    h = w = min(int(wrapper.transform.min_size[-1]), int(wrapper.transform.max_size))
    sample = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    with atomic_path(path) as tmp:
        proto = detector_to_onnx(wrapper, (sample,), name, opset, outputs)
        meta = {**metadata, "seglab.input_size": [h, w]}
        onnx_metadata(proto, meta, f"image (3, {h}, {w}) float32: RGB pixels / 255 (resize images to {h}x{w} first)",
                      wrapper.output_note)
        require_onnx().save(proto, str(tmp))
        result = _checked(path, format, name, check, tolerance, opset_of(proto),
                          lambda: check_fixed_size_export(tmp, wrapper, (h, w), images=check_images))
    return result


def _checked(path: Path, format: str, name: str, check: bool, tolerance: float | None, opset: int | None,
             compare) -> ExportResult:
    """Run ``compare`` (-> ``(difference, detections compared)``) wherever onnxruntime is installed, not only with
    ``check``: a detector graph is easy to get subtly wrong. Above the tolerance (default 1e-3) the export is
    refused, inside ``atomic_path``, so nothing is written."""
    diff, compared = None, None
    if check or can_run("onnx"):
        diff, compared = compare()
        tolerance = 1e-3 if tolerance is None else tolerance
    if diff is not None and tolerance is not None and not diff <= tolerance:
        raise ModelError(f"{path}: exported {name!r} differs from PyTorch by up to {diff:.3g} (tolerance "
                         f"{tolerance:g}); the file was not written. See {DOCS} for known issues.")
    return ExportResult(path, format, diff if check else None, compared if check else None,
                        tolerance=tolerance if check else None, opset=opset)


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


def detector_to_onnx(wrapper: nn.Module, sample: tuple[torch.Tensor, ...], name: str, opset: int | None,
                     outputs: tuple[str, ...] = INSTANCE_OUTPUTS, inputs: tuple[str, ...] | list[str] = ("image",),
                     dynamic: dict[str, dict[int, str]] | None = None):
    """The detector's ONNX graph (TorchScript-based exporter), exported in memory: a write the disk refuses is
    then atomic_path's OutputError. The number of detections is dynamic (of the four detection outputs; a
    panoptic model's ``semantic`` map has the image's fixed size); ``dynamic`` adds axes."""
    onnx = require_onnx()
    graph = io.BytesIO()
    axes: dict[str, dict[int, str]] = {k: {0: "detections"} for k in INSTANCE_OUTPUTS}
    axes.update(dynamic or {})
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings: the check against PyTorch covers them
            torch.onnx.export(wrapper, sample, graph, dynamo=False, opset_version=opset or INSTANCE_OPSET,
                              input_names=list(inputs), output_names=list(outputs), dynamic_axes=axes)
    except Exception as e:
        raise ModelError(f"model {name!r} cannot be exported to ONNX: {type(e).__name__}: "
                         f"{first_line(e)}. See {DOCS}.") from e
    proto = onnx.load_model_from_string(graph.getvalue())
    check_opset(proto, opset, name)
    return proto


def onnx_metadata(proto: Any, metadata: dict[str, Any], input_note: str, output_note: str) -> None:
    """Store the metadata (JSON strings) and what goes in and out in the graph's ``metadata_props``."""
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    meta["seglab.input"], meta["seglab.output"] = input_note, output_note
    require_onnx().helper.set_model_props(proto, meta)


def _session(path: str | os.PathLike):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("--check needs onnxruntime: pip install 'seglab[export]'.") from e
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the graph's declared mask shape is (1, ...); N > 1 is right, not a warning
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _noise(shape: tuple[int, int], seed: int) -> torch.Tensor:
    """A smooth noise picture (detectors find more in it than in white noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, shape[0] // 8 + 1, shape[1] // 8 + 1, generator=g)
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)[0]


def check_instance_export(path: str | os.PathLike, model: nn.Module,
                          images: list[torch.Tensor] | None = None) -> tuple[float, int]:
    """Max |onnxruntime - PyTorch| over scores, mask probabilities and box corners (pixels / 100).

    PyTorch runs ``model([picture])`` on each picture at its own size; the graph gets the picture scaled by
    :func:`detector_input` and the picture's size. ``images`` are ``(3, H, W)`` float [0, 1] tensors, else two
    smooth-noise pictures of different shapes (one mirrored). The detection counts must match. Returns
    ``(difference, detections compared)``: 0 compared means both found nothing, which says little.
    """
    session = _session(path)
    min_size = detector_sizes(model)[0]
    pictures = [torch.as_tensor(im).float()[:3].clamp(0, 1) for im in images] if images else \
        [_noise((min_size + 13, 2 * min_size - 7), 1), _noise((3 * min_size // 2, min_size - 3), 2).flip(-1)]
    worst, compared = 0.0, 0
    cap = int(getattr(model.roi_heads, "detections_per_img", 0) or 0)
    for picture in pictures:
        with torch.no_grad():
            out = model([picture])[0]
        ref = [out[k] for k in INSTANCE_OUTPUTS]
        feed = {"image": detector_input(picture, model).numpy(), "size": torch.tensor(picture.shape[-2:]).numpy()}
        got = _run(session, path, feed, tuple(picture.shape))
        compared += _count(path, got, ref)
        worst = max(worst, paired_difference([torch.from_numpy(a) for a in got[:4]], ref, cap))
    return worst, compared


def check_fixed_size_export(path: str | os.PathLike, wrapper: nn.Module, size: tuple[int, int],
                            images: list[torch.Tensor] | None = None) -> tuple[float, int]:
    """:func:`check_instance_export` for a fixed-size graph (Panoptic FPN): ``images`` resized to ``size``, else
    smooth noise and its mirror image; a ``semantic`` output counts the share of pixels whose class differs."""
    session = _session(path)
    if images:
        inputs = [F.interpolate(torch.as_tensor(im).float()[None, :3], size=size, mode="bilinear",
                                align_corners=False)[0].clamp(0, 1) for im in images]
    else:
        x = _noise(size, 1)
        inputs = [x, x.flip(-1)]
    detector = getattr(wrapper.model, "detector", wrapper.model)  # Panoptic FPN holds its Mask R-CNN
    cap = int(getattr(getattr(detector, "roi_heads", None), "detections_per_img", 0) or 0)
    worst, compared = 0.0, 0
    for image in inputs:
        with torch.no_grad():
            ref = wrapper(image)
        got = _run(session, path, {"image": image.numpy()}, tuple(image.shape))
        compared += _count(path, got, ref)
        worst = max(worst, paired_difference([torch.from_numpy(a) for a in got[:4]], list(ref[:4]), cap))
        if len(ref) > 4:  # a panoptic model's semantic map: the share of pixels whose class differs
            worst = max(worst, float((torch.from_numpy(got[4]) != ref[4]).double().mean()))
    return worst, compared


def _run(session: Any, path: str | os.PathLike, feed: dict[str, Any], shape: tuple[int, ...]) -> list:
    try:
        return session.run(None, feed)
    except Exception as e:
        raise ModelError(f"{path}: the exported model fails on input {shape} "
                         f"({type(e).__name__}: {first_line(e)}). See {DOCS}.") from e


def _count(path: str | os.PathLike, got: list, ref: Any) -> int:
    if got[0].shape[0] != ref[0].shape[0]:
        raise ModelError(f"{path}: exported model finds {got[0].shape[0]} detections, PyTorch "
                         f"{ref[0].shape[0]}. See {DOCS}.")
    return int(ref[0].shape[0])


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
