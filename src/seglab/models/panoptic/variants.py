"""The registered panoptic models: Panoptic FPN variants over one builder, and the merge of two trained models.

Every Panoptic FPN variant takes the options of the Mask R-CNN variant it extends (same defaults: the CPU
recipe for ResNet-18 and MobileNetV3, the paper's sizes for ResNet-50) plus the panoptic ones, listed first.
``num_classes`` (K panoptic classes) defaults to COCO panoptic's 133 (80 things + 53 stuff), the count
``seglab models`` lists them at; ``thing_classes`` has no default and must be given.

Semantic branch width: the paper's 128 channels for ResNet-50 (on a 256-channel FPN); 64 for the CPU
variants, whose FPN has only 96 channels for the branch to read. Measured at 320x480 (2 CPU threads): at 128
channels the branch costs 4.4 GFLOPs (40 % of the ResNet-18 trunk's 11.1) and 0.89 M parameters, at 64 it
costs 1.8 GFLOPs and 0.33 M, and a 2-image training step takes 0.51 s instead of 0.56 s.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import (
    Callable,
    Mapping,
    Sequence,  # noqa: F401  (the Mask R-CNN option annotations name it)
)
from typing import Any

from seglab.errors import ModelError
from seglab.models.maskrcnn import COCO, CPU, MOBILE, OPTION_TYPES, build_maskrcnn
from seglab.models.panoptic.fpn import PanopticFPN, check_thing_classes
from seglab.models.panoptic.merged_pair import MergedPanoptic
from seglab.models.registry import build_model, get_entry, register_model

COCO_PANOPTIC_CLASSES = 133
MERGE = {"score_threshold": 0.5, "overlap_threshold": 0.5, "stuff_area": 128}  # the contract's defaults
PANOPTIC = {"thing_classes": None, "semantic_channels": 64, "semantic_loss_weight": 0.5, **MERGE}
PANOPTIC_TYPES = {"thing_classes": "list[int] | None", "semantic_channels": "int", "semantic_loss_weight": "float",
                  "score_threshold": "float", "overlap_threshold": "float", "stuff_area": "int", **OPTION_TYPES}
CPU_FPN = {**PANOPTIC, **CPU}
PAPER_FPN = {**PANOPTIC, "semantic_channels": 128, **COCO}
MOBILE_FPN = {**PANOPTIC, **MOBILE}


def _options(defaults: Mapping[str, object]) -> Callable[[Callable[..., PanopticFPN]], Callable[..., PanopticFPN]]:
    """The builder's real keyword signature ``(num_classes=133, *, **defaults)``, annotated so ``build_model``
    type-checks each option (``thing_classes=0,3`` from the command line becomes ``[0, 3]``)."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("num_classes", kw, default=COCO_PANOPTIC_CLASSES, annotation="int"),
              *(inspect.Parameter(k, kw, default=v, annotation=PANOPTIC_TYPES[k]) for k, v in defaults.items())]
    sig = inspect.Signature(params, return_annotation="PanopticFPN")

    def deco(fn: Callable[..., PanopticFPN]) -> Callable[..., PanopticFPN]:
        @functools.wraps(fn)
        def builder(*args: Any, **kwargs: Any) -> PanopticFPN:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return fn(**bound.arguments)

        builder.__signature__ = sig  # type: ignore[attr-defined]
        builder.__annotations__ = {p.name: p.annotation for p in params} | {"return": "PanopticFPN"}
        return builder

    return deco


def build_panoptic_fpn(backbone: str, *, num_classes: int, thing_classes: list[int] | None, semantic_channels: int,
                       semantic_loss_weight: float, score_threshold: float, overlap_threshold: float,
                       stuff_area: int, **maskrcnn_options: Any) -> PanopticFPN:
    """The one builder behind every variant: a Mask R-CNN over the thing classes (+ background), then the branch.

    ``backbone`` and ``maskrcnn_options`` as for :func:`seglab.models.maskrcnn.build_maskrcnn` (``pretrained``
    whole-detector weights of a Mask R-CNN with the same thing count load into the detector).
    """
    things = check_thing_classes(thing_classes, num_classes)
    detector = build_maskrcnn(backbone, num_classes=len(things) + 1, **maskrcnn_options)
    return PanopticFPN(detector, num_classes, things, semantic_channels=semantic_channels,
                       semantic_loss_weight=semantic_loss_weight, score_threshold=score_threshold,
                       overlap_threshold=overlap_threshold, stuff_area=stuff_area)


