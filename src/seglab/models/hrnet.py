"""HRNetV2 for segmentation (Wang et al., 2019, arXiv:1908.07919).

Parallel high-to-low resolution branches with repeated multi-scale fusion (timm's HRNet as the backbone);
the head upsamples every branch to the highest resolution (stride 4), concatenates them, mixes with a
1x1 conv+BN+ReLU and classifies; logits are resized to the input.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.models.base import SegmentationModel, resize
from seglab.models.blocks import ConvNormAct
from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model


class HRNetSeg(SegmentationModel):
    """HRNet branches (strides 4..32) -> concat at stride 4 -> 1x1 mix -> 1x1 classifier -> resize."""

    def __init__(self, num_classes: int, encoder: nn.Module, norm: str) -> None:
        super().__init__()
        self.encoder = encoder
        branch_ch = sum(encoder.channels[1:])  # stage 0 is the stride-2 stem, not a branch
        self.head = nn.Sequential(ConvNormAct(branch_ch, branch_ch, 1, norm=norm),
                                  nn.Conv2d(branch_ch, num_classes, 1))
        self.stride = max(encoder.strides)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.encoder(x)[1:]
        size = branches[0].shape[-2:]
        y = torch.cat([branches[0]] + [resize(b, size) for b in branches[1:]], dim=1)
        return resize(self.head(y), x.shape[-2:])


def _build_hrnet(num_classes: int, backbone: str, in_channels: int, norm: str, pretrained: str | None) -> nn.Module:
    return HRNetSeg(num_classes, build_encoder(backbone, in_channels, pretrained=pretrained), norm)


@register_model("hrnet_w18", default_input=512)
def hrnet_w18(*, num_classes: int, in_channels: int = 3, encoder: str = "hrnet_w18", norm: str = "batch",
              pretrained: str | None = None) -> nn.Module:
    """HRNetV2-W18 (branches 18-36-72-144); ``encoder`` may name another timm HRNet width."""
    return _build_hrnet(num_classes, encoder, in_channels, norm, pretrained)


@register_model("hrnet_w18_small", default_input=512)
def hrnet_w18_small(*, num_classes: int, in_channels: int = 3, norm: str = "batch",
                    pretrained: str | None = None) -> nn.Module:
    """HRNetV2-W18-Small-v1 (timm `hrnet_w18_small`): one block per branch, the lightest HRNet."""
    return _build_hrnet(num_classes, "hrnet_w18_small", in_channels, norm, pretrained)
