"""One image of a review: its pictures and its own metrics, computed by the code ``seglab evaluate`` runs.

Each per-image number is the dataset metric on a one-image split (so it equals ``seglab evaluate`` on a
split holding only that image): ``SegMetrics`` + ``BoundaryMetrics`` for semantic runs, COCO AP
(``inference.instance.coco_ap``) on the image's own annotations for instance runs, ``PanopticScorer`` for
panoptic runs. Instance and panoptic results are also painted as a class map (the "implied" semantic map:
instance background is class 0, panoptic void is no class), so every task gets the same error pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seglab.review.kinds import error_kinds

SCORE_THRESHOLD = 0.5  # detections shown, painted and classified (as `seglab predict` keeps them)


@dataclass
class Sample:
    """One reviewed image: ``truth`` / ``pred`` class maps (``ignore_index`` = not scored / no class),
    ``confidence`` the probability of the predicted class (None when the source has none)."""

    stem: str
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    confidence: np.ndarray | None
    metrics: dict[str, Any]
    kinds: dict[str, int] | None = None


def semantic_metrics(pred: np.ndarray, truth: np.ndarray, num_classes: int, ignore_index: int) -> dict[str, Any]:
    """mIoU, pixel accuracy, boundary IoU and per-class IoU of one image, as ``seglab evaluate`` computes them."""
    from seglab.metrics import BoundaryMetrics, SegMetrics

    p = torch.from_numpy(np.ascontiguousarray(pred).astype(np.int64))[None]
    t = torch.from_numpy(np.ascontiguousarray(truth).astype(np.int64))[None]
    seg, boundary = SegMetrics(num_classes, ignore_index=ignore_index), BoundaryMetrics(num_classes,
                                                                                        ignore_index=ignore_index)
    seg.update(p, t)
    boundary.update(p, t)
    m, b = seg.compute(), boundary.compute()
    return {"mean_iou": m["mean_iou"], "pixel_accuracy": m["pixel_accuracy"], "boundary_iou": b["boundary_iou"],
            "per_class_iou": list(m["per_class_iou"])}


def image_ground_truth(gt: dict, image_id: int) -> dict:
    """The COCO ground truth of one image (all categories kept): a one-image split's annotation file."""
    return {**gt, "images": [im for im in gt["images"] if int(im["id"]) == image_id],
            "annotations": [a for a in gt.get("annotations", []) if int(a["image_id"]) == image_id]}


def instance_metrics(detections: list[dict], gt: dict) -> dict[str, Any]:
    """Mask and box AP of one image's detections against its ground truth (``gt`` from
    :func:`image_ground_truth`), by the COCO code ``seglab evaluate`` runs."""
    from seglab.inference.instance import coco_ap

    m = coco_ap(detections, gt)
    return {"mask_AP": m["mask_AP"], "mask_AP50": m["mask_AP50"], "box_AP": m["box_AP"]}


def paint(masks: np.ndarray, labels: np.ndarray, shape: tuple[int, int], order: np.ndarray | None = None,
          background: int = 0) -> np.ndarray:
    """A class map from instance masks: pixels of no mask are ``background``; where masks overlap, the one
    later in ``order`` (default: as given) wins."""
    out = np.full(shape, background, dtype=np.int64)
    for i in (range(len(labels)) if order is None else order):
        out[masks[i]] = int(labels[i])
    return out


def instance_sample(stem: str, image: np.ndarray, gt_masks: np.ndarray, gt_labels: np.ndarray,
                    pred: dict[str, np.ndarray], metrics: dict[str, Any], num_classes: int,
                    ignore_index: int) -> Sample:
    """One instance image: ``pred`` holds ``masks`` (N, H, W) bool, ``labels``, ``scores`` and optionally
    ``mask_probs``; only detections scoring >= :data:`SCORE_THRESHOLD` are painted and classified.

    Pixel confidence: a kept detection's score times its mask probability (the best such value over the
    detections covering the pixel); a background pixel's is one minus the best value there.
    """
    keep = np.asarray(pred["scores"]) >= SCORE_THRESHOLD
    masks, labels, scores = pred["masks"][keep].astype(bool), np.asarray(pred["labels"])[keep], pred["scores"][keep]
    shape = image.shape[:2]
    truth = paint(gt_masks.astype(bool), gt_labels, shape)
    guess = paint(masks, labels, shape, order=np.argsort(scores, kind="stable"))
    confidence = None
    if "mask_probs" in pred:
        fg = np.zeros(shape, dtype=np.float32)
        for prob, score in zip(np.asarray(pred["mask_probs"])[keep], scores, strict=True):
            np.maximum(fg, prob * float(score), out=fg)
        confidence = np.where(guess > 0, fg, 1.0 - fg).astype(np.float32)
    kinds = error_kinds(masks, labels, scores, gt_masks.astype(bool), gt_labels)
    pixel = semantic_metrics(guess, truth, num_classes, ignore_index)
    return Sample(stem, image, truth, guess, confidence, {**metrics, **pixel}, kinds)


def panoptic_sample(stem: str, image: np.ndarray, ids: np.ndarray, segments: list[dict], pred: dict[str, Any],
                    classes: list[str], thing_classes: list[int], cat_ids: list[int],
                    ignore_index: int) -> Sample:
    """One panoptic image: PQ / SQ / RQ, the implied mIoU and AP by ``PanopticScorer`` on this image alone, the
    class maps (void = ``ignore_index``) and the error kinds of its thing segments."""
    from seglab.inference.panoptic import PanopticScorer, semantic_map

    scorer = PanopticScorer(classes, thing_classes, cat_ids)
    scorer.add(pred, ids, segments, 1)
    m = scorer.compute()
    k = len(classes)
    truth = semantic_map(ids, segments, k).numpy()
    guess = semantic_map(pred["ids"], pred["segments"], k).numpy()
    truth[truth == k], guess[guess == k] = ignore_index, ignore_index
    pred_ids = np.asarray(pred["ids"])
    things = set(thing_classes)

    def instances(id_map: np.ndarray, segs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kept = [s for s in segs if int(s["category"]) in things and not s.get("iscrowd")]
        masks = np.stack([id_map == int(s["id"]) for s in kept]) if kept else np.zeros((0, *id_map.shape), bool)
        return masks, np.array([int(s["category"]) for s in kept]), np.array([float(s.get("score", 1.0))
                                                                              for s in kept])

    pm, pl, ps = instances(pred_ids, pred["segments"])
    gm, gl, _ = instances(np.asarray(ids), segments)
    metrics = {"PQ": m["PQ"], "SQ": m["SQ"], "RQ": m["RQ"], "mean_iou": m["mean_iou"],
               "pixel_accuracy": m["pixel_accuracy"], "per_class_iou": list(m["per_class_iou"])}
    return Sample(stem, image, truth, guess, None, metrics, error_kinds(pm, pl, ps, gm, gl))

