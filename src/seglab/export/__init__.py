"""Ship a trained model: ONNX (dynamic batch/height/width) or TorchScript, with seglab metadata inside.

Semantic models (:mod:`seglab.export.semantic`) take a normalized ``image`` ``(N, C, H, W)`` and return
``logits``; instance models (:mod:`seglab.export.instance`, Mask R-CNN) export to ONNX for images of any size
(scaled outside the graph as the detector scales them) and return boxes, labels, scores and masks; Panoptic FPN
exports for one fixed-size image. :func:`export_checkpoint` is what ``seglab export``
calls. See docs/export.md for which models export.
"""

from __future__ import annotations

from seglab.export.api import checkpoint_metadata, export_checkpoint, export_model, input_size, read_metadata
from seglab.export.common import FORMATS, ExportResult
from seglab.export.instance import InstanceExportWrapper, check_instance_export
from seglab.export.semantic import NO_ONNX, ExportWrapper, check_export

__all__ = ["FORMATS", "NO_ONNX", "ExportResult", "ExportWrapper", "InstanceExportWrapper", "check_export",
           "check_instance_export", "checkpoint_metadata", "export_checkpoint", "export_model", "input_size",
           "read_metadata"]
