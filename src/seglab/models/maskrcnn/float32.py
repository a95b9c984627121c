"""Box steps in float32 under bf16/fp16 autocast: the RPN and the RoI heads of a Mask R-CNN.

bf16 keeps 8 bits of mantissa, so a coordinate near 300 px is stored to the nearest 2 px: a small proposal
collapses to zero width, and the box coder's regression target log(w_gt / w) becomes infinite. Measured on
this project's CPU runs: a NaN ``loss_box_reg`` at step 5 of Panoptic FPN on CamVid (small pedestrians) and at
epoch 21 of Mask R-CNN on Penn-Fudan, none in float32. The backbone and FPN (most of the compute) keep the
autocast dtype; the heads cast their inputs up and run with autocast off.

The modules keep their classes' state-dict keys: :func:`float32_heads` only swaps ``rpn`` and ``roi_heads`` to
subclasses whose ``forward`` adds the cast, so checkpoints, EMA copies and exports are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork


def _float(features: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v.float()) for k, v in features.items())


def _device_type(features: dict[str, torch.Tensor]) -> str:
    return next(iter(features.values())).device.type if features else "cpu"


class Float32RPN(RegionProposalNetwork):
    """The RPN with its anchors, proposals and losses in float32 whatever the autocast dtype."""

    def forward(self, images: Any, features: dict[str, torch.Tensor], targets: Any = None) -> Any:
        with torch.autocast(_device_type(features), enabled=False):
            return super().forward(images, _float(features), targets)


class Float32RoIHeads(RoIHeads):
    """The box and mask heads with their box coding and losses in float32 whatever the autocast dtype."""

    def forward(self, features: dict[str, torch.Tensor], proposals: Any, image_shapes: Any,
                targets: Any = None) -> Any:
        with torch.autocast(_device_type(features), enabled=False):
            return super().forward(_float(features), [p.float() for p in proposals], image_shapes, targets)


def float32_heads(model: nn.Module) -> nn.Module:
    """``model`` (a torchvision Mask R-CNN) with its RPN and RoI heads computing in float32 (in place)."""
    if type(model.rpn) is RegionProposalNetwork:
        model.rpn.__class__ = Float32RPN
    if type(model.roi_heads) is RoIHeads:
        model.roi_heads.__class__ = Float32RoIHeads
    return model
