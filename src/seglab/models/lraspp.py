"""LR-ASPP on MobileNetV3 (Howard et al., 2019, arXiv:1905.02244): a small, fast segmentation model.

The last MobileNetV3 stage (dilated to stride 16) goes through a 1x1 conv gated by a squeeze-and-excite
style global branch; it is upsampled to the stride-8 feature, and both are classified and summed.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.models.base import SegmentationModel, resize
from seglab.models.blocks import ConvNormAct
from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model


class LRASPPHead(nn.Module):
    """``high * sigmoid(gate(high))`` -> classify; plus a linear classifier on the low-level feature."""

    def __init__(self, low_ch: int, high_ch: int, inter_ch: int, num_classes: int, norm: str) -> None:
        super().__init__()
        self.cbr = ConvNormAct(high_ch, inter_ch, 1, norm=norm)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, inter_ch, 1), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_ch, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Low (N, low_ch, H/8, W/8), high (N, high_ch, H/16, W/16) -> logits (N, K, H/8, W/8)."""
        y = resize(self.cbr(high) * self.scale(high), low.shape[-2:])
        return self.low_classifier(low) + self.high_classifier(y)


class LRASPP(SegmentationModel):
    """MobileNetV3 encoder -> ``LRASPPHead`` on its stride-8 and deepest features -> resize to the input."""

    def __init__(self, num_classes: int, encoder: nn.Module, inter_channels: int, norm: str) -> None:
        super().__init__()
        if 8 not in encoder.strides:
            raise ModelError(f"lraspp: encoder has no stride-8 stage (strides {encoder.strides}).")
        self.encoder = encoder
        self.low_index = encoder.strides.index(8)
        self.head = LRASPPHead(encoder.channels[self.low_index], encoder.channels[-1], inter_channels,
                               num_classes, norm)
        self.stride = 32

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        return resize(self.head(feats[self.low_index], feats[-1]), x.shape[-2:])


@register_model("lraspp_mobilenet_v3", default_input=512)
def lraspp_mobilenet_v3(*, num_classes: int, in_channels: int = 3, encoder: str = "mobilenetv3_large_100",
                        inter_channels: int = 128, norm: str = "batch",
                        pretrained: str | None = None) -> nn.Module:
    """LR-ASPP; ``encoder`` any timm MobileNetV3 (e.g. ``mobilenetv3_small_100``), dilated to stride 16."""
    enc = build_encoder(encoder, in_channels, pretrained=pretrained, output_stride=16)
    return LRASPP(num_classes, enc, inter_channels, norm)
