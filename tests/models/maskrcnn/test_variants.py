"""Mask R-CNN variants: tiny training smoke tests, registry entries and defaults, option checks."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

import seglab.models.maskrcnn as mr
from seglab.errors import ModelError
from seglab.models.registry import MODELS, build_model

S = 48  # image side for the smoke tests
LOSS_KEYS = ["loss_box_reg", "loss_classifier", "loss_mask", "loss_objectness", "loss_rpn_box_reg"]
TINY_R50 = {"fpn_channels": 32, "box_batch_size_per_image": 16, "mask_head_layers": 1}
VARIANTS = [
    ("maskrcnn_resnet18_fpn", {}, 2),
    ("maskrcnn_resnet18_fpn", {"roi": "pool"}, 2),
    ("maskrcnn_resnet34_fpn", {}, 2),
    ("maskrcnn_mobilenet_v3_fpn", {}, 2),
    ("maskrcnn_timm", {"encoder": "resnet10t"}, 2),
    ("maskrcnn_resnet50_fpn", TINY_R50, 1),
    ("maskrcnn_resnet50_fpn_v2", TINY_R50, 1),
]


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: extra threads only contend


def _target() -> dict:
    m = torch.zeros(2, S, S, dtype=torch.uint8)
    m[0, 4:24, 6:30] = 1
    m[1, 28:46, 20:46] = 1
    return {"boxes": torch.tensor([[6.0, 4, 30, 24], [20, 28, 46, 46]]), "labels": torch.tensor([1, 2]), "masks": m}


@pytest.mark.parametrize(("name", "options", "steps"), VARIANTS, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_training_smoke(name: str, options: dict, steps: int) -> None:
    model = build_model(name, 3, min_size=S, max_size=S, **options).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.005, momentum=0.9)
    before = [p.detach().clone() for p in params]
    for _ in range(steps):
        losses = model([torch.rand(3, S, S)], [_target()])
        assert sorted(losses) == LOSS_KEYS
        assert all(torch.isfinite(v) for v in losses.values()), losses
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert sum(not torch.equal(a, b) for a, b in zip(before, params, strict=True)) > len(params) // 2
    model.eval()
    with torch.no_grad():
        [out] = model([torch.rand(3, S, S + 8)])
    n = len(out["boxes"])
    assert out["masks"].shape == (n, 1, S, S + 8) and out["labels"].shape == out["scores"].shape == (n,)


def test_registry_entries() -> None:
    names = {"maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet18_fpn", "maskrcnn_resnet34_fpn",
             "maskrcnn_mobilenet_v3_fpn", "maskrcnn_timm"}
    assert names <= set(MODELS) and all(MODELS[n].task == "instance" for n in names)
    assert {"anchor_sizes", "aspect_ratios", "min_size", "max_size", "roi", "fpn_channels", "pretrained",
            "box_batch_size_per_image", "mask_head_layers"} <= set(MODELS["maskrcnn_timm"].options())


def test_small_variant_defaults_are_the_cpu_recipe() -> None:
    model = mr.maskrcnn_resnet18_fpn(num_classes=4)
    assert model.backbone.out_channels == 96
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    assert len([m for m in model.roi_heads.mask_head if isinstance(m, nn.Module)]) == 2
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    # from scratch: trainable BatchNorm everywhere, nothing frozen
    bns = [m for m in model.backbone.body.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert bns and all(type(m) is nn.BatchNorm2d for m in bns)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("options", "message"), [
    ({"num_classes": 1}, "background"),
    ({"num_classes": 3, "roi": "warp"}, "'align' or 'pool'"),
    ({"num_classes": 3, "anchor_sizes": (16, 32)}, "Expected 5 `anchor_sizes`"),
    ({"num_classes": 3, "trainable_layers": 7}, "trainable_layers"),
])
def test_bad_options_raise_model_errors(options: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        mr.maskrcnn_resnet18_fpn(**options)


def test_builders_have_real_signatures() -> None:
    # `seglab models` and build_model read options from the signature; direct calls bind against it
    assert list(inspect.signature(mr.maskrcnn_timm).parameters) == ["num_classes", *mr.TIMM]
    assert MODELS["maskrcnn_resnet18_fpn"].options() == mr.CPU
    assert MODELS["maskrcnn_resnet50_fpn"].options()["fpn_channels"] == 256
    assert MODELS["maskrcnn_mobilenet_v3_fpn"].options()["anchor_sizes"] == (32, 64, 128, 256)
    with pytest.raises(TypeError, match="widht"):
        mr.maskrcnn_resnet18_fpn(num_classes=2, widht=8)
    with pytest.raises(ModelError, match="no option.*trainable_layers"):
        build_model("maskrcnn_timm", 2, trainable_layers=1)


def test_box_steps_run_in_float32_under_bf16_autocast() -> None:
    """bf16 stores a coordinate near 300 px to 2 px: the RPN and RoI heads must not compute in it."""
    from seglab.models.maskrcnn.float32 import Float32RoIHeads, Float32RPN

    torch.manual_seed(0)
    model = build_model("maskrcnn_resnet18_fpn", 3, min_size=S, max_size=S)
    assert isinstance(model.rpn, Float32RPN) and isinstance(model.roi_heads, Float32RoIHeads)
    plain = build_model("maskrcnn_resnet18_fpn", 3, min_size=S, max_size=S)
    assert list(model.state_dict()) == list(plain.state_dict())  # same keys: checkpoints unchanged
    seen: dict[str, torch.dtype] = {}
    model.backbone.register_forward_hook(lambda m, i, o: seen.setdefault("fpn", o["0"].dtype) and None)
    model.roi_heads.box_predictor.register_forward_hook(lambda m, i, o: seen.setdefault("box", o[1].dtype) and None)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model([torch.rand(3, S, S)], [_target()])
    assert seen == {"fpn": torch.bfloat16, "box": torch.float32}  # backbone in bf16, boxes in float32
    assert all(torch.isfinite(v) for v in losses.values())
