"""Panoptic quality (PQ, SQ, RQ) as COCO's reference evaluation (panopticapi ``pq_compute``) defines it.

One image is scored from the table of pixel counts of every (ground-truth segment, predicted segment) pair,
counted in one ``bincount`` over a combined index; the segment ids of each map are first turned into
positions 1..S (0 = void) of its sorted segment list by a lookup table (a gather, no sort of the pixels),
which also finds ids that have no segment entry. The rest works on the small (S_gt + 1, S_pred + 1) table.

COCO's rules, each of which changes the number (see docs/panoptic.md for a worked example):

- a ground-truth and a predicted segment match when they have the same category and IoU > 0.5 (strict);
  the union leaves out the prediction's pixels on ground-truth void, so IoU = |p ∩ g| / (|p| + |g| -
  |p ∩ g| - |p ∩ void|); with IoU > 0.5 a segment can match at most one other;
- crowd ground-truth segments never match and are never false negatives;
- an unmatched prediction is not a false positive when more than half of it lies on ground-truth void plus
  the crowd region of its own category;
- pixels predicted as void (id 0) belong to no prediction: a ground-truth segment they cover stays a false
  negative, and they do not shrink any union (torchmetrics differs on both; docs/panoptic.md).

Per class PQ = sum IoU / (TP + FP/2 + FN/2) = SQ * RQ with SQ = sum IoU / TP (0 when TP = 0) and
RQ = TP / (TP + FP/2 + FN/2); classes with TP + FP + FN = 0 are left out of every mean. A segment listed
with no pixel in its map is skipped (panopticapi refuses such predictions, and they cannot count either way).
Where an image has several crowd segments of one category, their union is that category's crowd region
(panopticapi keeps only the last one listed; COCO and seglab's layout have at most one per category).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from seglab.errors import ConfigError, DataError, SeglabError

TP, FP, FN, IOU = range(4)  # rows of the (4, K) float64 state: one all_reduce sums every count under DDP
_SHOWN = 10  # how many offending ids an error message lists
_TABLE_LIMIT = 1 << 25  # largest id (exclusive) looked up in a table rather than searched for


def _id_map(ids: np.ndarray | Tensor, side: str) -> np.ndarray:
    """A (H, W) segment-id map as an int64 numpy array (torch tensors are copied to the CPU)."""
    arr = ids.detach().cpu().numpy() if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"PanopticQuality: the {side} id map must be an (H, W) integer array of segment ids "
                        f"(0 = void), got shape {tuple(arr.shape)} dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _segment_key(segment: dict, key: str, side: str, index: int) -> int:
    try:
        return int(segment[key])
    except (KeyError, TypeError) as err:
        raise DataError(f"PanopticQuality: {side} segment {index} ({segment!r}) has no integer {key!r}; each "
                        'segment is a dict {"id", "category", "iscrowd", "isthing"}') from err


def _segment_table(segments: Sequence[dict], side: str, num_classes: int,
                   things: frozenset[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, categories, crowd flags) of one side's segments, sorted by id; every entry checked."""
    ids, cats, crowd = [], [], []
    for i, seg in enumerate(segments):
        sid, cat = _segment_key(seg, "id", side, i), _segment_key(seg, "category", side, i)
        if sid == 0:
            raise DataError(f"PanopticQuality: {side} segment {i} has id 0, which is reserved for void; "
                            "give it a non-zero id in both the map and the segment list")
        if not 0 <= cat < num_classes:
            raise DataError(f"PanopticQuality: {side} segment id {sid} has category {cat} outside "
                            f"[0, {num_classes}); categories are class indices 0..K-1, check num_classes")
        if "isthing" in seg and bool(seg["isthing"]) != (cat in things):
            raise DataError(f"PanopticQuality: {side} segment id {sid} says isthing={seg['isthing']} but class "
                            f"{cat} is {'a thing' if cat in things else 'stuff'} in thing_classes="
                            f"{sorted(things)}; make the segments and thing_classes agree")
        ids.append(sid)
        cats.append(cat)
        # Predictions' iscrowd is ignored, as in panopticapi; ground truth must say it.
        crowd.append(_segment_key(seg, "iscrowd", side, i) == 1 if side == "ground-truth" else False)
    id_arr = np.asarray(ids, dtype=np.int64)
    if np.unique(id_arr).size != id_arr.size:
        values, counts = np.unique(id_arr, return_counts=True)
        raise DataError(f"PanopticQuality: {side} segment ids {values[counts > 1][:_SHOWN].tolist()} appear more "
                        "than once in the segment list; every segment needs its own id")
    order = np.argsort(id_arr, kind="stable")
    return id_arr[order], np.asarray(cats, dtype=np.int64)[order], np.asarray(crowd, dtype=bool)[order]


