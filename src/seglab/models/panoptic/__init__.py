"""Panoptic segmentation models: every pixel one segment, stuff by class and things by instance.

- :mod:`.merge`: :func:`combine`, Panoptic FPN's heuristics merging a semantic map and instances (pure tensors).
- :mod:`.fpn`: :class:`PanopticFPN` (Kirillov et al. 2019, arXiv:1901.02446): seglab's Mask R-CNN plus a
  semantic FPN branch on the same features, trained jointly.
- :mod:`.merged`: :class:`MergedPanoptic`: a semantic and an instance model trained separately, merged.
- :mod:`.variants`: the registered builders (``panoptic_fpn_resnet18``, ``panoptic_fpn_resnet50``,
  ``panoptic_fpn_mobilenet_v3``, ``panoptic_merge``; all ``task="panoptic"``).

Every panoptic model is called like a torchvision detector with a list of [0, 1] RGB images and, in eval mode,
returns per image ``{"ids", "segments", "instances"}`` (the panoptic contract, see :func:`combine`).
"""

from seglab.models.panoptic.fpn import PanopticFPN, SemanticFPNHead, check_thing_classes, semantic_targets
from seglab.models.panoptic.merge_heuristics import VOID, check_merge_options, combine
from seglab.models.panoptic.merged_pair import MergedPanoptic
from seglab.models.panoptic.variants import (
    COCO_PANOPTIC_CLASSES,
    build_panoptic_fpn,
    panoptic_fpn_mobilenet_v3,
    panoptic_fpn_resnet18,
    panoptic_fpn_resnet50,
    panoptic_merge,
)

__all__ = ["COCO_PANOPTIC_CLASSES", "VOID", "MergedPanoptic", "PanopticFPN", "SemanticFPNHead", "build_panoptic_fpn",
           "check_merge_options", "check_thing_classes", "combine", "panoptic_fpn_mobilenet_v3",
           "panoptic_fpn_resnet18", "panoptic_fpn_resnet50", "panoptic_merge", "semantic_targets"]
