"""What went wrong with each detection of one image: the error kinds of the TIDE toolbox (Bolya et al., 2020).

Detections (best score first) are matched greedily to the image's objects by mask IoU, as COCO matches at
IoU 0.5. Each detection is exactly one of:

- ``tp``: IoU >= 0.5 with an object of its class that no better detection took;
- ``duplicate``: IoU >= 0.5 with an object of its class that a better detection already took;
- ``wrong_class``: IoU >= 0.5 with an object of another class, or (no object of its class at IoU >= 0.1)
  IoU >= 0.1 with an object of another class (TIDE's "both" folded in: the class is the first thing wrong);
- ``poor_localization``: its best IoU with an object of its class is in [0.1, 0.5);
- ``background``: IoU < 0.1 with every object (a false positive on background).

Each object no detection took as ``tp`` is ``missed``. Crowd regions are not objects here.
"""

from __future__ import annotations

import numpy as np

KINDS = ("tp", "missed", "duplicate", "wrong_class", "poor_localization", "background")
MATCH_IOU, BACKGROUND_IOU = 0.5, 0.1


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of boolean masks ``a`` (N, H, W) and ``b`` (M, H, W)."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def error_kinds(pred_masks: np.ndarray, pred_labels: np.ndarray, pred_scores: np.ndarray,
                gt_masks: np.ndarray, gt_labels: np.ndarray) -> dict[str, int]:
    """Counts of :data:`KINDS` for one image (masks boolean ``(N, H, W)``, labels class indices)."""
    counts = dict.fromkeys(KINDS, 0)
    n, m = len(pred_labels), len(gt_labels)
    iou = mask_iou(pred_masks, gt_masks) if n and m else np.zeros((n, m), dtype=np.float32)
    taken = np.zeros(m, dtype=bool)
    same = np.asarray(pred_labels)[:, None] == np.asarray(gt_labels)[None, :] if n and m else np.zeros((n, m), bool)
    for i in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable"):
        own = np.where(same[i], iou[i], -1.0)
        other = np.where(~same[i], iou[i], -1.0)
        free = np.where(taken, -1.0, own)
        if m and free.max() >= MATCH_IOU:
            taken[int(free.argmax())] = True
            counts["tp"] += 1
        elif m and own.max() >= MATCH_IOU:
            counts["duplicate"] += 1
        elif m and other.max() >= MATCH_IOU:
            counts["wrong_class"] += 1
        elif m and own.max() >= BACKGROUND_IOU:
            counts["poor_localization"] += 1
        elif m and other.max() >= BACKGROUND_IOU:
            counts["wrong_class"] += 1
        else:
            counts["background"] += 1
    counts["missed"] = int(m - taken.sum())
    return counts
