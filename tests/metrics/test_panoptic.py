"""PanopticQuality against hand-computed cases (COCO's panopticapi rules) and torchmetrics.

Hand cases are rows or small grids of segment ids with the expected numbers worked out in the comments;
torchmetrics is compared on random scenes where its definition and COCO's agree, and shown to differ on the
two cases where they do not.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.detection import PanopticQuality as TMPanopticQuality

from seglab.errors import ConfigError, DataError, SeglabError
from seglab.metrics import PanopticQuality, panoptic_stats, pq_from_stats


def seg(sid: int, cat: int, crowd: int = 0, things: tuple[int, ...] = (0,)) -> dict:
    """A ground-truth segment dict (class 0 is the only thing unless ``things`` says otherwise)."""
    return {"id": sid, "category": cat, "iscrowd": crowd, "isthing": cat in things}


def pseg(sid: int, cat: int) -> dict:
    """A predicted segment dict: no iscrowd, as models write them."""
    return {"id": sid, "category": cat, "score": 1.0}


def row(values: list[int]) -> np.ndarray:
    return np.array([values])


def score(num_classes: int, things: list[int], *images: tuple) -> dict:
    metric = PanopticQuality(num_classes, things)
    for image in images:
        metric.update(*image)
    return metric.compute()


def test_perfect_match_is_one() -> None:
    # two thing segments (class 0) and one stuff segment (class 1); the prediction uses other ids
    gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 2, 2]])
    pred = np.array([[10, 10, 20, 20], [10, 10, 20, 20], [30, 30, 20, 20]])
    r = score(2, [0], (pred, [pseg(10, 0), pseg(20, 1), pseg(30, 0)], gt, [seg(1, 0), seg(2, 1), seg(3, 0)]))
    for key in ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"):
        assert r[key] == 1.0, key
    assert (r["n"], r["n_th"], r["n_st"]) == (2, 1, 1)
    assert (r["per_class_tp"], r["per_class_fp"], r["per_class_fn"]) == ([2, 1], [0, 0], [0, 0])


@pytest.mark.parametrize("n", [49, 50, 51])
def test_iou_threshold_is_strict(n: int) -> None:
    # 200 pixels: gt thing segment 1 (class 0) = first 100, gt stuff 2 (class 1) = last 100.
    # pred 5 (class 0) = first n pixels, pred 6 (class 1) = the other 200 - n.
    # class 0: IoU = n / (100 + n - n) = n / 100: 0.51 matches, 0.50 (exactly half) and 0.49 do not.
    # class 1: IoU = 100 / (100 + (200 - n) - 100) = 100 / (200 - n) > 0.5 always.
    gt = row([1] * 100 + [2] * 100)
    pred = row([5] * n + [6] * (200 - n))
    r = score(2, [0], (pred, [pseg(5, 0), pseg(6, 1)], gt, [seg(1, 0), seg(2, 1)]))
    stuff_iou = 100 / (200 - n)
    if n == 51:
        assert r["per_class_pq"] == pytest.approx([0.51, stuff_iou])
        assert (r["PQ"], r["SQ"], r["RQ"]) == pytest.approx(((0.51 + stuff_iou) / 2, (0.51 + stuff_iou) / 2, 1))
        return
    # unmatched: gt 1 is a FN, pred 5 a FP -> class 0 PQ = 0 / (0 + 0.5 + 0.5) = 0, RQ 0, SQ 0 (no TP:
    # panopticapi's 0, and the class still counts in the SQ mean)
    assert (r["per_class_tp"], r["per_class_fp"], r["per_class_fn"]) == ([0, 1], [1, 0], [1, 0])
    assert r["per_class_sq"] == pytest.approx([0, stuff_iou])
    assert (r["PQ"], r["SQ"], r["RQ"], r["n"]) == pytest.approx((stuff_iou / 2, stuff_iou / 2, 0.5, 2))


def test_one_fp_one_fn_and_things_stuff_split() -> None:
    # K = 4, things {0, 1}, stuff {2, 3}; class 3 appears nowhere.
    # gt: thing 1 (class 0) on 4 pixels, stuff 2 (class 2) on the rest; the prediction calls the thing class 1.
    # class 0: FN 1 -> PQ 0; class 1: FP 1 -> PQ 0; class 2: IoU 1 -> PQ 1; class 3: left out (NaN).
    things = (0, 1)
    gt = row([1, 1, 1, 1, 2, 2, 2, 2])
    pred = row([7, 7, 7, 7, 8, 8, 8, 8])
    r = score(4, [0, 1], (pred, [pseg(7, 1), pseg(8, 2)], gt, [seg(1, 0, things=things), seg(2, 2, things=things)]))
    assert (r["per_class_tp"], r["per_class_fp"], r["per_class_fn"]) == ([0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0])
    assert r["per_class_pq"][:3] == [0, 0, 1] and math.isnan(r["per_class_pq"][3])
    assert (r["PQ"], r["n"]) == (pytest.approx(1 / 3), 3)            # (0 + 0 + 1) / 3
    assert (r["PQ_th"], r["RQ_th"], r["n_th"]) == (0, 0, 2)           # classes 0 and 1
    assert (r["PQ_st"], r["SQ_st"], r["n_st"]) == (1, 1, 1)           # class 2 only; class 3 not counted


def test_class_absent_from_both_sides_is_left_out() -> None:
    # K = 3; only class 1 (stuff) appears: IoU 3/4. Classes 0 and 2 are NaN and out of every mean.
    gt, pred = row([1, 1, 1, 1]), row([5, 5, 5, 0])
    r = score(3, [0], (pred, [pseg(5, 1)], gt, [seg(1, 1)]))
    assert r["PQ"] == pytest.approx(0.75) and r["n"] == 1
    assert math.isnan(r["PQ_th"]) and r["n_th"] == 0 and r["PQ_st"] == pytest.approx(0.75)
    assert [math.isnan(v) for v in r["per_class_sq"]] == [True, False, True]


def test_crowd_is_never_matched_and_never_a_false_negative() -> None:
    # gt 1 is a crowd of class 0 on pixels 0-3, gt 2 stuff (class 1) on 4-7; the prediction copies both.
    # class 0: the crowd is not matched (no TP) nor a FN; pred 5 lies wholly on its own class's crowd -> not a
    # FP either -> class 0 has no count and is left out. class 1: IoU 1.
    gt, pred = row([1, 1, 1, 1, 2, 2, 2, 2]), row([5, 5, 5, 5, 6, 6, 6, 6])
    r = score(2, [0], (pred, [pseg(5, 0), pseg(6, 1)], gt, [seg(1, 0, crowd=1), seg(2, 1)]))
    assert (r["per_class_tp"], r["per_class_fp"], r["per_class_fn"]) == ([0, 1], [0, 0], [0, 0])
    assert math.isnan(r["per_class_pq"][0]) and (r["PQ"], r["n"]) == (1.0, 1)


def test_crowd_of_another_class_does_not_excuse_a_false_positive() -> None:
    # gt: crowd 1 (class 0) on pixels 0-3, stuff 2 (class 1) on 4-9. pred: 5 (class 1) on 0-3, 6 (class 1) on 4-9.
    # class 1: pred 6 matches gt 2 with IoU 1; pred 5 sits on a crowd of class 0, not of its own class -> FP.
    # PQ_1 = 1 / (1 + 0.5) = 2/3, SQ_1 = 1, RQ_1 = 2/3; class 0 has no count.
    gt, pred = row([1] * 4 + [2] * 6), row([5] * 4 + [6] * 6)
    r = score(2, [0], (pred, [pseg(5, 1), pseg(6, 1)], gt, [seg(1, 0, crowd=1), seg(2, 1)]))
    assert r["per_class_fp"] == [0, 1]
    assert (r["PQ"], r["SQ"], r["RQ"], r["n"]) == pytest.approx((2 / 3, 1, 2 / 3, 1))


@pytest.mark.parametrize("crowd_class", [0, 1])
def test_void_plus_own_crowd_over_half_is_not_a_false_positive(crowd_class: int) -> None:
    # K = 3, things {0, 1}, stuff {2}. 16 pixels. gt: void 0-2, crowd 9 (class crowd_class) 3-5, stuff 2 on 6-15.
    # pred: 5 (class 0) on 0-9 = 3 void + 3 crowd + 4 stuff; pred 6 (class 2) on 10-15.
    # pred 5 is unmatched. Own-class crowd: (3 + 3) / 10 = 0.6 > 0.5 -> ignored, class 0 has no count.
    # Crowd of class 1: only the void counts, 3 / 10 <= 0.5 -> FP, class 0 PQ 0.
    # class 2: IoU(6, 2) = 6 / (6 + 10 - 6) = 0.6 -> TP. Class 1 (crowd only) never counts.
    things = (0, 1)
    gt = row([0] * 3 + [9] * 3 + [2] * 10)
    pred = row([5] * 10 + [6] * 6)
    gt_segments = [seg(9, crowd_class, crowd=1, things=things), seg(2, 2, things=things)]
    r = score(3, [0, 1], (pred, [pseg(5, 0), pseg(6, 2)], gt, gt_segments))
    if crowd_class == 0:
        assert r["per_class_fp"] == [0, 0, 0] and (r["PQ"], r["n"]) == (pytest.approx(0.6), 1)
    else:
        assert r["per_class_fp"] == [1, 0, 0] and (r["PQ"], r["n"]) == (pytest.approx(0.3), 2)  # (0 + 0.6) / 2


def test_union_leaves_out_the_predictions_pixels_on_void() -> None:
    # gt: void 0-2, thing 1 (class 0) on 3-6, stuff 2 (class 1) on 7-9.
    # pred: 5 (class 0) on 0-5 (3 on void, 3 on gt 1), 6 (class 1) on 6-9 (1 on gt 1, 3 on gt 2).
    # class 0: IoU = 3 / (6 + 4 - 3 - 3) = 3/4 -> TP (without leaving void out: 3/7, no match).
    # class 1: IoU = 3 / (4 + 3 - 3 - 0) = 3/4.
    gt, pred = row([0, 0, 0, 1, 1, 1, 1, 2, 2, 2]), row([5] * 6 + [6] * 4)
    r = score(2, [0], (pred, [pseg(5, 0), pseg(6, 1)], gt, [seg(1, 0), seg(2, 1)]))
    assert r["per_class_pq"] == pytest.approx([0.75, 0.75])
    assert (r["PQ"], r["SQ"], r["RQ"]) == pytest.approx((0.75, 0.75, 1))


@pytest.mark.parametrize("void", [2, 3])
def test_prediction_mostly_on_void_is_not_a_false_positive(void: int) -> None:
    # 12 pixels. gt: void on the first `void`, stuff 2 (class 1) on the rest. pred: 5 (class 0) on 0-3, 6 on 4-11.
    # pred 5 on void: void / 4 -> 3/4 > 0.5 ignored; 2/4 = 0.5 is not more than half -> FP.
    # class 1: IoU(6, 2) = 8 / (8 + (12 - void) - 8) = 8 / (12 - void): 8/9 or 8/10.
    gt = row([0] * void + [2] * (12 - void))
    pred = row([5] * 4 + [6] * 8)
    r = score(2, [0], (pred, [pseg(5, 0), pseg(6, 1)], gt, [seg(2, 1)]))
    if void == 3:
        assert r["per_class_fp"] == [0, 0] and (r["PQ"], r["n"]) == (pytest.approx(8 / 9), 1)
    else:
        assert r["per_class_fp"] == [1, 0] and (r["PQ"], r["n"]) == (pytest.approx(0.4), 2)  # (0 + 0.8) / 2


# The worked example of docs/panoptic.md (4 x 8; class 0 "person" is a thing, class 1 "grass" stuff):
#   gt:   A A A A . . B B      pred: a a a a a a . .      (. = void, C = crowd of persons)
#         A A A A . . B B            a a a g . . . .
#         G G G G G G C C            g g g g f f k k
#         G G G G G G C C            g g g g f f k k
# person: IoU(a, A) = 7 / (9 + 8 - 7 - 2 on void) = 7/8 -> TP; B all predicted void -> FN;
#         f on grass -> FP; k on its own class's crowd -> ignored. PQ = 0.875 / 2 = 0.4375, SQ 0.875, RQ 0.5.
# grass:  IoU(g, G) = 8 / (9 + 12 - 8) = 8/13 -> TP. PQ = SQ = 8/13, RQ 1.
A, B, G, C, a, g, f, k = 1, 2, 3, 4, 11, 13, 14, 15
WORKED_GT = np.array([[A, A, A, A, 0, 0, B, B], [A, A, A, A, 0, 0, B, B],
                      [G, G, G, G, G, G, C, C], [G, G, G, G, G, G, C, C]])
WORKED_PRED = np.array([[a, a, a, a, a, a, 0, 0], [a, a, a, g, 0, 0, 0, 0],
                        [g, g, g, g, f, f, k, k], [g, g, g, g, f, f, k, k]])
WORKED_GT_SEGMENTS = [seg(A, 0), seg(B, 0), seg(G, 1), seg(C, 0, crowd=1)]
WORKED_PRED_SEGMENTS = [pseg(a, 0), pseg(g, 1), pseg(f, 0), pseg(k, 0)]
WORKED = (WORKED_PRED, WORKED_PRED_SEGMENTS, WORKED_GT, WORKED_GT_SEGMENTS)


def test_worked_example_of_the_docs() -> None:
    r = score(2, [0], WORKED)
    assert (r["per_class_tp"], r["per_class_fp"], r["per_class_fn"]) == ([1, 1], [1, 0], [1, 0])
    assert r["per_class_pq"] == pytest.approx([0.4375, 8 / 13])
    assert r["PQ"] == pytest.approx((0.4375 + 8 / 13) / 2)          # 0.5264
    assert r["SQ"] == pytest.approx((0.875 + 8 / 13) / 2)           # 0.7452
    assert r["RQ"] == pytest.approx(0.75)
    assert (r["PQ_th"], r["PQ_st"]) == pytest.approx((0.4375, 8 / 13))


def test_inputs_as_tensors_and_huge_or_unlisted_ids() -> None:
    expected = score(2, [0], WORKED)
    tensors = (torch.from_numpy(WORKED_PRED).int(), WORKED_PRED_SEGMENTS, torch.from_numpy(WORKED_GT),
               WORKED_GT_SEGMENTS)
    assert score(2, [0], tensors) == expected
    # ids past the lookup table's range take the searchsorted path: same numbers
    big = 1 << 40
    huge = (WORKED_PRED + big * (WORKED_PRED > 0), [{**s, "id": s["id"] + big} for s in WORKED_PRED_SEGMENTS],
            WORKED_GT + big * (WORKED_GT > 0), [{**s, "id": s["id"] + big} for s in WORKED_GT_SEGMENTS])
    assert score(2, [0], huge) == expected
    # a listed segment with no pixel counts neither as FN nor as FP
    listed = (WORKED_PRED, [*WORKED_PRED_SEGMENTS, pseg(99, 0)], WORKED_GT, [*WORKED_GT_SEGMENTS, seg(98, 1)])
    assert score(2, [0], listed) == expected


def test_accumulation_over_two_images_is_one_sum() -> None:
    # image 1: gt 1 (class 0) on 0-4, gt 2 (class 1) on 5-9; pred 5 (class 0) on 0-2, 6 (class 1) on 3-9.
    #   class 0: IoU 3/5 -> TP; class 1: IoU 5 / (7 + 5 - 5) = 5/7 -> TP.
    # image 2: same gt; pred 5 (class 0) on pixel 0 only, 6 (class 1) on 1-9.
    #   class 0: IoU 1/5 -> gt 1 FN, pred 5 FP; class 1: IoU 5/9 -> TP.
    # sums: class 0 TP 1, FP 1, FN 1, IoU 0.6 -> PQ 0.6 / 2 = 0.3 (per-image PQs 0.6 and 0 would average
    # the same here, but SQ is 0.6 over the dataset, not (0.6 + 0) / 2); class 1 PQ = (5/7 + 5/9) / 2.
    gt, gt_segments = row([1] * 5 + [2] * 5), [seg(1, 0), seg(2, 1)]
    one = (row([5] * 3 + [6] * 7), [pseg(5, 0), pseg(6, 1)], gt, gt_segments)
    two = (row([5] + [6] * 9), [pseg(5, 0), pseg(6, 1)], gt, gt_segments)
    r = score(2, [0], one, two)
    assert (r["per_class_tp"], r["per_class_fp"], r["per_class_fn"]) == ([1, 2], [1, 0], [1, 0])
    assert r["per_class_pq"] == pytest.approx([0.3, (5 / 7 + 5 / 9) / 2])
    assert r["per_class_sq"] == pytest.approx([0.6, (5 / 7 + 5 / 9) / 2])
    assert r["per_class_rq"] == pytest.approx([0.5, 1])
    assert pq_from_stats(panoptic_stats(*one, 2, [0]) + panoptic_stats(*two, 2, [0]), [0]) == r
    metric = PanopticQuality(2, [0])
    metric.update(*one)
    metric.reset()
    metric.update(*two)
    assert metric.compute()["per_class_tp"] == [0, 1]


# --- torchmetrics: an independent implementation, compared where its definition and COCO's agree ---------------
# Aligned: class indices are torchmetrics' category ids; stuff has one segment per class and image (torchmetrics
# merges a stuff class into one segment); no crowds (torchmetrics has none); no void in predictions (see the two
# differences below); ground-truth void is category K, unknown to torchmetrics, which makes it void. Both leave a
# class with TP + FP + FN = 0 out of the means; torchmetrics reports no things/stuff split, so PQ_th / PQ_st are
# checked against means of its per-class values over the classes its own counts say are present.
TM_K, TM_THINGS, TM_STUFF = 6, [1, 4], [0, 2, 3, 5]


def _rectangles(rng: np.random.Generator, count: int, h: int, w: int) -> list[tuple[slice, slice]]:
    out = []
    for _ in range(count):
        y, x = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
        dy, dx = rng.integers(2, 9, 2)
        out.append((slice(y, y + int(dy)), slice(x, x + int(dx))))
    return out


def _random_scene(rng: np.random.Generator, h: int = 16, w: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and a perturbed prediction as (category, instance) maps; -1 = void (truth only)."""
    cat = np.kron(rng.choice(TM_STUFF, (h // 4, w // 4)), np.ones((4, 4), dtype=np.int64))
    inst = np.zeros_like(cat)
    for i, box in enumerate(_rectangles(rng, int(rng.integers(1, 7)), h, w), start=1):
        cat[box], inst[box] = rng.choice(TM_THINGS), i
    shift = tuple(int(v) for v in rng.integers(-2, 3, 2))
    pred_cat, pred_inst = np.roll(cat, shift, axis=(0, 1)), np.roll(inst, shift, axis=(0, 1))
    if rng.random() < 0.3:  # one instance predicted as the other thing class
        pred_cat[pred_inst == 1] = TM_THINGS[0] + TM_THINGS[1] - pred_cat[pred_inst == 1]
    for j, box in enumerate(_rectangles(rng, int(rng.integers(0, 4)), h, w), start=100):
        c = int(rng.integers(0, TM_K))
        pred_cat[box], pred_inst[box] = c, (j if c in TM_THINGS else 0)
    for box in _rectangles(rng, int(rng.integers(0, 3)), h, w):
        cat[box], inst[box] = -1, 0
    return np.stack([cat, inst]), np.stack([pred_cat, pred_inst])


def _to_seglab(colors: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    cat, inst = colors
    values, inverse = np.unique(cat * 1000 + inst, return_inverse=True)
    ids = rng.choice(1 << 20, values.size, replace=False) + 1  # arbitrary ids: their values must not matter
    id_map = ids[inverse.reshape(cat.shape)]
    id_map[cat < 0] = 0
    segments = [{"id": int(i), "category": int(v // 1000), "iscrowd": 0, "isthing": int(v // 1000) in TM_THINGS}
                for v, i in zip(values, ids, strict=True) if v >= 0]
    return id_map, segments


def _to_torchmetrics(colors: np.ndarray) -> torch.Tensor:
    cat, inst = colors
    return torch.from_numpy(np.stack([np.where(cat < 0, TM_K, cat), inst], axis=-1))[None]


def _tm_means(tm: TMPanopticQuality, classes: list[int]) -> list[float]:
    """Mean PQ, SQ, RQ of torchmetrics' per-class values over ``classes`` that its own counts say are present."""
    per_class = tm.compute()  # (C, 3), classes ordered things then stuff, each sorted
    order = sorted(TM_THINGS) + sorted(TM_STUFF)
    present = (tm.true_positives + tm.false_positives + tm.false_negatives) > 0
    rows = [order.index(c) for c in classes if present[order.index(c)]]
    return per_class[rows].mean(0).tolist()


def test_matches_torchmetrics_on_random_scenes() -> None:
    rng = np.random.default_rng(0)
    total = PanopticQuality(TM_K, TM_THINGS)
    tm_total = TMPanopticQuality(TM_THINGS, TM_STUFF, return_sq_and_rq=True)
    tm_per_class = TMPanopticQuality(TM_THINGS, TM_STUFF, return_sq_and_rq=True, return_per_class=True)
    for _ in range(150):
        gt, pred = _random_scene(rng)
        image = (*_to_seglab(pred, rng), *_to_seglab(gt, rng))
        one, tm_one = PanopticQuality(TM_K, TM_THINGS), TMPanopticQuality(TM_THINGS, TM_STUFF, return_sq_and_rq=True)
        for metric in (one, total):
            metric.update(*image)
        for metric in (tm_one, tm_total, tm_per_class):
            metric.update(_to_torchmetrics(pred), _to_torchmetrics(gt))
        r = one.compute()
        assert [r["PQ"], r["SQ"], r["RQ"]] == pytest.approx(tm_one.compute().tolist(), abs=1e-6)
    r, order = total.compute(), sorted(TM_THINGS) + sorted(TM_STUFF)
    for name, mine, theirs in (("tp", "per_class_tp", tm_per_class.true_positives),
                               ("fp", "per_class_fp", tm_per_class.false_positives),
                               ("fn", "per_class_fn", tm_per_class.false_negatives)):
        assert [r[mine][c] for c in order] == theirs.tolist(), name
    assert [r["PQ"], r["SQ"], r["RQ"]] == pytest.approx(tm_total.compute().tolist(), abs=1e-6)
    assert [r["PQ_th"], r["SQ_th"], r["RQ_th"]] == pytest.approx(_tm_means(tm_per_class, TM_THINGS), abs=1e-6)
    assert [r["PQ_st"], r["SQ_st"], r["RQ_st"]] == pytest.approx(_tm_means(tm_per_class, TM_STUFF), abs=1e-6)
    # the scenes exercise every kind of count
    assert min(sum(r["per_class_tp"]), sum(r["per_class_fp"]), sum(r["per_class_fn"])) >= 20


def _both(gt: list[int], pred: list[int], pred_segments: list[dict]) -> tuple[dict, list[float]]:
    """seglab's result and torchmetrics' [PQ, SQ, RQ] for one row; class 0 thing, class 1 stuff (ids = class + 1)."""
    seglab = score(2, [0], (row(pred), pred_segments, row(gt), [seg(1, 0), seg(2, 1)]))
    to_tm = {0: (2, 0), 1: (0, 1), 2: (1, 0)}  # pred/gt id -> (category, instance); id 0 -> category 2 (void)
    colors = [torch.tensor([[to_tm[v] for v in values]]) for values in (pred, gt)]
    tm = TMPanopticQuality([0], [1], allow_unknown_preds_category=True, return_sq_and_rq=True)
    tm.update(*colors)
    return seglab, tm.compute().tolist()


def test_torchmetrics_difference_union_without_predicted_void() -> None:
    # gt: thing 1 (class 0) on 0-4, stuff 2 (class 1) on 5-7; pred: 1 on 0-2, void on 3-4, 2 on 5-7.
    # COCO: IoU(class 0) = 3 / (3 + 5 - 3) = 0.6; class 1: 1 -> PQ 0.8, SQ 0.8, RQ 1.
    # torchmetrics also takes the gt pixels predicted void out of the union: 3 / (3 + 5 - 2 - 3) = 1 -> PQ 1.
    seglab, tm = _both([1, 1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 0, 0, 2, 2, 2], [pseg(1, 0), pseg(2, 1)])
    assert [seglab["PQ"], seglab["SQ"], seglab["RQ"]] == pytest.approx([0.8, 0.8, 1])
    assert tm == pytest.approx([1, 1, 1])


def test_torchmetrics_difference_false_negative_under_predicted_void() -> None:
    # gt: thing 1 (class 0) on 0-3, stuff 2 (class 1) on 4-7; pred: void on 0-3, 2 on 4-7.
    # COCO: gt 1 is a FN -> class 0 PQ 0 (counted), class 1 PQ 1 -> PQ 0.5, SQ 0.5, RQ 0.5.
    # torchmetrics drops a FN that is more than half predicted void -> class 0 has no count -> PQ 1.
    seglab, tm = _both([1, 1, 1, 1, 2, 2, 2, 2], [0, 0, 0, 0, 2, 2, 2, 2], [pseg(2, 1)])
    assert [seglab["PQ"], seglab["SQ"], seglab["RQ"]] == pytest.approx([0.5, 0.5, 0.5])
    assert seglab["per_class_fn"] == [1, 0] and seglab["n"] == 2
    assert tm == pytest.approx([1, 1, 1])


# --- errors ------------------------------------------------------------------------------------------------------
GT2, GT2_SEGMENTS = row([1, 1, 2, 2]), [seg(1, 0), seg(2, 1)]
BAD_INPUTS = [
    ((row([5, 5, 6]), [pseg(5, 0), pseg(6, 1)], GT2, GT2_SEGMENTS), "differ in shape"),
    ((row([5, 5, 6, 9]), [pseg(5, 0), pseg(6, 1)], GT2, GT2_SEGMENTS), r"segment ids \[9\] that have no entry"),
    ((row([5, 5, 6, -3]), [pseg(5, 0), pseg(6, 1)], GT2, GT2_SEGMENTS), r"segment ids \[-3\] that have no entry"),
    ((row([5, 5, 6, 6]), [pseg(5, 0), pseg(6, 2)], GT2, GT2_SEGMENTS), r"category 2 outside \[0, 2\)"),
    ((row([5, 5, 6, 6]), [pseg(5, 0), pseg(6, 1), pseg(5, 1)], GT2, GT2_SEGMENTS), r"ids \[5\] appear more"),
    ((row([5, 5, 6, 6]), [pseg(0, 0), pseg(5, 0), pseg(6, 1)], GT2, GT2_SEGMENTS), "reserved for void"),
    ((row([5, 5, 6, 6]), [pseg(5, 0), pseg(6, 1)], GT2, [seg(1, 0), {"id": 2, "category": 1}]), "'iscrowd'"),
    ((row([5, 5, 6, 6]), [pseg(5, 0), pseg(6, 1)], GT2, [seg(1, 0), {**seg(2, 1), "isthing": True}]), "isthing"),
    ((row([5.0, 5, 6, 6]), [pseg(5, 0), pseg(6, 1)], GT2, GT2_SEGMENTS), "integer array"),
    ((row([5, 5, 6, 6])[0], [pseg(5, 0), pseg(6, 1)], GT2[0], GT2_SEGMENTS), r"\(H, W\)"),
]


@pytest.mark.parametrize(("image", "message"), BAD_INPUTS)
def test_bad_inputs_are_named(image: tuple, message: str) -> None:
    with pytest.raises(DataError, match=message):
        PanopticQuality(2, [0]).update(*image)


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        PanopticQuality(0, [])
    with pytest.raises(ConfigError, match=r"\[3\] are not"):
        PanopticQuality(3, [0, 3])
    with pytest.raises(ConfigError, match="some repeat"):
        PanopticQuality(3, [1, 1])
    assert PanopticQuality(3, [2, 0]).stuff_classes == [1]


# --- DDP: two gloo processes on CPU, as tests/metrics/test_ddp.py does for SegMetrics ---------------------------
def _ddp_images() -> list[tuple]:
    rng = np.random.default_rng(5)
    swap = {0: 1, 1: 0}  # the worked example (crowd, void on both sides) with its classes as TM_THINGS has them
    images = [(WORKED_PRED, [{**s, "category": swap[s["category"]]} for s in WORKED_PRED_SEGMENTS], WORKED_GT,
               [{**s, "category": swap[s["category"]], "isthing": s["isthing"]} for s in WORKED_GT_SEGMENTS])]
    for _ in range(3):
        gt, pred = _random_scene(rng)
        images.append((*_to_seglab(pred, rng), *_to_seglab(gt, rng)))
    return images


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        images = _ddp_images()
        for split in ("even", "all_on_rank0"):  # the second leaves rank 1 without an image: it must still join
            metric = PanopticQuality(TM_K, TM_THINGS)
            for image in images[rank::world] if split == "even" else (images if rank == 0 else []):
                metric.update(*image)
            metric.reduce()
            metric.reduce()  # a second call must not double the counts
            result = metric.compute()
            try:
                metric.update(*images[0])
                result["late_update_refused"] = False
            except SeglabError:
                result["late_update_refused"] = True
            torch.save(result, Path(out_dir) / f"{split}{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    single = score(TM_K, TM_THINGS, *_ddp_images())
    assert single["n"] >= 3 and 0 < single["PQ"] < 1
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for name in ("even0", "even1", "all_on_rank00", "all_on_rank01"):
        result = torch.load(tmp_path / f"{name}.pt", weights_only=False)
        assert result.pop("late_update_refused"), name
        assert result.keys() == single.keys()
        for key, value in single.items():
            assert result[key] == pytest.approx(value, rel=1e-12, nan_ok=True), (name, key)


def test_reduce_without_distributed_is_noop() -> None:
    metric = PanopticQuality(2, [0])
    metric.update(*WORKED)
    metric.reduce()
    assert metric.compute()["per_class_tp"] == [1, 1]
    metric.update(*WORKED)  # not reduced: still accumulating
    assert metric.compute()["per_class_tp"] == [2, 2]
