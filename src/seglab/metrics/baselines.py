"""Trivial baselines of a split: the sanity bar every trained model's score is read against.

Two rules that need no training: every pixel the majority class, and (two-class data) the best single
gray-level threshold. A model that does not clearly beat them has learned nothing a histogram does not know
(issue 25: twelve minutes of training matched a five-line Otsu threshold). Both are chosen on the split they
are scored on, so they are the best each rule can do there: a strict bar. Both are scored with the real
metric's rules (:func:`seglab.metrics.metrics_from_confusion`: ignored pixels left out, classes absent from
truth and prediction skipped in the mean). One pass over the split, histograms only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seglab.metrics.confusion import metrics_from_confusion

MARGIN = 0.10  # mIoU a model must be above the best baseline to count as clearly above it
LEVELS = 256


@dataclass(frozen=True)
class Baselines:
    """The trivial baselines' mIoU on one split.

    Attributes:
        majority_class: the class with the most (non-ignored) pixels; ``majority_iou``: the mIoU of predicting it
            everywhere.
        threshold, polarity, threshold_iou: two-class data only (else ``None``): the gray level ``t`` (gray = mean
            of the channels, 0-255) and side whose rule "class 1 where gray >= t" (``polarity`` ``"above"``) or
            "class 1 where gray < t" (``"below"``) scores best, and that mIoU.
    """

    majority_class: int
    majority_iou: float
    threshold: int | None = None
    polarity: str | None = None
    threshold_iou: float | None = None

    @property
    def best(self) -> float:
        """The higher of the baselines' mIoU."""
        return max(v for v in (self.majority_iou, self.threshold_iou) if v is not None and not math.isnan(v))

    def record(self) -> dict[str, Any]:
        """JSON-safe fields (``--json`` and the report)."""
        return {"majority_class": self.majority_class, "majority_mean_iou": self.majority_iou,
                "threshold": self.threshold, "threshold_polarity": self.polarity,
                "threshold_mean_iou": self.threshold_iou, "best_mean_iou": self.best}

    def lines(self, classes: list[str] | None = None) -> list[str]:
        """One sentence per baseline, e.g. ``every pixel 'road': mIoU 0.112``."""
        name = classes[self.majority_class] if classes and self.majority_class < len(classes) else \
            f"class {self.majority_class}"
        out = [f"every pixel {name!r} (the majority class): mIoU {self.majority_iou:.4f}"]
        if self.threshold_iou is not None:
            side = ">=" if self.polarity == "above" else "<"
            out.append(f"best gray-level threshold (class 1 where gray {side} {self.threshold}): mIoU "
                       f"{self.threshold_iou:.4f}")
        return out

    def markdown(self, model_iou: float, classes: list[str] | None = None) -> list[str]:
        """report.md's sanity-bar section: the baselines, then the warning or the margin."""
        warning = self.warning(model_iou)
        return ["## Sanity bar: trivial baselines on the validation split", "",
                "Each chosen on the validation split itself (the best the rule can do there), scored like the model "
                "(mIoU, same ignore rules):", "", *(f"- {line}" for line in self.lines(classes)), "",
                f"**Warning:** {warning}" if warning else
                f"The model's best mIoU ({model_iou:.4f}) is clearly above them (by {model_iou - self.best:.3f}).", ""]

    def warning(self, model_iou: float, margin: float = MARGIN) -> str | None:
        """Words for a model that is not clearly above the baselines (``None`` when it is)."""
        if math.isnan(model_iou) or model_iou >= self.best + margin:
            return None
        gap = model_iou - self.best
        standing = f"{-gap:.3f} below" if gap < 0 else f"only {gap:.3f} above"
        return (f"Not clearly above the trivial baselines: the model's mIoU {model_iou:.3f} is {standing} the best "
                f"of them ({self.best:.3f}; a clear margin is {margin:.2f}). It has learned little that "
                + ("a class count or one global gray threshold" if self.threshold_iou is not None else "a class count")
                + " does not know. Check the training scale (data.resize: do crops hold whole objects?), the crop "
                "size, the budget and the labels.")


def baselines_from_histograms(class_counts: np.ndarray, gray: np.ndarray | None = None) -> Baselines:
    """Baselines from per-class pixel counts ``(K,)`` and, for two classes, a ``(2, 256)`` gray histogram per
    class (ignored pixels already left out of both)."""
    counts = np.asarray(class_counts, dtype=np.int64)
    k = len(counts)
    majority = int(counts.argmax())
    cm = torch.zeros(k, k, dtype=torch.int64)
    cm[:, majority] = torch.from_numpy(counts)
    majority_iou = metrics_from_confusion(cm)["mean_iou"]
    if gray is None or k != 2:
        return Baselines(majority, majority_iou)
    hist = np.asarray(gray, dtype=np.int64)
    total = hist.sum(1)
    # pixels of each class at gray >= t, for t = 0..256 (t = 256: none): "above" predicts class 1 there, "below"
    # everywhere else. Every candidate's mIoU at once (the real metric's formula), the winner re-scored by it.
    above = np.concatenate([np.cumsum(hist[:, ::-1], axis=1)[:, ::-1], np.zeros((2, 1), np.int64)], axis=1).T
    ones = np.concatenate([above, total - above])  # (2 x 257 candidates, 2 classes): class-1 predictions
    cms = np.stack([np.stack([total[0] - ones[:, 0], ones[:, 0]], 1), np.stack([total[1] - ones[:, 1], ones[:, 1]], 1)],
                   1).astype(np.float64)  # (candidates, truth, prediction)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (cms.sum(2) + cms.sum(1) - tp)
    score = np.where(np.isnan(iou), 0, iou).sum(1) / np.maximum((~np.isnan(iou)).sum(1), 1)
    i = int(score.argmax())  # the first best: the lowest threshold, "above" before "below"
    miou = metrics_from_confusion(torch.from_numpy(cms[i].astype(np.int64)))["mean_iou"]
    return Baselines(majority, majority_iou, i % (LEVELS + 1), "above" if i <= LEVELS else "below", miou)


def gray_levels(image: np.ndarray) -> np.ndarray:
    """Gray level 0-255 of each pixel of an ``(H, W[, C])`` uint8 image: the mean of its channels, rounded."""
    return image.astype(np.float32).reshape(*image.shape[:2], -1).mean(-1).round().astype(np.int64)


def split_baselines(root: str | os.PathLike, split: str, num_classes: int, ignore_index: int = 255,
                    callback: Callable[[int, int], None] | None = None) -> Baselines:
    """The trivial baselines of a folder dataset's split (one pass: label counts, and gray histograms when
    ``num_classes`` is 2)."""
    from seglab.data.io import read_image, read_label
    from seglab.data.semantic.dataset import SegmentationFolder

    samples = SegmentationFolder(root, split, ignore_index=ignore_index, num_classes=num_classes,
                                 check=False).samples
    counts = np.zeros(num_classes, np.int64)
    gray = np.zeros((2, LEVELS), np.int64) if num_classes == 2 else None
    for i, (image_path, label_path) in enumerate(samples):
        label = read_label(label_path).astype(np.int64)
        keep = (label != ignore_index) & (label < num_classes) & (label >= 0)
        counts += np.bincount(label[keep], minlength=num_classes)[:num_classes]
        if gray is not None:
            levels = gray_levels(read_image(image_path, channels=3))
            if levels.shape == label.shape:
                gray += np.bincount(label[keep] * LEVELS + levels[keep], minlength=2 * LEVELS).reshape(2, LEVELS)
        if callback is not None:
            callback(i + 1, len(samples))
    return baselines_from_histograms(counts, gray)
