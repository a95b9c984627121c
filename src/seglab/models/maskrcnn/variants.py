"""The Mask R-CNN variants as data over one builder: a backbone name and a dict of option defaults each.

``build_maskrcnn`` reads the weights, makes the backbone + FPN (:mod:`.backbones`), assembles the RPN, RoI
pooling and box/mask heads (``_assemble``) and loads whole-detector weights; it is public because Panoptic FPN
(:mod:`seglab.models.panoptic`) builds its detector through it. ``_options`` gives each registered
builder the real keyword signature that ``build_model`` checks and ``seglab models`` lists.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from seglab.errors import ModelError
from seglab.models.maskrcnn.backbones import mobilenet_fpn, resnet_fpn, timm_fpn
from seglab.models.maskrcnn.float32 import float32_heads
from seglab.models.maskrcnn.roi_pool import MultiScaleRoIPool
from seglab.models.maskrcnn.weights import is_detector, load_checked, read_weights
from seglab.models.registry import register_model

SMALL_ANCHORS = (16, 32, 64, 128, 256)
COCO_ANCHORS = (32, 64, 128, 256, 512)
RATIOS = (0.5, 1.0, 2.0)
_PREDICTOR_KEYS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")

# Option defaults of the variants, in the order ``seglab models`` lists them. CPU is the CPU recipe of issue 9
# (from-scratch ResNet-18, 96-channel FPN, 64 sampled RoIs, 2-layer mask head); COCO is torchvision's (and the
# paper's) sizes: 256 channels, 512 RoIs, 4 layers, ~4x slower.
CPU: dict[str, object] = {
    "anchor_sizes": SMALL_ANCHORS, "aspect_ratios": RATIOS, "min_size": 320, "max_size": 512, "roi": "align",
    "fpn_channels": 96, "box_batch_size_per_image": 64, "mask_head_layers": 2, "pretrained": None,
    "trainable_layers": None,
}
COCO = {**CPU, "anchor_sizes": COCO_ANCHORS, "min_size": 800, "max_size": 1333, "fpn_channels": 256,
        "box_batch_size_per_image": 512, "mask_head_layers": 4}
MOBILE = {**CPU, "anchor_sizes": SMALL_ANCHORS[1:]}  # three FPN maps (strides 8/16/32) + pool: four sizes
# timm: any encoder; anchor_sizes None = 16, 32, ... one per map; no trainable_layers (timm names vary).
TIMM = {"encoder": "resnet18", "out_indices": (1, 2, 3, 4),
        **{k: v for k, v in CPU.items() if k != "trainable_layers"}, "anchor_sizes": None}
# The annotation of each option (strings, resolved where a builder is defined; Panoptic FPN reuses them).
OPTION_TYPES = {
    "encoder": "str", "out_indices": "Sequence[int]", "anchor_sizes": "Sequence[int] | None",
    "aspect_ratios": "Sequence[float]", "min_size": "int", "max_size": "int", "roi": "str", "fpn_channels": "int",
    "box_batch_size_per_image": "int", "mask_head_layers": "int", "pretrained": "str | None",
    "trainable_layers": "int | None",
}


def _assemble(backbone: nn.Module, num_levels: int, num_classes: int, *, anchor_sizes: Sequence[int],
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
    return float32_heads(MaskRCNN(
        backbone, min_size=min_size, max_size=max_size, rpn_anchor_generator=anchors,
        rpn_head=RPNHead(c, anchors.num_anchors_per_location()[0], conv_depth=2 if heads == "v2" else 1),
        box_roi_pool=pool(names, 7, 2), box_head=box_head, box_predictor=FastRCNNPredictor(box_head_dim, num_classes),
        box_batch_size_per_image=box_batch_size_per_image,
        mask_roi_pool=pool(names, 14, 2), mask_head=MaskRCNNHeads(c, [c] * mask_head_layers, 1, norm_layer=norm),
        mask_predictor=MaskRCNNPredictor(c, c, num_classes)))


def build_maskrcnn(backbone: str, *, num_classes: int, pretrained: str | None, fpn_channels: int,
           anchor_sizes: Sequence[int] | None, heads: str = "v1", trainable_layers: int | None = None,
           encoder: str = "", out_indices: Sequence[int] = (), **head_options: Any) -> MaskRCNN:
    """The one builder behind every variant: weights, backbone + FPN, heads, then whole-detector weights.

    ``backbone``: ``"resnet<depth>"``, ``"mobilenet_v3_large"`` or ``"timm"`` (``encoder``, ``out_indices``).
    """
    weights = read_weights(pretrained) if pretrained else None
    detector = is_detector(weights)
    trunk_weights = None if detector else weights  # backbone-only (classification) weights load here
    if backbone == "timm":
        body, levels = timm_fpn(encoder, out_indices, fpn_channels, None if trunk_weights is None else str(pretrained))
    elif backbone == "mobilenet_v3_large":
        body, levels = mobilenet_fpn(fpn_channels, pretrained, trunk_weights, trainable_layers)
    else:
        body, levels = resnet_fpn(int(backbone.removeprefix("resnet")), fpn_channels, pretrained, trunk_weights,
                                  trainable_layers, heads)
    if anchor_sizes is None:  # one size per FPN map (and the pool map), 16 px at the finest, doubling
        anchor_sizes = tuple(16 * 2**i for i in range(levels + 1))
    model = _assemble(body, levels, num_classes, anchor_sizes=anchor_sizes, heads=heads, **head_options)
    if detector:
        load_checked(model, weights, str(pretrained), reinit=_PREDICTOR_KEYS)
    return model


def _options(defaults: Mapping[str, object]) -> Callable[[Callable[..., MaskRCNN]], Callable[..., MaskRCNN]]:
    """Give a variant builder the real keyword signature ``(*, num_classes, **defaults)``.

    ``build_model`` and ``seglab models`` read a builder's options with ``inspect.signature``; the call binds
    against that same signature, so an unknown option is a ``TypeError`` and the body gets every option.
    """
    kw_only = inspect.Parameter.KEYWORD_ONLY
    sig = inspect.Signature(
        [inspect.Parameter("num_classes", kw_only, annotation="int"),
         *(inspect.Parameter(k, kw_only, default=v, annotation=OPTION_TYPES[k]) for k, v in defaults.items())],
        return_annotation="MaskRCNN")

    def deco(fn: Callable[..., MaskRCNN]) -> Callable[..., MaskRCNN]:
        @functools.wraps(fn)
        def builder(*args: Any, **kwargs: Any) -> MaskRCNN:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return fn(**bound.arguments)

        builder.__signature__ = sig  # type: ignore[attr-defined]
        return builder

    return deco


@register_model("maskrcnn_resnet50_fpn", task="instance", default_input=800)
@_options(COCO)
def maskrcnn_resnet50_fpn(**options: Any) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN, the paper's configuration (torchvision's v1 heads)."""
    return build_maskrcnn("resnet50", **options)


