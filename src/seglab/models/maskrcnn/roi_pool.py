"""RoIPool over FPN levels, the quantising baseline RoIAlign replaced (kept for the study guide's comparison)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_pool


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