@register_model("panoptic_fpn_resnet18", task="panoptic", default_input=320)
@_options(CPU_FPN)
def panoptic_fpn_resnet18(**options: Any) -> PanopticFPN:
    """Panoptic FPN on ResNet-18 for CPU work: maskrcnn_resnet18_fpn's recipe + a 64-channel semantic branch."""
    return build_panoptic_fpn("resnet18", **options)


@register_model("panoptic_fpn_resnet50", task="panoptic", default_input=800)
@_options(PAPER_FPN)
def panoptic_fpn_resnet50(**options: Any) -> PanopticFPN:
    """Panoptic FPN ResNet-50, the paper's sizes (256-channel FPN, 128-channel semantic branch, 800 px)."""
    return build_panoptic_fpn("resnet50", **options)


@register_model("panoptic_fpn_mobilenet_v3", task="panoptic", default_input=320)
@_options(MOBILE_FPN)
def panoptic_fpn_mobilenet_v3(**options: Any) -> PanopticFPN:
    """Panoptic FPN on MobileNetV3-Large: its FPN starts at stride 8, so the branch upsamples 8x at the end."""
    return build_panoptic_fpn("mobilenet_v3_large", **options)


def _sub_model(spec: Any, option: str, task: str, num_classes: int | None = None) -> Any:
    """Build the sub-model ``spec`` ({name, num_classes, options}) names; a ``ModelError`` naming ``option``."""
    name = "unet" if task == "semantic" else "maskrcnn_resnet18_fpn"
    example = f"e.g. {option}={{'name': '{name}', 'num_classes': 21, 'options': {{}}}}"
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(
            spec.get("num_classes"), int) or not isinstance(spec.get("options") or {}, dict):
        raise ModelError(f"model option `{option}` must be the {task} model's {{name, num_classes, options}}; got "
                         f"{spec!r} ({example}).")
    found = get_entry(spec["name"]).task
    if found != task:
        raise ModelError(f"model option `{option}` names {spec['name']!r}, a model of task {found!r}; it must be "
                         f"a model of task {task!r} ({example}).")
    if num_classes is not None and spec["num_classes"] != num_classes:
        raise ModelError(f"model option `{option}`: the semantic model has {spec['num_classes']} classes but the "
                         f"panoptic model {num_classes}; it must predict the K panoptic classes.")
    options = dict(spec.get("options") or {})
    if task == "semantic" and options.get("in_channels", 3) != 3:
        raise ModelError(f"model option `{option}`: in_channels={options['in_channels']}; panoptic models read RGB.")
    try:
        return build_model(spec["name"], spec["num_classes"], **options)
    except ModelError as e:
        raise ModelError(f"model option `{option}`: {e}") from e


@register_model("panoptic_merge", task="panoptic", default_input=512)
def panoptic_merge(num_classes: int = COCO_PANOPTIC_CLASSES, *, semantic: dict | None = None,
                   instance: dict | None = None, semantic_mean: list[float] | None = None,
                   semantic_std: list[float] | None = None, instance_to_class: list[int] | None = None,
                   thing_classes: list[int] | None = None, score_threshold: float = 0.5,
                   overlap_threshold: float = 0.5, stuff_area: int = 128) -> MergedPanoptic:
    """A semantic and an instance model trained separately, merged as in Kirillov et al. 2019 (arXiv:1801.00868).

    ``semantic`` / ``instance``: ``{name, num_classes, options}`` of each; the semantic model predicts the K
    panoptic classes; ``instance_to_class[l - 1]`` is the class of detector label ``l``. ``seglab merge``
    writes these options from two checkpoints.
    """
    things = check_thing_classes(thing_classes, num_classes)
    sem = _sub_model(semantic, "semantic", "semantic", num_classes)
    det = _sub_model(instance, "instance", "instance")
    mapping = instance_to_class
    if not isinstance(mapping, list) or len(mapping) != instance["num_classes"] - 1:
        raise ModelError(f"model option `instance_to_class` must list the panoptic class of each of the instance "
                         f"model's {instance['num_classes'] - 1} labels (background excluded); got {mapping!r}.")
    return MergedPanoptic(sem, det, thing_classes=things, instance_to_class=mapping,
                          semantic_mean=semantic_mean or (0.0, 0.0, 0.0), semantic_std=semantic_std or (1.0, 1.0, 1.0),
                          score_threshold=score_threshold, overlap_threshold=overlap_threshold, stuff_area=stuff_area)
