"""Mask R-CNN variants: tiny training smoke tests, RoIPool, weights loading, option checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

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


def test_roi_pool_quantises_where_roi_align_interpolates() -> None:
    feat = torch.arange(16.0).reshape(1, 1, 4, 4)
    boxes = [torch.tensor([[0.0, 0.0, 3.0, 3.0]])]
    pool = mr.MultiScaleRoIPool(["0"], 2)
    assert isinstance(pool, MultiScaleRoIAlign)
    # RoIPool: the box covers pixels 0..3 on both axes, 2x2 bins, max per bin (hand-computed)
    out = pool({"0": feat}, boxes, [(4, 4)])
    assert out.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]
    align = MultiScaleRoIAlign(["0"], 2, 1)({"0": feat}, boxes, [(4, 4)])
    # RoIAlign (aligned=False): one bilinear sample per bin centre, x, y in {0.75, 2.25}; feat = 4y + x
    assert align.tolist() == [[[[3.75, 5.25], [9.75, 11.25]]]]


def test_roi_pool_assigns_fpn_levels() -> None:
    # two levels at strides 1 and 2; a 224-px box goes to level k0=4 -> clamped to the coarsest level here
    feats = {"0": torch.zeros(1, 1, 256, 256), "1": torch.ones(1, 1, 128, 128)}
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 224.0, 224.0]])]
    out = mr.MultiScaleRoIPool(["0", "1"], 2)(feats, boxes, [(256, 256)])
    levels = [math.floor(4 + math.log2(8 / 224)), math.floor(4 + math.log2(224 / 224))]
    assert levels == [-1, 4]  # both outside [0, 1]: clamped to 0 (zeros) and 1 (ones)
    assert out[0].abs().sum() == 0 and torch.all(out[1] == 1)


def test_backbone_weights_load_strictly(tmp_path: Path) -> None:
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    model = mr.maskrcnn_resnet18_fpn(num_classes=2, pretrained=str(path))
    torch.testing.assert_close(model.backbone.body.layer3[0].conv1.weight, net.layer3[0].conv1.weight)
    torch.testing.assert_close(model.backbone.body.bn1.running_var, net.bn1.running_var)
    assert isinstance(model.backbone.body.bn1, FrozenBatchNorm2d)  # pretrained statistics stay fixed
    trainable = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad and ".body." in n}
    assert trainable == {"layer2", "layer3", "layer4"}  # trainable_layers defaults to 3 with weights
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ModelError, match="do not fit"):
        mr.maskrcnn_resnet18_fpn(num_classes=2, pretrained=str(tmp_path / "r34.pth"))
    with pytest.raises(ModelError, match="not found"):
        mr.maskrcnn_resnet18_fpn(num_classes=2, pretrained=str(tmp_path / "none.pth"))


def test_detector_weights_load_with_new_class_count(tmp_path: Path) -> None:
    src = mr.maskrcnn_mobilenet_v3_fpn(num_classes=3)
    path = tmp_path / "det.pt"
    torch.save({"model_state": src.state_dict()}, path)  # a seglab checkpoint layout
    model = mr.maskrcnn_mobilenet_v3_fpn(num_classes=5, pretrained=str(path))
    torch.testing.assert_close(model.backbone.fpn.layer_blocks[0][0].weight, src.backbone.fpn.layer_blocks[0][0].weight)
    torch.testing.assert_close(model.roi_heads.mask_head[0][0].weight, src.roi_heads.mask_head[0][0].weight)
    assert model.roi_heads.box_predictor.cls_score.out_features == 5  # class-specific layers start fresh
    with pytest.raises(ModelError, match="do not fit"):
        mr.maskrcnn_resnet18_fpn(num_classes=3, pretrained=str(path))


@pytest.mark.parametrize(("options", "message"), [
    ({"num_classes": 1}, "background"),
    ({"num_classes": 3, "roi": "warp"}, "'align' or 'pool'"),
    ({"num_classes": 3, "anchor_sizes": (16, 32)}, "Expected 5 `anchor_sizes`"),
    ({"num_classes": 3, "trainable_layers": 7}, "trainable_layers"),
])
def test_bad_options_raise_model_errors(options: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        mr.maskrcnn_resnet18_fpn(**options)


def test_timm_encoder_weights_load_from_a_local_file(tmp_path: Path) -> None:
    import timm

    net = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "r10t.pth"
    torch.save(net.state_dict(), path)
    model = mr.maskrcnn_timm(num_classes=2, encoder="resnet10t", pretrained=str(path))
    torch.testing.assert_close(model.backbone.body.layer2[0].conv1.weight, net.layer2[0].conv1.weight)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.body.modules())  # frozen
    with pytest.raises(ModelError, match="do not fit"):
        mr.maskrcnn_timm(num_classes=2, encoder="resnet18", pretrained=str(path))