def _positions(ids: np.ndarray, sorted_ids: np.ndarray, side: str) -> np.ndarray:
    """Each pixel's position in ``[0, *sorted_ids]`` (0 = void); ids with no segment entry raise.

    Ids up to ``_TABLE_LIMIT`` (COCO's R + 256 G + 256^2 B included) go through a lookup table, one gather per
    pixel; np.zeros maps untouched pages lazily, so a large table costs only the pages its ids touch. Larger
    or negative ids fall back to ``searchsorted``, which is several times slower on scattered ids.
    """
    flat = ids.reshape(-1)
    low, high = (int(flat.min()), int(flat.max())) if flat.size else (0, 0)
    if 0 <= low and high < _TABLE_LIMIT:
        table = np.zeros(high + 1, dtype=np.int32)  # position + 1; 0 = not a listed id (int32: half the pages)
        table[0] = 1
        listed = sorted_ids <= high
        table[sorted_ids[listed]] = np.flatnonzero(listed) + 2
        pos = table[flat]
        known = pos > 0
        pos -= 1
    else:
        table = np.concatenate([np.zeros(1, np.int64), sorted_ids])
        pos = np.minimum(np.searchsorted(table, flat), table.size - 1)
        known = table[pos] == flat
    if not known.all():
        missing = np.unique(flat[~known])
        raise DataError(f"PanopticQuality: the {side} id map holds segment ids {missing[:_SHOWN].tolist()} "
                        "that have no entry in its segment list; list every non-zero id of the map "
                        "(0 is void)")
    return pos


def _image_counts(inter: np.ndarray, gt_cat: np.ndarray, gt_crowd: np.ndarray, pred_cat: np.ndarray,
                  num_classes: int) -> np.ndarray:
    """(4, K) TP, FP, FN, IoU sum of one image from its (1 + S_gt, 1 + S_pred) pixel-count table."""
    gt_area, pred_area = inter[1:].sum(1), inter[:, 1:].sum(0)
    on_void = inter[0, 1:]  # each prediction's pixels on ground-truth void
    both = inter[1:, 1:]
    union = gt_area[:, None] + (pred_area - on_void)[None, :] - both
    same = gt_cat[:, None] == pred_cat[None, :]
    matched = same & ~gt_crowd[:, None] & (2 * both > union)  # IoU > 0.5 in exact integer arithmetic
    rows, cols = np.nonzero(matched)
    iou = both[rows, cols] / union[rows, cols]
    counts = np.zeros((4, num_classes), dtype=np.float64)
    counts[TP] = np.bincount(gt_cat[rows], minlength=num_classes)
    counts[IOU] = np.bincount(gt_cat[rows], weights=iou, minlength=num_classes)
    missed = ~matched.any(1) & ~gt_crowd & (gt_area > 0)
    counts[FN] = np.bincount(gt_cat[missed], minlength=num_classes)
    ignored = on_void + (both * (same & gt_crowd[:, None])).sum(0)  # void + own category's crowd
    false = ~matched.any(0) & (pred_area > 0) & (2 * ignored <= pred_area)  # ignored when > half the area
    counts[FP] = np.bincount(pred_cat[false], minlength=num_classes)
    return counts


def panoptic_stats(pred_ids: np.ndarray | Tensor, pred_segments: Sequence[dict], gt_ids: np.ndarray | Tensor,
                   gt_segments: Sequence[dict], num_classes: int,
                   thing_classes: Sequence[int] = ()) -> Tensor:
    """Per-class PQ counts of one image, to be summed over a dataset.

    Args:
        pred_ids: (H, W) integer segment ids of the prediction, 0 = void (numpy array or tensor).
        pred_segments: one dict ``{"id", "category", ...}`` per non-zero id of ``pred_ids``.
        gt_ids: (H, W) integer segment ids of the ground truth, 0 = void.
        gt_segments: one dict ``{"id", "category", "iscrowd", ...}`` per non-zero id of ``gt_ids``.
        num_classes: K; categories are class indices in [0, K).
        thing_classes: the thing class indices; a segment's ``isthing``, when given, must agree.

    Returns:
        float64 (4, K) CPU tensor, rows TP, FP, FN and the sum of matched IoUs (``TP, FP, FN, IOU``).

    Raises:
        DataError: maps of different shapes, an id with no segment entry, a category outside [0, K),
            duplicate or zero segment ids, or a ground-truth segment without ``iscrowd``.
    """
    pred, gt = _id_map(pred_ids, "prediction"), _id_map(gt_ids, "ground-truth")
    if pred.shape != gt.shape:
        raise DataError(f"PanopticQuality: prediction id map {pred.shape} and ground-truth id map {gt.shape} "
                        "differ in shape; predict at the ground truth's size")
    things = frozenset(int(c) for c in thing_classes)
    p_ids, p_cat, _ = _segment_table(pred_segments, "prediction", num_classes, things)
    g_ids, g_cat, g_crowd = _segment_table(gt_segments, "ground-truth", num_classes, things)
    cols = p_ids.size + 1
    pair = np.multiply(_positions(gt, g_ids, "ground-truth"), cols, dtype=np.int64)
    pair += _positions(pred, p_ids, "prediction")
    inter = np.bincount(pair, minlength=(g_ids.size + 1) * cols).reshape(g_ids.size + 1, cols)
    return torch.from_numpy(_image_counts(inter, g_cat, g_crowd, p_cat, num_classes))


