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
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d, MultiScaleRoIAlign, roi_pool
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from seglab.errors import ModelError
from seglab.models.registry import register_model

# The CPU recipe of issue 9 (from-scratch ResNet-18, 96-channel FPN, 64 sampled RoIs, 2-layer mask head):
# the small variants default to it; torchvision's sizes (256 channels, 512 RoIs, 4 layers) are ~4x slower.
SMALL = {"fpn_channels": 96, "box_batch_size_per_image": 64, "mask_head_layers": 2}
SMALL_ANCHORS = (16, 32, 64, 128, 256)
COCO_ANCHORS = (32, 64, 128, 256, 512)
RATIOS = (0.5, 1.0, 2.0)
_PREDICTOR_KEYS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")


class MultiScaleRoIPool(MultiScaleRoIAlign):
    """RoIPool (Girshick, Fast R-CNN, 2015) over FPN levels, a drop-in for ``MultiScaleRoIAlign``.

    Boxes are assigned to levels by the FPN rule k = floor(4 + log2(sqrt(wh) / 224)) (Lin et al. 2017,
    eq. 1); RoIPool then snaps each box and bin to the feature grid, the quantisation RoIAlign removes.
    It subclasses ``MultiScaleRoIAlign`` only because torchvision's ``MaskRCNN`` checks that type.
    """

    def __init__(self, featmap_names: Sequence[str], output_size: int, sampling_ratio: int = 0) -> None:
        super().__init__(list(featmap_names), output_size, sampling_ratio)  # RoIPool takes no samples

    def forward(self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """Pool (sum over images of N_i boxes, C, S, S) features for ``boxes`` (XYXY, input pixels)."""
        feats = [x[k] for k in self.featmap_names]
        size = max(s[0] for s in image_shapes)
        scales = [2.0 ** round(math.log2(f.shape[-2] / size)) for f in feats]
        k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])
        wh = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).clamp(min=1e-6).sqrt()
        levels = torch.floor(4 + torch.log2(wh / 224) + 1e-6).clamp(k_min, k_max) - k_min
        size_hw = tuple(self.output_size)
        out = feats[0].new_zeros((len(rois), feats[0].shape[1], *size_hw))
        for level, (feat, scale) in enumerate(zip(feats, scales, strict=True)):
            idx = torch.where(levels == level)[0]
            if len(idx):
                out[idx] = roi_pool(feat, rois[idx], size_hw, scale).to(out.dtype)
        return out


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


def _read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pretrained={str(path)!r}: file not found. Give a local .pt/.pth weight file; "
                         "seglab never downloads weights.")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign or truncated files
        raise ModelError(f"{path}: cannot read weights ({type(e).__name__}: {e}).") from e
    for key in ("model_state", "state_dict", "model"):  # seglab checkpoints and common wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ModelError(f"{path}: not a state dict of tensors.")
    return sd


