"""Mask R-CNN (He et al., "Mask R-CNN", ICCV 2017, arXiv:1703.06870) from torchvision.models.detection parts.

A backbone with an FPN feeds an RPN; RoIAlign (or RoIPool, for the study guide's comparison) crops each
proposal; a box head classifies and refines it and a per-class 28x28 mask head segments it, the mask loss
taken on the true class only. Forward is torchvision's: ``model(images, targets)`` in train mode returns
``loss_classifier, loss_box_reg, loss_mask, loss_objectness, loss_rpn_box_reg``; ``model(images)`` in eval
mode returns per image ``boxes (N, 4) XYXY, labels (N,), scores (N,), masks (N, 1, H, W)`` probabilities.

``num_classes`` always counts the background (one pedestrian class -> ``num_classes=2``).

Normalisation: torchvision freezes BatchNorm (``FrozenBatchNorm2d``) because detection batches are too small
to estimate statistics, which is right when the frozen statistics come from ImageNet. From scratch they would
be the initial identity (mean 0, var 1), i.e. no normalisation at all, and deep backbones then train slowly and
unstably; so without ``pretrained`` weights the backbone uses ordinary, trainable BatchNorm.

Nothing is downloaded: ``pretrained`` is a local file holding either backbone weights (a torchvision / timm
classification state dict) or a whole detector's (keys starting with ``backbone.``).

Layout: :mod:`.variants` (the registered builders: a backbone name and a dict of option defaults each, over
one builder, ``build_maskrcnn``), :mod:`.backbones` (ResNet / MobileNetV3 / timm + FPN), :mod:`.roi_pool`
(RoIPool), :mod:`.weights` (local weight files).
"""

from seglab.models.maskrcnn.backbones import TimmFPN
from seglab.models.maskrcnn.roi_pool import MultiScaleRoIPool
from seglab.models.maskrcnn.variants import (
    COCO,
    CPU,
    MOBILE,
    OPTION_TYPES,
    TIMM,
    build_maskrcnn,
    maskrcnn_mobilenet_v3_fpn,
    maskrcnn_resnet18_fpn,
    maskrcnn_resnet34_fpn,
    maskrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
    maskrcnn_timm,
)

__all__ = [
    "COCO", "CPU", "MOBILE", "OPTION_TYPES", "TIMM", "MultiScaleRoIPool", "TimmFPN", "build_maskrcnn",
    "maskrcnn_mobilenet_v3_fpn", "maskrcnn_resnet18_fpn", "maskrcnn_resnet34_fpn", "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2", "maskrcnn_timm",
]
