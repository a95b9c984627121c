"""Dataset-level error statistics of a review: where the pixels go wrong, not only how many.

Every statistic is a count added image by image (so a 1,000-image split streams in bounded memory):

- the confusion matrix (truth x prediction, pixels), shown raw and row-normalized;
- pixel errors by chessboard distance to a truth boundary (the boundary metrics' distance), in the bins
  ``<= 1``, ``2-3``, ``4-8`` and ``> 8`` px: a model that is only sloppy at edges has its errors in the first;
- pixel errors by the area of the truth's connected component each pixel lies in (COCO's object sizes:
  small < 32², medium < 96², large): a model that misses small things has its errors in the first;
- calibration: a reliability diagram over 15 equal confidence bins and the expected calibration error
  ``ECE = sum_b n_b / N * |accuracy_b - confidence_b|`` (Guo et al., 2017; bins ``((b-1)/15, b/15]``).

Ignored pixels (``ignore_index`` in the truth) are left out of every count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

ECE_BINS = 15
CONFIDENT = 0.9  # a confident disagreement with the label at p >= this is a suspected label error
DISTANCE_BINS = (("<= 1 px", 1), ("2-3 px", 3), ("4-8 px", 8), ("> 8 px", math.inf))
SIZE_BINS = (("small (< 32²)", 32 ** 2), ("medium (< 96²)", 96 ** 2), ("large", math.inf))


def boundary_distance(truth: np.ndarray) -> np.ndarray:
    """Chessboard distance of each pixel to the nearest truth boundary (0 on it), as int32 ``(H, W)``.

    A boundary pixel has a 4-neighbour of another value (ignore counts as a value: it splits regions, as in
    :mod:`seglab.metrics.boundary`); the picture's frame is not a boundary. No boundary at all: every pixel
    is far (a large number).
    """
    edge = np.zeros(truth.shape, dtype=bool)
    dy, dx = truth[1:] != truth[:-1], truth[:, 1:] != truth[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    if not edge.any():
        return np.full(truth.shape, np.iinfo(np.int32).max, dtype=np.int32)
    return ndimage.distance_transform_cdt(~edge, metric="chessboard").astype(np.int32)


def component_areas(truth: np.ndarray, ignore_index: int) -> np.ndarray:
    """The pixel area of the truth's 4-connected same-class component at each pixel (0 where ignored)."""
    areas = np.zeros(truth.shape, dtype=np.int64)
    for c in np.unique(truth):
        if c == ignore_index:
            continue
        mask = truth == c
        labels, _ = ndimage.label(mask)
        areas[mask] = np.bincount(labels.ravel())[labels[mask]]
    return areas


def calibration_counts(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """``(3, bins)`` float64: pixel count, summed confidence and summed correctness of each confidence bin.

    Bin ``b`` (0-based) holds confidences in ``(b / bins, (b + 1) / bins]``; a confidence of 0 joins bin 0.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    return np.stack([np.bincount(which, minlength=bins).astype(np.float64),
                     np.bincount(which, weights=conf, minlength=bins),
                     np.bincount(which, weights=np.asarray(correct, dtype=np.float64).ravel(), minlength=bins)])


def expected_calibration_error(counts: np.ndarray) -> float:
    """ECE from :func:`calibration_counts` (summed over images); NaN when no pixel was counted."""
    n, conf, right = counts
    total = n.sum()
    if total == 0:
        return math.nan
    seen = n > 0
    return float(np.sum(n[seen] / total * np.abs(right[seen] / n[seen] - conf[seen] / n[seen])))


class DatasetStats:
    """The review's dataset-level counts for ``num_classes`` classes, added one image at a time."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.k, self.ignore_index = num_classes, ignore_index
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.void = np.zeros(num_classes, dtype=np.int64)  # truth pixels predicted as no class (panoptic void)
        self.distance = np.zeros((2, len(DISTANCE_BINS)), dtype=np.int64)  # errors, pixels
        self.size = np.zeros((2, len(SIZE_BINS)), dtype=np.int64)
        self.calibration = np.zeros((3, ECE_BINS), dtype=np.float64)
        self.has_confidence = False

    def add(self, truth: np.ndarray, pred: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """One image: truth and prediction ``(H, W)`` class indices (``ignore_index`` in the prediction = none),
        ``confidence`` the probability of the predicted class at each pixel, when the source has one."""
        valid = truth != self.ignore_index
        t, p = truth[valid].astype(np.int64), pred[valid].astype(np.int64)
        known = p < self.k
        self.confusion += np.bincount(t[known] * self.k + p[known], minlength=self.k ** 2).reshape(self.k, self.k)
        self.void += np.bincount(t[~known], minlength=self.k)
        wrong = p != t
        dist = boundary_distance(truth)[valid]
        edges = [b for _, b in DISTANCE_BINS[:-1]]
        self._bin(self.distance, np.searchsorted(edges, dist, side="left"), wrong)
        area = component_areas(truth, self.ignore_index)[valid]
        self._bin(self.size, np.searchsorted([b for _, b in SIZE_BINS[:-1]], area, side="right"), wrong)
        if confidence is not None:
            self.has_confidence = True
            self.calibration += calibration_counts(confidence[valid], ~wrong)

    @staticmethod
    def _bin(table: np.ndarray, which: np.ndarray, wrong: np.ndarray) -> None:
        n = table.shape[1]
        table[0] += np.bincount(which[wrong], minlength=n)
        table[1] += np.bincount(which, minlength=n)

    def record(self) -> dict[str, Any]:
        """The JSON the page draws: every table with its labels, rates as fractions (None where undefined)."""
        rows = self.confusion.sum(1, keepdims=True)
        normalized = np.where(rows > 0, self.confusion / np.maximum(rows, 1), 0.0)

        def table(counts: np.ndarray, bins: tuple) -> list[dict[str, Any]]:
            return [{"bin": name, "errors": int(e), "pixels": int(n), "error_rate": e / n if n else None,
                     "share_of_errors": e / counts[0].sum() if counts[0].sum() else None}
                    for (name, _), e, n in zip(bins, counts[0], counts[1], strict=True)]

        n, conf, right = self.calibration
        reliability = [{"low": b / ECE_BINS, "high": (b + 1) / ECE_BINS, "pixels": int(n[b]),
                        "confidence": conf[b] / n[b] if n[b] else None, "accuracy": right[b] / n[b] if n[b] else None}
                       for b in range(ECE_BINS)]
        ece = expected_calibration_error(self.calibration) if self.has_confidence else math.nan
        return {"confusion": self.confusion.tolist(), "confusion_normalized": np.round(normalized, 4).tolist(),
                "predicted_void": self.void.tolist(), "by_distance": table(self.distance, DISTANCE_BINS),
                "by_size": table(self.size, SIZE_BINS),
                "reliability": reliability if self.has_confidence else None,
                "ece": None if math.isnan(ece) else ece}