def _load_checked(module: nn.Module, sd: dict[str, torch.Tensor], source: str,
                  ignore: tuple[str, ...] = (), reinit: tuple[str, ...] = ()) -> None:
    """Load with a strict key check; ``ignore``: keys left out (a classifier); ``reinit``: may differ in shape."""
    own = module.state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith(ignore) and not k.endswith("num_batches_tracked")}
    own_keys = {k for k in own if not k.startswith(ignore) and not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(own_keys - set(sd)), sorted(set(sd) - own_keys)
    bad = [k for k in own_keys & set(sd) if own[k].shape != sd[k].shape and not k.startswith(reinit)]
    if missing or unexpected or bad:
        raise ModelError(f"{source}: weights do not fit this model: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, wrong shapes {bad[:5]}. Use weights of the same architecture.")
    keep = {k: v for k, v in sd.items() if own[k].shape == v.shape}
    module.load_state_dict(keep, strict=False)


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


def _build_maskrcnn(backbone: nn.Module, num_levels: int, num_classes: int, *, anchor_sizes: Sequence[int],
                    aspect_ratios: Sequence[float], min_size: int, max_size: int, roi: str,
                    box_batch_size_per_image: int, mask_head_layers: int, box_head_dim: int = 1024,
                    heads: str = "v1") -> MaskRCNN:
    """Assemble RPN, RoI pooling and the box/mask heads around ``backbone`` (FPN maps "0".., "pool")."""
    if num_classes < 2:
        raise ModelError(f"Expected `num_classes` >= 2 (background + at least one class), but got {num_classes}.")
    if roi not in ("align", "pool"):
        raise ModelError(f"Expected `roi` to be 'align' or 'pool', but got {roi!r}.")
    if len(anchor_sizes) != num_levels + 1:
        raise ModelError(f"Expected {num_levels + 1} `anchor_sizes` (one per FPN map, finest first), but got "
                         f"{list(anchor_sizes)}.")
    if mask_head_layers < 1 or box_batch_size_per_image < 1:
        raise ModelError("Expected `mask_head_layers` and `box_batch_size_per_image` >= 1, but got "
                         f"{mask_head_layers} and {box_batch_size_per_image}.")
    c, names = backbone.out_channels, [str(i) for i in range(num_levels)]
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes))
    pool = MultiScaleRoIAlign if roi == "align" else MultiScaleRoIPool
    norm = nn.BatchNorm2d if heads == "v2" else None
    if heads == "v2":  # the v2 recipe (Li et al. 2021, "Benchmarking detection transfer learning with ViTs")
        box_head = FastRCNNConvFCHead((c, 7, 7), [c] * 4, [box_head_dim], norm_layer=norm)
    else:
        box_head = TwoMLPHead(c * 7 * 7, box_head_dim)
    return MaskRCNN(
        backbone, min_size=min_size, max_size=max_size, rpn_anchor_generator=anchors,
        rpn_head=RPNHead(c, anchors.num_anchors_per_location()[0], conv_depth=2 if heads == "v2" else 1),
        box_roi_pool=pool(names, 7, 2), box_head=box_head, box_predictor=FastRCNNPredictor(box_head_dim, num_classes),
        box_batch_size_per_image=box_batch_size_per_image,
        mask_roi_pool=pool(names, 14, 2), mask_head=MaskRCNNHeads(c, [c] * mask_head_layers, 1, norm_layer=norm),
        mask_predictor=MaskRCNNPredictor(c, c, num_classes))


def _finish(model: MaskRCNN, weights: dict | None, pretrained: str | None) -> MaskRCNN:
    if _is_detector(weights):
        _load_checked(model, weights, str(pretrained), reinit=_PREDICTOR_KEYS)
    return model


def _is_detector(weights: dict | None) -> bool:
    return weights is not None and any(k.startswith("backbone.") for k in weights)


def _resnet_maskrcnn(depth: int, num_classes: int, *, pretrained: str | None, trainable_layers: int | None,
                     fpn_channels: int, heads: str = "v1", **options: object) -> MaskRCNN:
    weights = _read_weights(pretrained) if pretrained else None
    norm = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    trunk = getattr(torchvision.models, f"resnet{depth}")(weights=None, norm_layer=norm)
    if weights is not None and not _is_detector(weights):
        _load_checked(trunk, weights, str(pretrained), ignore=("fc.",))
    _freeze_resnet(trunk, _trainable(trainable_layers, pretrained, 5))
    chans = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    backbone = BackboneWithFPN(trunk, {f"layer{i + 1}": str(i) for i in range(4)}, chans, fpn_channels,
                               extra_blocks=LastLevelMaxPool(), norm_layer=nn.BatchNorm2d if heads == "v2" else None)
    return _finish(_build_maskrcnn(backbone, 4, num_classes, heads=heads, **options), weights, pretrained)


