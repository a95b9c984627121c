"""Boundary-aware metrics: they score the thin bands where region metrics are blind to sloppy edges.

- Boundary IoU (Cheng et al., "Boundary IoU", CVPR 2021): IoU of the inner bands ``M \\ erode(M, band)`` of
  the predicted and true masks of each class.
- Boundary F-score (Csurka et al., BMVC 2013; Perazzi et al., CVPR 2016): precision / recall of the
  1-pixel contours, a contour pixel counting as matched when the other contour lies within ``band`` pixels.

Morphology is a max over a (2 * band + 1)-square window (chessboard distance), so it runs on whatever
device the tensors are on. The image frame is not a contour: a class that touches the picture's edge has no
boundary there. Pixels whose target is ``ignore_index`` are left out of every count (they do split the true
regions, so a region next to an ignored band has a contour along it).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from seglab.errors import ConfigError
from seglab.metrics.inputs import class_indices, target_error

_CHUNK = 1 << 24  # one-hot elements per class chunk: bounds memory at 64 MB of float32 per mask


def _max_along(mask: Tensor, radius: int, dim: int) -> Tensor:
    """Max over a window of ``2 * radius + 1`` along ``dim``; the frame does not enter (as -inf padding)."""
    n = mask.shape[dim]
    out = mask.clone()
    for d in range(1, min(radius, n - 1) + 1):
        head, tail = out.narrow(dim, 0, n - d), out.narrow(dim, d, n - d)
        torch.maximum(head, mask.narrow(dim, d, n - d), out=head)
        torch.maximum(tail, mask.narrow(dim, 0, n - d), out=tail)
    return out


def _dilate(mask: Tensor, radius: int) -> Tensor:
    # A square max is separable, and shifted elementwise maxima are about 4x faster on CPU than max_pool2d
    # with the same (exact) result, on any device: this is most of the cost of boundary IoU.
    return _max_along(_max_along(mask, radius, -1), radius, -2)


def _inner_band(mask: Tensor, radius: int) -> Tensor:
    # the window never reaches past the frame, so outside it never erodes the mask: the frame is not a contour.
    return mask - (-_dilate(-mask, radius))


def _validated(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int,
               band: int) -> tuple[Tensor, Tensor]:
    if int(band) < 1:
        raise ConfigError(f"boundary metrics: band must be a whole number of pixels >= 1, got {band}")
    pred, target = class_indices(pred, target, num_classes)
    valid = target != ignore_index
    if bool((valid & ((target < 0) | (target >= num_classes))).any()):
        raise target_error(target, num_classes, ignore_index)
    return pred, target


def boundary_stats(pred: Tensor, target: Tensor, num_classes: int, band: int = 3,
                   ignore_index: int = 255) -> Tensor:
    """Per-class boundary counts of one batch, to be summed over a dataset.

    Args:
        pred: class indices (N, H, W) or scores (N, C, H, W).
        target: truth (N, H, W) integer class indices.
        num_classes: C.
        band: band width (Boundary IoU) and match tolerance (Boundary F) in pixels.
        ignore_index: target value to skip.

    Returns:
        int64 (6, C): band intersection, band union, matched predicted contour, predicted contour,
        matched true contour, true contour.
    """
    pred, target = _validated(pred, target, num_classes, ignore_index, band)
    valid = (target != ignore_index).unsqueeze(1)
    step = max(1, _CHUNK // max(1, target.numel()))
    rows = []
    for start in range(0, num_classes, step):
        classes = torch.arange(start, min(start + step, num_classes), device=target.device).view(1, -1, 1, 1)
        truth = (target.unsqueeze(1) == classes).float()
        guess = (pred.unsqueeze(1) == classes).float()
        truth_band, guess_band = _inner_band(truth, band) > 0, _inner_band(guess, band) > 0
        truth_contour, guess_contour = _inner_band(truth, 1), _inner_band(guess, 1)
        truth_edge, guess_edge = truth_contour * valid, guess_contour * valid
        dims = (0, 2, 3)
        rows.append(torch.stack([
            (truth_band & guess_band & valid).sum(dims),
            ((truth_band | guess_band) & valid).sum(dims),
            (guess_edge * _dilate(truth_contour, band)).sum(dims).long(),
            guess_edge.sum(dims).long(),
            (truth_edge * _dilate(guess_contour, band)).sum(dims).long(),
            truth_edge.sum(dims).long(),
        ]))
    return torch.cat(rows, dim=1)


def iou_from_stats(stats: Tensor) -> Tensor:
    """(C,) float64 boundary IoU; NaN where neither mask has a band."""
    s = stats.double()
    return s[0] / s[1]


def f1_from_stats(stats: Tensor) -> Tensor:
    """(C,) float64 boundary F-score; NaN where neither contour exists, 0 where only one does."""
    s = stats.double()
    precision = torch.nan_to_num(s[2] / s[3])
    recall = torch.nan_to_num(s[4] / s[5])
    f1 = torch.nan_to_num(2 * precision * recall / (precision + recall))
    return torch.where(s[3] + s[5] > 0, f1, torch.nan)


def boundary_iou(pred: Tensor, target: Tensor, num_classes: int, band: int = 3,
                 ignore_index: int = 255) -> Tensor:
    """Per-class Boundary IoU (C,) float64 of one batch (NaN: class has no band); nanmean for the mean."""
    return iou_from_stats(boundary_stats(pred, target, num_classes, band, ignore_index)).cpu()


def boundary_f1(pred: Tensor, target: Tensor, num_classes: int, band: int = 3,
                ignore_index: int = 255) -> Tensor:
    """Per-class Boundary F-score (C,) float64 of one batch with match tolerance ``band`` pixels."""
    return f1_from_stats(boundary_stats(pred, target, num_classes, band, ignore_index)).cpu()


class BoundaryMetrics:
    """Dataset-level Boundary IoU and F-score: sums :func:`boundary_stats` over batches (and DDP ranks)."""

    def __init__(self, num_classes: int, band: int = 3, ignore_index: int = 255) -> None:
        """Set up empty counts for ``num_classes`` classes and a ``band``-pixel band."""
        self.num_classes, self.band, self.ignore_index = num_classes, band, ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._stats = torch.zeros(6, self.num_classes, dtype=torch.int64)
        self._reduced = False

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch (same inputs as :func:`boundary_stats`)."""
        stats = boundary_stats(pred, target, self.num_classes, self.band, self.ignore_index)
        self._stats = self._stats.to(stats.device) + stats

    def reduce(self) -> None:
        """Sum the counts over DDP ranks once; a no-op without torch.distributed."""
        if self._reduced or not (dist.is_available() and dist.is_initialized()):
            return
        if dist.get_backend() == "nccl":
            self._stats = self._stats.cuda()
        dist.all_reduce(self._stats, op=dist.ReduceOp.SUM)
        self._reduced = True

    def compute(self) -> dict:
        """``boundary_iou`` / ``boundary_f1`` (NaN-aware class means) and their per-class lists."""
        iou, f1 = iou_from_stats(self._stats.cpu()), f1_from_stats(self._stats.cpu())
        return {"boundary_iou": float(torch.nanmean(iou)), "per_class_boundary_iou": iou.tolist(),
                "boundary_f1": float(torch.nanmean(f1)), "per_class_boundary_f1": f1.tolist()}
