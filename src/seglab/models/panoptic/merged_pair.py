"""A semantic model and an instance model, trained separately, merged into panoptic predictions.

This is the baseline of Kirillov et al., "Panoptic Segmentation" (CVPR 2019, arXiv:1801.00868), sec. 7: the
outputs of independent semantic and instance models combined by the heuristics Panoptic FPN uses too
(:func:`.merge_heuristics.combine`). It lets the models seglab already trains give panoptic output without training
anything new, and is the reference a jointly trained :class:`~seglab.models.panoptic.fpn.PanopticFPN` should
beat. ``seglab merge`` (:func:`seglab.inference.merge_runs.merge_checkpoints`) writes one from two
checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.models.panoptic.merge_heuristics import check_merge_options, combine


class MergedPanoptic(nn.Module):
    """Panoptic predictions from ``semantic`` (logits over the K panoptic classes) and ``instance`` (a detector).

    Args:
        semantic: a seglab semantic model, (N, 3, H, W) normalised images -> (N, K, H, W) logits.
        instance: a torchvision-style detector taking a list of [0, 1] RGB images (seglab's Mask R-CNN).
        thing_classes: class indices (0..K-1) that are things; the semantic map's thing pixels that no instance
            takes stay void.
        instance_to_class: the panoptic class index of the detector's label ``l`` is ``instance_to_class[l - 1]``
            (label 0 is its background).
        semantic_mean, semantic_std: the semantic model's input normalisation (of [0, 1] pixels).
        score_threshold, overlap_threshold, stuff_area: see :func:`.merge_heuristics.combine`.

    Called in eval mode with a list of [0, 1] RGB (3, H, W) images; returns per image ``{"ids", "segments",
    "instances"}`` at the input size (instance labels are panoptic class indices). Eval only: the two models
    train separately, with their own tasks.
    """

    task = "panoptic"

    def __init__(self, semantic: nn.Module, instance: nn.Module, *, thing_classes: Sequence[int],
                 instance_to_class: Sequence[int], semantic_mean: Sequence[float] = (0.0, 0.0, 0.0),
                 semantic_std: Sequence[float] = (1.0, 1.0, 1.0), score_threshold: float = 0.5,
                 overlap_threshold: float = 0.5, stuff_area: int = 128) -> None:
        super().__init__()
        check_merge_options(score_threshold, overlap_threshold, stuff_area)
        if len(semantic_mean) != 3 or len(semantic_std) != 3 or min(semantic_std) <= 0:
            raise ModelError(f"Expected `semantic_mean` and `semantic_std` of 3 values (RGB), std > 0; got "
                             f"{list(semantic_mean)} and {list(semantic_std)}.")
        outside = sorted(set(instance_to_class) - set(thing_classes))
        if outside:
            raise ModelError(f"`instance_to_class` maps detector labels to {outside}, which are not in "
                             f"`thing_classes` {list(thing_classes)}; instances must be things.")
        self.semantic, self.instance = semantic, instance
        self.thing_classes = [int(c) for c in thing_classes]
        self.score_threshold, self.overlap_threshold = float(score_threshold), float(overlap_threshold)
        self.stuff_area = int(stuff_area)
        # Lookups and constants, not weights: kept out of the state dict (it holds the two models only).
        self.register_buffer("mean", torch.tensor([float(v) for v in semantic_mean]).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([float(v) for v in semantic_std]).view(3, 1, 1), persistent=False)
        self.register_buffer("class_of_label", torch.tensor([-1, *map(int, instance_to_class)]), persistent=False)

    def forward(self, images: Sequence[torch.Tensor], targets: Any = None) -> list[dict[str, Any]]:
        """Per image ``{"ids" (H, W), "segments", "instances"}``; train mode is refused."""
        if self.training:
            raise ModelError("panoptic_merge is eval-only: it merges two models trained separately. Train the "
                             "semantic model (seglab train on the labels/ folder) and the instance model on their "
                             "own, merge the checkpoints with `seglab merge`, and call model.eval().")
        images = list(images)
        detections = self.instance(images)
        outputs = []
        for image, found in zip(images, detections, strict=True):
            logits = self.semantic(((image - self.mean) / self.std)[None])
            semantic = logits.argmax(1)[0]
            instances = {"boxes": found["boxes"], "labels": self.class_of_label[found["labels"]],
                         "scores": found["scores"], "masks": found["masks"]}
            ids, segments = combine(semantic, instances, self.thing_classes, score_threshold=self.score_threshold,
                                    overlap_threshold=self.overlap_threshold, stuff_area=self.stuff_area)
            outputs.append({"ids": ids, "segments": segments, "instances": instances})
        return outputs
