"""DeepLabv3 (Chen et al., 2017, arXiv:1706.05587) and DeepLabv3+ (Chen et al., 2018, arXiv:1802.02611).

A dilated backbone at output stride 16 (ASPP rates 6, 12, 18) or 8 (rates doubled), atrous spatial pyramid
pooling with an image-pooling branch, and for v3+ a decoder that fuses the stride-4 low-level feature.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.models.base import SegmentationModel, resize
from seglab.models.blocks import ConvNormAct
from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model


class ImagePooling(nn.Module):
    """Global average pool -> 1x1 conv -> ReLU -> broadcast back; no BN, so batch size 1 trains too."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_ch, H, W) -> (N, out_ch, H, W), constant over space."""
        return self.conv(x).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1 conv, three dilated 3x3 convs, image pooling; concat, 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...], norm: str = "batch",
                 dropout: float = 0.1) -> None:
        super().__init__()
        branches = [ConvNormAct(in_ch, out_ch, 1, norm=norm)]
        branches += [ConvNormAct(in_ch, out_ch, 3, dilation=r, norm=norm) for r in rates]
        branches.append(ImagePooling(in_ch, out_ch))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(ConvNormAct(len(branches) * out_ch, out_ch, 1, norm=norm),
                                     nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_ch, h, w) -> (N, out_ch, h, w)."""
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class DeepLabV3(SegmentationModel):
    """Encoder -> ASPP -> 3x3 conv -> 1x1 classifier -> bilinear resize to the input."""

    def __init__(self, num_classes: int, encoder: nn.Module, aspp: ASPP, channels: int, norm: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.aspp = aspp
        self.head = nn.Sequential(ConvNormAct(channels, channels, norm=norm), nn.Conv2d(channels, num_classes, 1))
        self.stride = max(encoder.strides)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        return resize(self.head(self.run(self.aspp, feats[-1])), x.shape[-2:])


class DeepLabV3Plus(SegmentationModel):
    """DeepLabv3+: ASPP output upsampled to stride 4, concatenated with a 48-channel low-level projection,
    two 3x3 convs, classifier, resize to the input."""

    def __init__(self, num_classes: int, encoder: nn.Module, aspp: ASPP, channels: int, low_index: int,
                 low_channels: int, norm: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.aspp = aspp
        self.low_index = low_index
        self.low_proj = ConvNormAct(encoder.channels[low_index], low_channels, 1, norm=norm)
        self.decoder = nn.Sequential(ConvNormAct(channels + low_channels, channels, norm=norm),
                                     ConvNormAct(channels, channels, norm=norm))
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.stride = max(encoder.strides)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        low = self.low_proj(feats[self.low_index])
        high = resize(self.run(self.aspp, feats[-1]), low.shape[-2:])
        y = self.run(self.decoder, torch.cat([high, low], dim=1))
        return resize(self.classifier(y), x.shape[-2:])


def _encoder_and_aspp(encoder: str, in_channels: int, output_stride: int, pretrained: str | None,
                      channels: int, norm: str) -> tuple[nn.Module, ASPP]:
    if output_stride not in (8, 16):
        raise ModelError(f"deeplab: output_stride={output_stride} is not supported; use 8 or 16.")
    enc = build_encoder(encoder, in_channels, pretrained=pretrained, output_stride=output_stride)
    rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    return enc, ASPP(enc.channels[-1], channels, rates, norm)


@register_model("deeplabv3", default_input=512)
def deeplabv3(*, num_classes: int, in_channels: int = 3, encoder: str = "resnet50", output_stride: int = 16,
              channels: int = 256, norm: str = "batch", pretrained: str | None = None) -> nn.Module:
    """DeepLabv3 on a dilated ``encoder`` (timm or ``tv_resnet*``); ``pretrained``: local encoder weights."""
    enc, aspp = _encoder_and_aspp(encoder, in_channels, output_stride, pretrained, channels, norm)
    return DeepLabV3(num_classes, enc, aspp, channels, norm)


@register_model("deeplabv3plus", default_input=512)
def deeplabv3plus(*, num_classes: int, in_channels: int = 3, encoder: str = "resnet50", output_stride: int = 16,
                  channels: int = 256, low_channels: int = 48, norm: str = "batch",
                  pretrained: str | None = None) -> nn.Module:
    """DeepLabv3+ on a dilated ``encoder``; the low-level feature is the encoder's stride-4 stage."""
    enc, aspp = _encoder_and_aspp(encoder, in_channels, output_stride, pretrained, channels, norm)
    if 4 not in enc.strides:
        raise ModelError(f"deeplabv3plus: encoder {encoder!r} has no stride-4 stage (strides {enc.strides}).")
    return DeepLabV3Plus(num_classes, enc, aspp, channels, enc.strides.index(4), low_channels, norm)
