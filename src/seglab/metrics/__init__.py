"""Segmentation metrics: confusion-matrix, boundary and panoptic metrics (COCO AP lives in seglab.metrics.coco)."""

from seglab.metrics.boundary import BoundaryMetrics, boundary_f1, boundary_iou, boundary_stats
from seglab.metrics.confusion import SegMetrics, confusion_matrix, metrics_from_confusion
from seglab.metrics.panoptic import PanopticQuality, panoptic_stats, pq_from_stats

__all__ = ["BoundaryMetrics", "PanopticQuality", "SegMetrics", "boundary_f1", "boundary_iou", "boundary_stats",
           "confusion_matrix", "metrics_from_confusion", "panoptic_stats", "pq_from_stats"]
