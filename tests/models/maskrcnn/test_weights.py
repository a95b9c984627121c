"""Local pretrained weights: backbone, whole-detector and timm weight files load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

import seglab.models.maskrcnn as mr
from seglab.errors import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: extra threads only contend


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
