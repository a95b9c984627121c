"""Instance error kinds on hand-made fixtures: each detection's kind decided by hand from its overlaps."""

from __future__ import annotations

import numpy as np

from seglab.review.kinds import KINDS, error_kinds, mask_iou


def _box(y0: int, x0: int, y1: int, x1: int, size: int = 40) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _kinds(preds: list[tuple[np.ndarray, int, float]], gts: list[tuple[np.ndarray, int]]) -> dict[str, int]:
    pm = np.stack([p[0] for p in preds]) if preds else np.zeros((0, 40, 40), bool)
    gm = np.stack([g[0] for g in gts]) if gts else np.zeros((0, 40, 40), bool)
    return error_kinds(pm, np.array([p[1] for p in preds]), np.array([p[2] for p in preds]),
                       gm, np.array([g[1] for g in gts]))


def test_mask_iou_by_hand() -> None:
    a, b = _box(0, 0, 10, 10), _box(0, 5, 10, 15)  # 50 shared of 150
    assert np.allclose(mask_iou(a[None], b[None]), [[50 / 150]])


def test_every_kind_once() -> None:
    cat, dog = 1, 2
    gts = [(_box(0, 0, 10, 10), cat),      # A: found, then found again
           (_box(20, 20, 30, 30), cat),    # B: found with the wrong class
           (_box(0, 25, 10, 35), dog),     # C: only poorly localized (IoU 0.25)
           (_box(30, 0, 40, 10), dog)]     # D: nobody near it
    preds = [(_box(0, 0, 10, 10), cat, 0.9),       # tp on A
             (_box(0, 0, 10, 9), cat, 0.8),        # duplicate of A (IoU 0.9, A taken)
             (_box(20, 20, 30, 30), dog, 0.7),     # wrong class on B (IoU 1 with a cat)
             (_box(0, 30, 10, 40), dog, 0.6),      # poor localization on C: 50 / 150 = 0.33
             (_box(15, 0, 18, 5), cat, 0.5)]       # background: touches nothing
    assert _kinds(preds, gts) == {"tp": 1, "missed": 3, "duplicate": 1, "wrong_class": 1,
                                  "poor_localization": 1, "background": 1}


def test_the_better_score_takes_the_object() -> None:
    gt = [(_box(0, 0, 10, 10), 1)]
    exact, loose = (_box(0, 0, 10, 10), 1, 0.4), (_box(0, 0, 10, 8), 1, 0.9)  # loose IoU 0.8, scores higher
    assert _kinds([exact, loose], gt) == {**dict.fromkeys(KINDS, 0), "tp": 1, "duplicate": 1}


def test_low_overlap_with_another_class_is_a_wrong_class() -> None:
    # IoU 0.25 with a dog only (no cat anywhere): TIDE's "both", counted as wrong class
    assert _kinds([(_box(0, 5, 10, 15), 1, 0.9)], [(_box(0, 0, 10, 10), 2)])["wrong_class"] == 1


def test_no_objects_and_no_detections() -> None:
    assert _kinds([], []) == dict.fromkeys(KINDS, 0)
    assert _kinds([(_box(0, 0, 5, 5), 1, 0.9)], [])["background"] == 1
    assert _kinds([], [(_box(0, 0, 5, 5), 1)])["missed"] == 1
