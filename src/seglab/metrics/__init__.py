"""Segmentation metrics: confusion-matrix metrics and boundary metrics (COCO AP lives in seglab.metrics.coco)."""

from seglab.metrics.boundary import BoundaryMetrics, boundary_f1, boundary_iou, boundary_stats
from seglab.metrics.confusion import SegMetrics, confusion_matrix, metrics_from_confusion

__all__ = ["BoundaryMetrics", "SegMetrics", "boundary_f1", "boundary_iou", "boundary_stats",
           "confusion_matrix", "metrics_from_confusion"]
