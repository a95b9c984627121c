"""Panoptic FPN to ONNX: the detections and the semantic map of one fixed-size image, merged after the graph.

The merge (instances in score order, overlap drop, stuff area; :func:`seglab.models.panoptic.combine`) is a
loop over a data-dependent number of detections that an ONNX graph would freeze at the traced count, so the
graph stops before it: it returns what the merge needs, and a deployment runs ``combine`` (or its few lines
in any language: docs/panoptic.md) on the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.export.common import DOCS, ExportResult
from seglab.export.instance import INSTANCE_OUTPUTS, export_fixed_size

PANOPTIC_OUTPUTS = (*INSTANCE_OUTPUTS, "semantic")


class PanopticExportWrapper(nn.Module):
    """One image in; boxes, labels, scores, masks and the semantic class map out (before the merge)."""

    output_note = ("boxes (N, 4) XYXY pixels, labels (N,) int64 class index (seglab.classes), scores (N,), masks "
                   "(N, 1, H, W) probabilities, semantic (H, W) int64 class index (thing pixels carry the first "
                   "thing class); merge with seglab.models.panoptic.combine; one image per call")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def transform(self) -> nn.Module:
        """The detector's resize + normalize step (its sizes fix the export's input size)."""
        return self.model.detector.transform

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.raw([image])[0]
        inst = out["instances"]
        return inst["boxes"], inst["labels"], inst["scores"], inst["masks"], out["semantic"]


def export_panoptic(model: nn.Module, path: Path, *, format: str, metadata: dict[str, Any], name: str,
                    check: bool, tolerance: float | None, check_images: list[torch.Tensor] | None = None,
                    opset: int | None = None, half: bool = False) -> ExportResult:
    """Panoptic FPN to ONNX for square inputs of the model's ``min_size``, as instance models export.

    Raises:
        ModelError: a merged pair (export its two checkpoints instead), TorchScript, ``half``, or a graph that
            differs from PyTorch.
    """
    if not hasattr(model, "raw"):
        raise ModelError(f"model {name!r} merges two models; export the semantic and the instance checkpoints "
                         f"it was merged from (seglab export each) and merge their outputs. See {DOCS}.")
    if format != "onnx" or half:
        raise ModelError(f"model {name!r}: panoptic models export to ONNX in float32 only (drop --half / use "
                         f"--format onnx), as the Mask R-CNN inside them. See {DOCS}.")
    meta = {**metadata, "seglab.thing_classes": list(model.thing_classes)}
    return export_fixed_size(model, PanopticExportWrapper(model), path, format=format, metadata=meta, name=name,
                             check=check, tolerance=tolerance, outputs=PANOPTIC_OUTPUTS, check_images=check_images,
                             opset=opset)
