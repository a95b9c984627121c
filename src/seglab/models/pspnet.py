"""PSPNet (Zhao et al., 2017, arXiv:1612.01105): pyramid pooling over a dilated backbone at output stride 8.

Bins (1, 2, 3, 6) pool the last feature map, each reduced to ``in/len(bins)`` channels, upsampled and
concatenated with it. An auxiliary FCN head on the stride-8 third stage adds a deep-supervision loss.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.models.base import SegmentationModel, resize
from seglab.models.blocks import ConvNormAct
from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model


class PyramidPooling(nn.Module):
    """Pool at each bin size, 1x1 conv (BN only where a bin has >1 cell, so batch 1 trains), upsample, concat."""

    def __init__(self, in_ch: int, bins: tuple[int, ...], norm: str = "batch") -> None:
        super().__init__()
        out_ch = in_ch // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvNormAct(in_ch, out_ch, 1, norm=norm if b > 1 else "none"))
            for b in bins)
        self.out_channels = in_ch + out_ch * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_ch, h, w) -> (N, out_channels, h, w)."""
        return torch.cat([x] + [resize(s(x), x.shape[-2:]) for s in self.stages], dim=1)


def _fcn_head(in_ch: int, mid_ch: int, num_classes: int, norm: str, dropout: float) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(in_ch, mid_ch, norm=norm), nn.Dropout2d(dropout),
                         nn.Conv2d(mid_ch, num_classes, 1))


class PSPNet(SegmentationModel):
    """Encoder -> pyramid pooling -> 3x3 conv -> classifier; ``{"out", "aux"}`` while training with aux."""

    def __init__(self, num_classes: int, encoder: nn.Module, bins: tuple[int, ...], channels: int,
                 aux: bool, norm: str, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.ppm = PyramidPooling(encoder.channels[-1], bins, norm)
        self.head = _fcn_head(self.ppm.out_channels, channels, num_classes, norm, dropout)
        self.aux_head = (_fcn_head(encoder.channels[-2], channels // 2, num_classes, norm, dropout)
                         if aux else None)
        self.stride = max(encoder.strides)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        feats = self.encoder(x)
        out = resize(self.head(self.run(self.ppm, feats[-1])), x.shape[-2:])
        if self.aux_head is not None and self.training:
            return {"out": out, "aux": resize(self.aux_head(feats[-2]), x.shape[-2:])}
        return out


@register_model("pspnet", default_input=473)
def pspnet(*, num_classes: int, in_channels: int = 3, encoder: str = "resnet50", output_stride: int = 8,
           bins: tuple[int, ...] = (1, 2, 3, 6), channels: int = 512, aux: bool = True, norm: str = "batch",
           dropout: float = 0.1, pretrained: str | None = None) -> nn.Module:
    """PSPNet; ``aux`` adds the stage-3 auxiliary head (training only); ``pretrained``: local encoder weights."""
    if output_stride not in (8, 16):
        raise ModelError(f"pspnet: output_stride={output_stride} is not supported; use 8 or 16.")
    enc = build_encoder(encoder, in_channels, pretrained=pretrained, output_stride=output_stride)
    return PSPNet(num_classes, enc, tuple(bins), channels, aux, norm, dropout)
