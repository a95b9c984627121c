"""Checks of metric inputs shared by the confusion-matrix and boundary metrics.

Both accept class indices (N, H, W) or scores (N, C, H, W) against an (N, H, W) target, and both must
refuse the same bad inputs with the same words, so the checks live here once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seglab.errors import DataError


def class_indices(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """``(pred, target)`` as (N, H, W) class indices, a batch dim added to (H, W) inputs.

    Scores (N, C, H, W) are turned into indices by argmax; given indices are checked to lie in
    ``[0, num_classes)``. The target's values are not checked here: the counting pass finds bad ones
    for free (see :func:`target_error`).

    Raises:
        DataError: shapes that do not fit, a float target, float indices or indices out of range.
    """
    if target.ndim == 2:
        target, pred = target.unsqueeze(0), pred.unsqueeze(0)
    if target.is_floating_point() or target.ndim != 3:
        raise DataError(f"metrics: target must be (N, H, W) integer class indices, got {tuple(target.shape)} "
                        f"{target.dtype}")
    if pred.ndim == target.ndim + 1:
        if pred.shape[1] != num_classes or pred.shape[:1] + pred.shape[2:] != target.shape:
            raise DataError(f"metrics: scores {tuple(pred.shape)} do not fit target {tuple(target.shape)} "
                            f"with num_classes={num_classes}; expected ({target.shape[0]}, {num_classes}, "
                            f"{target.shape[1]}, {target.shape[2]})")
        return pred.argmax(dim=1), target
    if pred.shape != target.shape:
        raise DataError(f"metrics: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape; "
                        "pass class indices (N, H, W) or scores (N, C, H, W) for the same images")
    if pred.is_floating_point():
        raise DataError(f"metrics: pred {tuple(pred.shape)} is {pred.dtype}; pass integer class indices "
                        "(e.g. logits.argmax(1)) or the scores (N, C, H, W) themselves")
    low, high = torch.aminmax(pred)
    if int(low) < 0 or int(high) >= num_classes:
        bad = pred[(pred < 0) | (pred >= num_classes)]
        raise DataError(f"metrics: pred holds class indices {_list_values(bad)} outside [0, {num_classes}); "
                        "check the model's num_classes")
    return pred, target


def target_error(target: Tensor, num_classes: int, ignore_index: int) -> DataError:
    """The error for a target holding values outside ``[0, num_classes)`` other than ``ignore_index``.

    Returned, not raised, so callers that detect the fault cheaply (a count out of range) build the
    message, which needs a pass over the target, only when it is needed.
    """
    bad = target[((target < 0) | (target >= num_classes)) & (target != ignore_index)]
    return DataError(f"metrics: target holds values {_list_values(bad)} outside [0, {num_classes}) that are "
                     f"not ignore_index={ignore_index}; fix the labels (seglab data check) or set "
                     "num_classes / ignore_index to match them")


def _list_values(values: Tensor) -> str:
    found = torch.unique(values).tolist()
    return ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
