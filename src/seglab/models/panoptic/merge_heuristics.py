"""One panoptic segmentation from a semantic map and instances: the merge heuristics of Panoptic FPN.

Kirillov et al., "Panoptic Feature Pyramid Networks" (CVPR 2019, arXiv:1901.02446), sec. 3, following the
baseline of Kirillov et al., "Panoptic Segmentation" (CVPR 2019, arXiv:1801.00868), sec. 7: overlaps between
instances are resolved by score (an NMS-like step on masks), overlaps between things and stuff in favour of
the things, and stuff regions below an area threshold are dropped. Pure tensor code, no learned parts, so
Panoptic FPN and a pair of separately trained models (:mod:`.merged`) share it and tests can check it by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from seglab.errors import ModelError

VOID = 255  # a semantic map's "no class" value (labels); never a stuff segment


def check_merge_options(score_threshold: float, overlap_threshold: float, stuff_area: int) -> None:
    """Refuse thresholds :func:`combine` cannot mean: fractions outside [0, 1], a negative area.

    Raises:
        ModelError: naming the option, the value and the accepted range.
    """
    for key, value in (("score_threshold", score_threshold), ("overlap_threshold", overlap_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise ModelError(f"Expected `{key}` in [0, 1], but got {value!r}.")
    if int(stuff_area) < 0:
        raise ModelError(f"Expected `stuff_area` >= 0 (pixels), but got {stuff_area!r}.")


def combine(semantic: torch.Tensor, instances: Mapping[str, torch.Tensor], thing_classes: Iterable[int], *,
            score_threshold: float = 0.5, overlap_threshold: float = 0.5, stuff_area: int = 128,
            mask_threshold: float = 0.5) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Merge a semantic map and instance predictions of one image into a segment-id map and its segments.

    1. Instances scoring at least ``score_threshold`` are pasted in decreasing score order (ties: detection
       order). Each keeps only the pixels of its mask (probability > ``mask_threshold``) that no earlier
       instance took; it is dropped when more than ``overlap_threshold`` of its mask was already taken, or
       when nothing is left.
    2. On the pixels still free, each stuff class of ``semantic`` (any value that is not a thing class, not
       negative and not 255) becomes one segment when it covers at least ``stuff_area`` pixels.
    3. Everything else is void (id 0): small stuff regions, and pixels the semantic map gives to a thing
       class that no instance took (the map knows "a thing is here", not which one).

    Args:
        semantic: (H, W) integer class indices.
        instances: ``labels`` (N,) class indices, ``scores`` (N,), ``masks`` (N, 1, H, W) probabilities (a
            ``boxes`` entry is allowed and unused).
        thing_classes: class indices that are things.

    Returns:
        ``(ids, segments)``: ids (H, W) int64, 0 = void, segment k has id k (1, 2, ... in the order they were
        made: things first); segments ``{"id", "category", "iscrowd": 0, "isthing", "score"}`` (stuff: 1.0).
    """
    masks = instances["masks"]
    if semantic.dim() != 2 or masks.dim() != 4 or masks.shape[1] != 1 or masks.shape[-2:] != semantic.shape:
        raise ValueError(f"combine: expected semantic (H, W) and masks (N, 1, H, W) of the same H, W; got "
                         f"{tuple(semantic.shape)} and {tuple(masks.shape)}")
    ids = torch.zeros(semantic.shape, dtype=torch.long, device=semantic.device)
    segments: list[dict[str, Any]] = []
    taken = _paste_things(ids, segments, instances, score_threshold, overlap_threshold, mask_threshold)
    things = {int(c) for c in thing_classes}
    for c in torch.unique(semantic).tolist():
        if c in things or c < 0 or c == VOID:
            continue
        region = (semantic == c) & ~taken
        area = int(region.sum())
        if area == 0 or area < stuff_area:
            continue
        segments.append({"id": len(segments) + 1, "category": int(c), "iscrowd": 0, "isthing": False,
                         "score": 1.0})
        ids[region] = len(segments)
    return ids, segments


def _paste_things(ids: torch.Tensor, segments: list[dict[str, Any]], instances: Mapping[str, torch.Tensor],
                  score_threshold: float, overlap_threshold: float, mask_threshold: float) -> torch.Tensor:
    """Step 1 of :func:`combine`, in place on ``ids`` and ``segments``; returns the pixels the things took."""
    labels, scores = instances["labels"], instances["scores"]
    binary = instances["masks"][:, 0] > mask_threshold
    taken = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    for i in torch.argsort(scores.float(), descending=True, stable=True).tolist():
        score = float(scores[i])
        if score < score_threshold:
            break
        area = int(binary[i].sum())
        free = binary[i] & ~taken
        kept = int(free.sum())
        if kept == 0 or (area - kept) / area > overlap_threshold:
            continue
        segments.append({"id": len(segments) + 1, "category": int(labels[i]), "iscrowd": 0, "isthing": True,
                         "score": score})
        ids[free] = len(segments)
        taken |= free
    return taken
