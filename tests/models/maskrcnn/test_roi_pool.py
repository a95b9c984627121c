"""RoIPool over FPN levels against hand-computed pooling and torchvision's RoIAlign."""

from __future__ import annotations

import math

import torch
from torchvision.ops import MultiScaleRoIAlign

import seglab.models.maskrcnn as mr


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