@register_model("maskrcnn_resnet50_fpn", task="instance", default_input=800)
def maskrcnn_resnet50_fpn(*, num_classes: int, anchor_sizes: Sequence[int] = COCO_ANCHORS,
                          aspect_ratios: Sequence[float] = RATIOS, min_size: int = 800, max_size: int = 1333,
                          roi: str = "align", fpn_channels: int = 256, box_batch_size_per_image: int = 512,
                          mask_head_layers: int = 4, pretrained: str | None = None,
                          trainable_layers: int | None = None) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN, the paper's configuration (torchvision's v1 heads)."""
    return _resnet_maskrcnn(50, num_classes, **_kw(locals()))


@register_model("maskrcnn_resnet50_fpn_v2", task="instance", default_input=800)
def maskrcnn_resnet50_fpn_v2(*, num_classes: int, anchor_sizes: Sequence[int] = COCO_ANCHORS,
                             aspect_ratios: Sequence[float] = RATIOS, min_size: int = 800, max_size: int = 1333,
                             roi: str = "align", fpn_channels: int = 256, box_batch_size_per_image: int = 512,
                             mask_head_layers: int = 4, pretrained: str | None = None,
                             trainable_layers: int | None = None) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN v2: BatchNorm FPN/heads, 2-conv RPN head, 4-conv+1-FC box head."""
    return _resnet_maskrcnn(50, num_classes, heads="v2", **_kw(locals()))


@register_model("maskrcnn_resnet18_fpn", task="instance", default_input=320)
def maskrcnn_resnet18_fpn(*, num_classes: int, anchor_sizes: Sequence[int] = SMALL_ANCHORS,
                          aspect_ratios: Sequence[float] = RATIOS, min_size: int = 320, max_size: int = 512,
                          roi: str = "align", fpn_channels: int = SMALL["fpn_channels"],
                          box_batch_size_per_image: int = SMALL["box_batch_size_per_image"],
                          mask_head_layers: int = SMALL["mask_head_layers"], pretrained: str | None = None,
                          trainable_layers: int | None = None) -> MaskRCNN:
    """Mask R-CNN ResNet-18-FPN for CPU work; defaults are the issue-9 recipe (pass min/max_size=128 there)."""
    return _resnet_maskrcnn(18, num_classes, **_kw(locals()))


@register_model("maskrcnn_resnet34_fpn", task="instance", default_input=320)
def maskrcnn_resnet34_fpn(*, num_classes: int, anchor_sizes: Sequence[int] = SMALL_ANCHORS,
                          aspect_ratios: Sequence[float] = RATIOS, min_size: int = 320, max_size: int = 512,
                          roi: str = "align", fpn_channels: int = SMALL["fpn_channels"],
                          box_batch_size_per_image: int = SMALL["box_batch_size_per_image"],
                          mask_head_layers: int = SMALL["mask_head_layers"], pretrained: str | None = None,
                          trainable_layers: int | None = None) -> MaskRCNN:
    """Mask R-CNN ResNet-34-FPN for CPU work (small-variant defaults)."""
    return _resnet_maskrcnn(34, num_classes, **_kw(locals()))


