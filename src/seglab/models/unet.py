"""U-Net (Ronneberger et al., 2015, arXiv:1505.04597): the classic, its ablation switches, encoder variants.

``unet`` with defaults is the classic: four stages of two 3x3 conv+BN+ReLU at 64-128-256-512 channels, 2x2
max-pool, a 1024-channel bottleneck, 2x2 stride-2 transposed convs up, concatenated skips, a 1x1 output conv.
``encoder="resnet34"`` swaps the contracting path for a timm/torchvision backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.models.base import SegmentationModel
from seglab.models.blocks import ConvNormAct, DoubleConv, Upsample, check_choice
from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model

SKIPS = ("concat", "add", "none")
DOWNSAMPLES = ("maxpool", "strided")


class DecoderBlock(nn.Module):
    """Upsample ``x``, merge the skip (concat / add / none), then a ``DoubleConv`` to ``out_ch``."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, upsample: str = "transpose",
                 skip: str = "concat", norm: str = "batch", dropout: float = 0.0) -> None:
        super().__init__()
        check_choice("skip", skip, SKIPS)
        self.skip = skip if skip_ch > 0 else "none"
        self.up = Upsample(in_ch, out_ch, upsample, norm)
        up_ch = self.up.out_channels
        # "add" needs equal widths; a 1x1 projection bridges fixed-interpolation upsampling (channels kept).
        self.proj = nn.Conv2d(up_ch, skip_ch, 1) if self.skip == "add" and up_ch != skip_ch else nn.Identity()
        conv_in = {"concat": up_ch + skip_ch, "add": skip_ch, "none": up_ch}[self.skip]
        self.conv = DoubleConv(conv_in, out_ch, norm, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """(N, in_ch, h, w) and skip (N, skip_ch, H, W) -> (N, out_ch, H, W); without skip H, W = 2h, 2w."""
        x = self.up(x, None if skip is None else tuple(skip.shape[-2:]))
        if self.skip == "concat":
            x = torch.cat([x, skip], dim=1)
        elif self.skip == "add":
            x = self.proj(x) + skip
        return self.conv(x)


class UNet(SegmentationModel):
    """The plain U-Net: ``depth`` down stages from ``base_channels``, doubled per stage, mirrored up."""

    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 64, depth: int = 4,
                 downsample: str = "maxpool", upsample: str = "transpose", skip: str = "concat",
                 norm: str = "batch", dropout: float = 0.0) -> None:
        super().__init__()
        check_choice("downsample", downsample, DOWNSAMPLES)
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.stride = 2**depth
        self.stem = DoubleConv(in_channels, widths[0], norm, dropout)
        self.down = nn.ModuleList(
            nn.Sequential(_downsampler(downsample, c_in, norm), DoubleConv(c_in, c_out, norm, dropout))
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True))
        self.up = nn.ModuleList(
            DecoderBlock(c_in, c_out, c_out, upsample, skip, norm, dropout)
            for c_in, c_out in zip(widths[:0:-1], widths[-2::-1], strict=True))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.run(self.stem, x)]
        for stage in self.down:
            skips.append(self.run(stage, skips[-1]))
        x = skips.pop()
        for block in self.up:
            x = self.run(block, x, skips.pop())
        return self.head(x)


def _downsampler(kind: str, channels: int, norm: str) -> nn.Module:
    if kind == "maxpool":
        return nn.MaxPool2d(2)
    return ConvNormAct(channels, channels, 3, stride=2, norm=norm)  # learnable 3x3 stride-2 conv


class UNetDecoder(nn.Module):
    """A U-Net decoder over any encoder pyramid: one ``DecoderBlock`` per shallower stage, then skip-less
    blocks down to stride 1. The block at stride ``s`` is ``max(8, base_channels * s // 4)`` wide, so
    ``base_channels=64`` gives the common (256, 128, 64, 32, 16)."""

    def __init__(self, channels: list[int], strides: list[int], base_channels: int = 64,
                 upsample: str = "transpose", skip: str = "concat", norm: str = "batch",
                 dropout: float = 0.0) -> None:
        super().__init__()
        blocks: list[DecoderBlock] = []
        c_in = channels[-1]
        out_strides = list(strides[:-1][::-1])
        s = strides[0]
        while s > 1:  # encoders starting at stride 2 or 4 (ResNet stem, Swin patches) still reach full size
            s //= 2
            out_strides.append(s)
        skip_chs = list(channels[:-1][::-1]) + [0] * (len(out_strides) - len(channels) + 1)
        for s_out, skip_ch in zip(out_strides, skip_chs, strict=True):
            width = max(8, base_channels * s_out // 4)
            blocks.append(DecoderBlock(c_in, skip_ch, width, upsample, skip, norm, dropout))
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c_in

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Encoder features, shallow to deep -> (N, out_channels, H, W) at stride 1."""
        x, skips = feats[-1], list(feats[:-1])
        for block in self.blocks:
            x = block(x, skips.pop() if skips else None)
        return x


class EncoderUNet(SegmentationModel):
    """U-Net with a pretrained-style backbone as the contracting path (``encoder=`` any timm/tv name)."""

    def __init__(self, num_classes: int, encoder: nn.Module, decoder: UNetDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = nn.Conv2d(decoder.out_channels, num_classes, 1)
        self.stride = max(encoder.strides)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        return self.head(self.decoder(feats))


def _build_unet(num_classes: int, in_channels: int, base_channels: int, depth: int | None, downsample: str,
                upsample: str, skip: str, norm: str, dropout: float, encoder: str | None,
                pretrained: str | None) -> nn.Module:
    if encoder is None:
        if pretrained is not None:
            raise ModelError("unet: pretrained= loads backbone weights and needs encoder= (e.g. "
                             "encoder='resnet34'); load whole-model weights with seglab.load_checkpoint.")
        return UNet(num_classes, in_channels, base_channels, 4 if depth is None else depth, downsample,
                    upsample, skip, norm, dropout)
    if downsample != "maxpool":
        raise ModelError("unet: downsample= applies to the plain U-Net only; the encoder decides its own.")
    enc = build_encoder(encoder, in_channels, pretrained=pretrained, depth=depth)
    dec = UNetDecoder(enc.channels, enc.strides, base_channels, upsample, skip, norm, dropout)
    return EncoderUNet(num_classes, enc, dec)


@register_model("unet", default_input=512)
def unet(*, num_classes: int, in_channels: int = 3, base_channels: int = 64, depth: int | None = None,
         downsample: str = "maxpool", upsample: str = "transpose", skip: str = "concat", norm: str = "batch",
         dropout: float = 0.0, encoder: str | None = None, pretrained: str | None = None) -> nn.Module:
    """U-Net; defaults are the classic. ``depth`` = down stages (4) or, with ``encoder``, stages used (all).

    ``upsample``: transpose | bilinear | bilinear_conv | nearest; ``skip``: concat | add | none;
    ``norm``: batch | group | none; ``encoder``: timm name or ``tv_resnet34``; ``pretrained``: local file.
    """
    return _build_unet(num_classes, in_channels, base_channels, depth, downsample, upsample, skip, norm,
                       dropout, encoder, pretrained)


@register_model("unet_resnet34", default_input=512)
def unet_resnet34(*, num_classes: int, in_channels: int = 3, base_channels: int = 64,
                  upsample: str = "transpose", norm: str = "batch",
                  pretrained: str | None = None) -> nn.Module:
    """U-Net with a ResNet-34 encoder (timm), the configuration popular libraries ship by default."""
    return _build_unet(num_classes, in_channels, base_channels, None, "maxpool", upsample, "concat", norm,
                       0.0, "resnet34", pretrained)
