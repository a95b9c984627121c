"""Fully convolutional networks (Long, Shelhamer & Darrell, 2015, arXiv:1411.4038): FCN-32s, -16s, -8s.

A VGG-16-style classifier whose fully connected layers become convolutions (fc6 = 7x7, fc7 = 1x1), 1x1
score layers, and learned transposed-convolution upsampling (initialised to bilinear) fused with the
pool4 / pool3 scores. ``encoder=`` swaps VGG for a timm/torchvision backbone (strides 8/16/32 used).
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.models.base import SegmentationModel
from seglab.models.blocks import ConvNormAct
from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model

VGG16_STAGES = (2, 2, 3, 3, 3)


class VGGBackbone(nn.Module):
    """VGG-16 convolutions; returns the pool3, pool4 and pool5 outputs (strides 8, 16, 32)."""

    def __init__(self, in_channels: int, base_channels: int, norm: str) -> None:
        super().__init__()
        widths = [base_channels * m for m in (1, 2, 4, 8, 8)]
        stages, c_in = [], in_channels
        for n_convs, width in zip(VGG16_STAGES, widths, strict=True):
            layers = [ConvNormAct(c_in if i == 0 else width, width, norm=norm) for i in range(n_convs)]
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.channels = [widths[2], widths[3], widths[4]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) -> [pool3, pool4, pool5]."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats[2:]


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Per-channel bilinear upsampling weights (channels, channels, k, k) for a transposed conv."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt1d[:, None] * filt1d[None, :]
    return weight


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    # kernel 2f, stride f, padding f/2: output is exactly f times the input (the paper's "deconvolution").
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        if up.weight.device.type != "meta":
            up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


class FCN(SegmentationModel):
    """FCN-``skip_stride``s: score the stride-32 head, fuse pool4 (16s) and pool3 (8s) scores, upsample."""

    def __init__(self, num_classes: int, backbone: nn.Module, channels: list[int], fc_channels: int,
                 skip_stride: int, norm: str, dropout: float, fc_kernel: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.stride = 32
        self.fc = nn.Sequential(  # fc6 / fc7 as convolutions
            ConvNormAct(channels[2], fc_channels, fc_kernel, norm=norm), nn.Dropout2d(dropout),
            ConvNormAct(fc_channels, fc_channels, 1, norm=norm), nn.Dropout2d(dropout))
        self.score = nn.Conv2d(fc_channels, num_classes, 1)
        fuse = {32: [], 16: [1], 8: [1, 0]}[skip_stride]
        self.fuse_index = fuse
        self.score_skips = nn.ModuleList(nn.Conv2d(channels[i], num_classes, 1) for i in fuse)
        self.up2 = nn.ModuleList(_upsampler(num_classes, 2) for _ in fuse)
        self.up_final = _upsampler(num_classes, skip_stride)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.run(self.backbone, x)
        if isinstance(feats, (list, tuple)) and len(feats) > 3:
            feats = feats[-3:]
        score = self.score(self.run(self.fc, feats[2]))
        for i, score_skip, up in zip(self.fuse_index, self.score_skips, self.up2, strict=True):
            score = up(score) + score_skip(feats[i])
        return self.up_final(score)


def _build_fcn(num_classes: int, skip_stride: int, in_channels: int, base_channels: int,
               fc_channels: int | None, norm: str, dropout: float, encoder: str | None,
               pretrained: str | None) -> FCN:
    if encoder is None:
        if pretrained is not None:
            raise ModelError(f"fcn{skip_stride}s: pretrained= loads backbone weights and needs encoder= "
                             "(e.g. encoder='resnet50').")
        backbone: nn.Module = VGGBackbone(in_channels, base_channels, norm)
        channels, kernel, fc = backbone.channels, 7, fc_channels or 4096
    else:
        enc = build_encoder(encoder, in_channels, pretrained=pretrained)
        idx = [enc.strides.index(s) for s in (8, 16, 32)]
        backbone = _Select(enc, idx)
        channels, kernel, fc = [enc.channels[i] for i in idx], 3, fc_channels or 512
    return FCN(num_classes, backbone, channels, fc, skip_stride, norm, dropout, kernel)


class _Select(nn.Module):
    """Keep the encoder stages at strides 8, 16, 32."""

    def __init__(self, encoder: nn.Module, index: list[int]) -> None:
        super().__init__()
        self.encoder, self.index = encoder, index

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.encoder(x)
        return [feats[i] for i in self.index]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.set_grad_checkpointing(enable)


def _variant(name: str, skip_stride: int) -> None:
    @register_model(name, default_input=512)
    def builder(*, num_classes: int, in_channels: int = 3, base_channels: int = 64,
                fc_channels: int | None = None, norm: str = "batch", dropout: float = 0.5,
                encoder: str | None = None, pretrained: str | None = None) -> nn.Module:
        return _build_fcn(num_classes, skip_stride, in_channels, base_channels, fc_channels, norm, dropout,
                          encoder, pretrained)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (f"FCN-{skip_stride}s, VGG-16-BN style (``fc_channels`` 4096) or ``encoder=`` backbone "
                       "(``fc_channels`` 512); ``pretrained``: local encoder weights.")


for _name, _stride in (("fcn32s", 32), ("fcn16s", 16), ("fcn8s", 8)):
    _variant(_name, _stride)