@register_model("maskrcnn_resnet50_fpn_v2", task="instance", default_input=800)
@_options(COCO)
def maskrcnn_resnet50_fpn_v2(**options: Any) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN v2 (Li et al. 2021, "Benchmarking detection transfer learning with ViTs",
    arXiv:2111.11429): BatchNorm FPN/heads, 2-conv RPN head, 4-conv+1-FC box head."""
    return build_maskrcnn("resnet50", heads="v2", **options)


@register_model("maskrcnn_resnet18_fpn", task="instance", default_input=320)
@_options(CPU)
def maskrcnn_resnet18_fpn(**options: Any) -> MaskRCNN:
    """Mask R-CNN ResNet-18-FPN for CPU work; defaults are the issue-9 recipe (pass min/max_size=128 there)."""
    return build_maskrcnn("resnet18", **options)


@register_model("maskrcnn_resnet34_fpn", task="instance", default_input=320)
@_options(CPU)
def maskrcnn_resnet34_fpn(**options: Any) -> MaskRCNN:
    """Mask R-CNN ResNet-34-FPN for CPU work (small-variant defaults)."""
    return build_maskrcnn("resnet34", **options)


@register_model("maskrcnn_mobilenet_v3_fpn", task="instance", default_input=320)
@_options(MOBILE)
def maskrcnn_mobilenet_v3_fpn(**options: Any) -> MaskRCNN:
    """Mask R-CNN on MobileNetV3-Large (Howard et al. 2019) with an FPN on its stride 8/16/32 outputs."""
    return build_maskrcnn("mobilenet_v3_large", **options)


@register_model("maskrcnn_timm", task="instance", default_input=320)
@_options(TIMM)
def maskrcnn_timm(**options: Any) -> MaskRCNN:
    """Mask R-CNN on any timm encoder (``features_only``) + FPN; ``anchor_sizes`` default 16, 32, ... per map.

    ``pretrained``: timm weights of ``encoder`` (BatchNorm then frozen) or a whole detector's weights.
    """
    return build_maskrcnn("timm", **options)