@register_model("maskrcnn_mobilenet_v3_fpn", task="instance", default_input=320)
def maskrcnn_mobilenet_v3_fpn(*, num_classes: int, anchor_sizes: Sequence[int] = SMALL_ANCHORS[1:],
                              aspect_ratios: Sequence[float] = RATIOS, min_size: int = 320, max_size: int = 512,
                              roi: str = "align", fpn_channels: int = SMALL["fpn_channels"],
                              box_batch_size_per_image: int = SMALL["box_batch_size_per_image"],
                              mask_head_layers: int = SMALL["mask_head_layers"], pretrained: str | None = None,
                              trainable_layers: int | None = None) -> MaskRCNN:
    """Mask R-CNN on MobileNetV3-Large (Howard et al. 2019) with an FPN on its stride 8/16/32 outputs."""
    kw = _kw(locals())
    weights = _read_weights(pretrained) if pretrained else None
    net = torchvision.models.mobilenet_v3_large(weights=None, norm_layer=FrozenBatchNorm2d if pretrained else None)
    if weights is not None and not _is_detector(weights):
        _load_checked(net, weights, str(pretrained), ignore=("classifier.",))
    feats = net.features
    starts = [0, *(i for i, b in enumerate(feats) if getattr(b, "_is_cn", False)), len(feats) - 1]
    n = _trainable(kw.pop("trainable_layers"), pretrained, len(starts) - 1)
    for p in feats[: starts[len(starts) - 1 - n]].parameters():
        p.requires_grad_(False)
    outs = {"6": "0", "12": "1", "16": "2"}  # last blocks at strides 8, 16, 32 (40, 112, 960 channels)
    backbone = BackboneWithFPN(feats, outs, [40, 112, 960], kw.pop("fpn_channels"), extra_blocks=LastLevelMaxPool())
    kw.pop("pretrained")
    return _finish(_build_maskrcnn(backbone, 3, num_classes, **kw), weights, pretrained)


@register_model("maskrcnn_timm", task="instance", default_input=320)
def maskrcnn_timm(*, num_classes: int, encoder: str = "resnet18", out_indices: Sequence[int] = (1, 2, 3, 4),
                  anchor_sizes: Sequence[int] | None = None, aspect_ratios: Sequence[float] = RATIOS,
                  min_size: int = 320, max_size: int = 512, roi: str = "align",
                  fpn_channels: int = SMALL["fpn_channels"],
                  box_batch_size_per_image: int = SMALL["box_batch_size_per_image"],
                  mask_head_layers: int = SMALL["mask_head_layers"], pretrained: str | None = None) -> MaskRCNN:
    """Mask R-CNN on any timm encoder (``features_only``) + FPN; ``anchor_sizes`` default 16, 32, ... per map.

    ``pretrained``: timm weights of ``encoder`` (BatchNorm then frozen) or a whole detector's weights.
    """
    kw = _kw(locals())
    import timm

    weights = _read_weights(pretrained) if pretrained else None
    try:
        enc = timm.create_model(encoder, pretrained=False, features_only=True, out_indices=tuple(out_indices))
    except (RuntimeError, ValueError, IndexError) as e:
        raise ModelError(f"timm encoder {encoder!r} with out_indices={list(out_indices)}: {e}. "
                         "List names with timm.list_models().") from e
    if weights is not None and not _is_detector(weights):
        _load_timm(enc, encoder, str(pretrained))
    backbone = TimmFPN(enc, kw.pop("fpn_channels"))
    levels = len(out_indices)
    kw["anchor_sizes"] = anchor_sizes or tuple(16 * 2**i for i in range(levels + 1))
    for k in ("encoder", "out_indices", "pretrained"):
        kw.pop(k)
    return _finish(_build_maskrcnn(backbone, levels, num_classes, **kw), weights, pretrained)


def _load_timm(enc: nn.Module, encoder: str, pretrained: str) -> None:
    """Let timm map a classification checkpoint onto the feature extractor, then freeze its BatchNorm."""
    import timm
    from timm.layers import freeze_batch_norm_2d

    try:
        full = timm.create_model(encoder, pretrained=True, features_only=True,
                                 out_indices=enc.feature_info.out_indices,
                                 pretrained_cfg_overlay={"file": pretrained})
    except (RuntimeError, KeyError) as e:
        raise ModelError(f"{pretrained}: weights do not fit timm encoder {encoder!r}: {e}") from e
    enc.load_state_dict(full.state_dict())
    freeze_batch_norm_2d(enc)


def _kw(local: dict) -> dict:
    """A builder's arguments minus ``num_classes`` (builders pass them on by name)."""
    return {k: v for k, v in local.items() if k != "num_classes"}