def _mean(values: Tensor, keep: Tensor) -> float:
    return float(values[keep].mean()) if bool(keep.any()) else math.nan


def pq_from_stats(stats: Tensor, thing_classes: Sequence[int]) -> dict:
    """PQ, SQ, RQ (fractions 0-1) overall, over things and over stuff, and per class, from (4, K) counts.

    A class with TP + FP + FN = 0 is NaN per class and left out of every mean; a mean over no class is NaN.
    ``n``, ``n_th`` and ``n_st`` say how many classes each mean counts.
    """
    tp, fp, fn, iou = stats.detach().to("cpu", torch.float64)
    denominator = tp + 0.5 * fp + 0.5 * fn
    counted = (tp + fp + fn) > 0
    nan = torch.full_like(tp, math.nan)
    pq = torch.where(counted, iou / denominator, nan)
    sq = torch.where(tp > 0, iou / tp, torch.where(counted, 0.0, nan))  # panopticapi: SQ 0 when TP = 0
    rq = torch.where(counted, tp / denominator, nan)
    thing = torch.zeros_like(counted)
    thing[list(thing_classes)] = True
    result: dict = {}
    for suffix, group in (("", torch.ones_like(counted)), ("_th", thing), ("_st", ~thing)):
        keep = counted & group
        result.update({f"PQ{suffix}": _mean(pq, keep), f"SQ{suffix}": _mean(sq, keep),
                       f"RQ{suffix}": _mean(rq, keep), f"n{suffix}": int(keep.sum())})
    result.update({"per_class_pq": pq.tolist(), "per_class_sq": sq.tolist(), "per_class_rq": rq.tolist(),
                   "per_class_tp": tp.long().tolist(), "per_class_fp": fp.long().tolist(),
                   "per_class_fn": fn.long().tolist()})
    return result


class PanopticQuality:
    """Dataset-level panoptic quality: sums per-class TP, FP, FN and IoU over images, then divides once.

    Each class's PQ uses the counts of every image (as panopticapi does), not a mean of per-image scores.
    Under DDP, call :meth:`reduce` once on every rank after the last update and before :meth:`compute`.
    """

    def __init__(self, num_classes: int, thing_classes: Sequence[int]) -> None:
        """Set up empty counts for ``num_classes`` classes; ``thing_classes`` are the thing class indices."""
        if int(num_classes) < 1:
            raise ConfigError(f"PanopticQuality: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        things = [int(c) for c in thing_classes]
        bad = [c for c in things if not 0 <= c < self.num_classes]
        if bad or len(set(things)) != len(things):
            raise ConfigError(f"PanopticQuality: thing_classes {things} must be distinct class indices in "
                              f"[0, {self.num_classes})" + (f"; {bad} are not" if bad else "; some repeat"))
        self.thing_classes = sorted(things)
        self.stuff_classes = [c for c in range(self.num_classes) if c not in set(things)]
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._stats = torch.zeros(4, self.num_classes, dtype=torch.float64)
        self._reduced = False

    def update(self, pred_ids: np.ndarray | Tensor, pred_segments: Sequence[dict], gt_ids: np.ndarray | Tensor,
               gt_segments: Sequence[dict]) -> None:
        """Add one image (arguments as in :func:`panoptic_stats`)."""
        if self._reduced:
            raise SeglabError("PanopticQuality.update() after reduce(): the counts are already global; "
                              "call reset() before accumulating a new evaluation")
        self._stats += panoptic_stats(pred_ids, pred_segments, gt_ids, gt_segments, self.num_classes,
                                      self.thing_classes)

    def reduce(self) -> None:
        """Sum the counts over DDP ranks (one all_reduce); a no-op without torch.distributed or when done."""
        if self._reduced or not (dist.is_available() and dist.is_initialized()):
            return
        stats = self._stats.cuda() if dist.get_backend() == "nccl" else self._stats
        dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        self._stats = stats.cpu()
        self._reduced = True

    def compute(self) -> dict:
        """The metrics dict of :func:`pq_from_stats` (PQ, SQ, RQ, their _th / _st splits, per-class lists)."""
        return pq_from_stats(self._stats, self.thing_classes)
