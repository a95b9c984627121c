"""Backbones + FPN for Mask R-CNN (Lin et al., "Feature Pyramid Networks", CVPR 2017, arXiv:1612.03144).

Each builder returns ``(backbone, levels)``: a module mapping (N, 3, H, W) to FPN maps ``"0".."levels-1"``
and ``"pool"``, with ``out_channels``, as torchvision's ``MaskRCNN`` expects. Without pretrained weights the
BatchNorm layers are ordinary and trainable (see the package docstring for why).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from seglab.errors import ModelError
from seglab.models.maskrcnn.weights import load_checked, load_timm


class TimmFPN(nn.Module):
    """A timm ``features_only`` encoder followed by an FPN, with the ``out_channels`` torchvision expects."""

    def __init__(self, encoder: nn.Module, fpn_channels: int, norm_layer: Callable | None = None) -> None:
        super().__init__()
        self.body = encoder
        self.fpn = FeaturePyramidNetwork(encoder.feature_info.channels(), fpn_channels,
                                         extra_blocks=LastLevelMaxPool(), norm_layer=norm_layer)
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> FPN maps ``"0".."L-1"`` and ``"pool"`` (C = ``fpn_channels``)."""
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.body(x))))


def resnet_fpn(depth: int, fpn_channels: int, pretrained: str | None, weights: dict | None,
               trainable_layers: int | None, heads: str) -> tuple[nn.Module, int]:
    """torchvision ResNet (He et al. 2016) + FPN on layer1..4; BatchNorm frozen only under pretrained weights."""
    norm = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    trunk = getattr(torchvision.models, f"resnet{depth}")(weights=None, norm_layer=norm)
    if weights is not None:
        load_checked(trunk, weights, str(pretrained), ignore=("fc.",))
    _freeze_resnet(trunk, _trainable(trainable_layers, pretrained, 5))
    chans = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    backbone = BackboneWithFPN(trunk, {f"layer{i + 1}": str(i) for i in range(4)}, chans, fpn_channels,
                               extra_blocks=LastLevelMaxPool(), norm_layer=nn.BatchNorm2d if heads == "v2" else None)
    return backbone, 4


def mobilenet_fpn(fpn_channels: int, pretrained: str | None, weights: dict | None,
                  trainable_layers: int | None) -> tuple[nn.Module, int]:
    """MobileNetV3-Large (Howard et al. 2019) + FPN on its stride 8/16/32 outputs."""
    net = torchvision.models.mobilenet_v3_large(weights=None, norm_layer=FrozenBatchNorm2d if pretrained else None)
    if weights is not None:
        load_checked(net, weights, str(pretrained), ignore=("classifier.",))
    feats = net.features
    starts = [0, *(i for i, b in enumerate(feats) if getattr(b, "_is_cn", False)), len(feats) - 1]
    n = _trainable(trainable_layers, pretrained, len(starts) - 1)
    for p in feats[: starts[len(starts) - 1 - n]].parameters():
        p.requires_grad_(False)
    outs = {"6": "0", "12": "1", "16": "2"}  # last blocks at strides 8, 16, 32 (40, 112, 960 channels)
    return BackboneWithFPN(feats, outs, [40, 112, 960], fpn_channels, extra_blocks=LastLevelMaxPool()), 3


def timm_fpn(encoder: str, out_indices: Sequence[int], fpn_channels: int,
             pretrained: str | None) -> tuple[nn.Module, int]:
    """A timm ``features_only`` encoder + FPN; ``pretrained``: that encoder's classification weights."""
    import timm

    try:
        enc = timm.create_model(encoder, pretrained=False, features_only=True, out_indices=tuple(out_indices))
    except (RuntimeError, ValueError, IndexError) as e:
        raise ModelError(f"timm encoder {encoder!r} with out_indices={list(out_indices)}: {e}. "
                         "List names with timm.list_models().") from e
    if pretrained is not None:
        load_timm(enc, encoder, pretrained)
    return TimmFPN(enc, fpn_channels), len(out_indices)


def _freeze_resnet(trunk: nn.Module, trainable_layers: int) -> None:
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, p in trunk.named_parameters():
        p.requires_grad_(any(name.startswith(t) for t in train))


def _trainable(trainable_layers: int | None, pretrained: str | None, most: int) -> int:
    n = (3 if pretrained else most) if trainable_layers is None else trainable_layers
    if not 0 <= n <= most:
        raise ModelError(f"Expected `trainable_layers` in 0..{most}, but got {trainable_layers}.")
    return n
