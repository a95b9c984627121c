"""Swin-UNet / Swin-UNETR in 2D (Cao et al., 2021, arXiv:2105.05537; Hatamizadeh et al., 2022,
arXiv:2201.01266): a Swin Transformer encoder (timm) feeding a convolutional U-Net decoder.

The encoder's four stages (strides 4..32) become skips; two skip-less decoder blocks bring the result
back to full resolution. Inputs of any size are padded to a multiple of 32 (windows are padded inside).
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.models.encoders import build_encoder
from seglab.models.registry import register_model
from seglab.models.unet import EncoderUNet, UNetDecoder


class SwinUNet(EncoderUNet):
    """Swin encoder -> ``UNetDecoder`` -> 1x1 classifier (an :class:`EncoderUNet` with a Swin encoder)."""

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # Unlike EncoderUNet, the decoder runs through self.run so gradient checkpointing covers it too.
        return self.head(self.run(self.decoder, self.encoder(x)))


@register_model("swin_unet", default_input=224)
def swin_unet(*, num_classes: int, in_channels: int = 3, encoder: str = "swin_tiny_patch4_window7_224",
              embed_dim: int | None = None, depths: tuple[int, ...] | None = None,
              num_heads: tuple[int, ...] | None = None, window_size: int | None = None,
              base_channels: int = 64, upsample: str = "bilinear_conv", norm: str = "batch",
              pretrained: str | None = None) -> nn.Module:
    """Swin-UNet; ``embed_dim``/``depths``/``num_heads``/``window_size`` override the timm Swin variant.

    ``base_channels`` sets the decoder width (block at stride s: ``base_channels * s / 4``).
    """
    overrides = {"embed_dim": embed_dim, "depths": depths, "num_heads": num_heads, "window_size": window_size}
    timm_options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    enc = build_encoder(encoder, in_channels, pretrained=pretrained, **timm_options)
    dec = UNetDecoder(enc.channels, enc.strides, base_channels, upsample, "concat", norm)
    return SwinUNet(num_classes, enc, dec)
