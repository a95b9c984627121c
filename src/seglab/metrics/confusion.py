"""Semantic-segmentation metrics, all derived from one dataset-level confusion matrix.

Each batch is counted in one pass over the pair index ``target * (C + 1) + pred``: ``torch.bincount`` on
GPUs, ``index_add_`` of ones on CPU (same counts, no extra min/max passes). Rows are truth, columns are
prediction. The row stride is ``C + 1`` rather than ``C`` so that column ``C`` is a bin no valid pair reaches.
Ignored pixels are never copied out with a boolean mask: when ``ignore_index >= C`` (the usual 255) they
simply fill their own row ``ignore_index`` of the counts, otherwise they are written to bin ``C``. A target
value outside ``[0, C)`` then lands outside the counts or in a row between ``C`` and ``ignore_index``, so bad
labels are caught without another pass over the data.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from seglab.errors import ConfigError, SeglabError
from seglab.metrics.inputs import class_indices, target_error

_RAW_BINS_LIMIT = 1 << 16  # ignored pixels keep their own row while the counts stay this small


def _layout(num_classes: int, ignore_index: int) -> tuple[int, bool]:
    """(number of bins, whether ignored pixels keep their own row ``ignore_index``)."""
    stride = num_classes + 1
    if num_classes <= ignore_index and (ignore_index + 1) * stride <= _RAW_BINS_LIMIT:
        return (ignore_index + 1) * stride, True
    return num_classes * stride, False


def _pair_index(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int, raw: bool,
                out: Tensor | None = None) -> Tensor:
    """``target * (C + 1) + pred`` (into ``out`` when it fits); unless ``raw``, ignored pixels go to bin C."""
    dtype = torch.promote_types(pred.dtype, target.dtype)
    if dtype != torch.int64:  # narrower types would overflow; int32 is exact and needs no int64 temporary
        dtype = torch.int32
        pred, target = pred.to(dtype), target.to(dtype)
    if out is None or out.shape != target.shape or out.device != target.device or out.dtype != dtype:
        out = torch.empty(target.shape, dtype=dtype, device=target.device)
    torch.add(pred, target, alpha=num_classes + 1, out=out)
    if not raw:
        out.masked_fill_(target == ignore_index, num_classes)
    return out


def _count(index: Tensor, bins: int) -> Tensor | None:
    """How often each value in [0, bins) occurs in ``index``; None if a value lies outside (a bad target)."""
    flat = index.reshape(-1)
    if flat.device.type == "cpu":
        # index_add_ of ones counts in one pass and checks bounds on the way; torch.bincount adds a min
        # and a max pass over the data first, which made it ~2x slower here (benchmarks/metrics.py).
        ones = torch.ones(1, dtype=torch.int64).expand(flat.numel())
        try:
            return torch.zeros(bins, dtype=torch.int64).index_add_(0, flat, ones)
        except IndexError:  # negative or too large
            return None
    # On GPUs an out-of-range index_add_ is a device assert, so bincount, which grows its output instead.
    low, high = torch.aminmax(flat)
    if int(low) < 0 or int(high) >= bins:
        return None
    return torch.bincount(flat, minlength=bins)


def _fold(counts: Tensor, num_classes: int, raw: bool) -> Tensor | None:
    """(..., bins) counts -> (..., C, C) int64 matrix, dropping the ignore bins; None if a bad row is hit."""
    stride = num_classes + 1
    if raw and bool(counts[..., num_classes * stride:-stride].any()):  # rows C .. ignore_index - 1
        return None
    valid = counts[..., :num_classes * stride]
    return valid.reshape(*counts.shape[:-1], num_classes, stride)[..., :num_classes]


def _batch_confusion(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int,
                     out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(C, C) matrix of a checked batch and the index buffer used (to reuse next time)."""
    bins, raw = _layout(num_classes, ignore_index)
    index = _pair_index(pred, target, num_classes, ignore_index, raw, out)
    counts = _count(index, bins)
    cm = None if counts is None else _fold(counts, num_classes, raw)
    if cm is None:
        raise target_error(target, num_classes, ignore_index)
    return cm, index


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Confusion matrix of one batch, pixels equal to ``ignore_index`` in ``target`` left out.

    Args:
        pred: class indices (N, H, W) or scores (N, C, H, W) (argmax taken); (H, W) for one image.
        target: truth (N, H, W) integer class indices.
        num_classes: C.
        ignore_index: target value to skip.

    Returns:
        int64 (C, C) tensor on the inputs' device, rows = truth, columns = prediction.
    """
    pred, target = class_indices(pred, target, num_classes)
    return _batch_confusion(pred, target, num_classes, ignore_index)[0]


def _nanmean(values: Tensor) -> float:
    return float(torch.nanmean(values)) if values.numel() else math.nan


def _iou(cm: Tensor) -> Tensor:
    """Per-class IoU of (..., C, C) float64 matrices; NaN where a class is absent from truth and prediction."""
    tp = cm.diagonal(dim1=-2, dim2=-1)
    union = cm.sum(-1) + cm.sum(-2) - tp
    return tp / union  # 0 / 0 -> NaN, the study guide's "class not there" marker


def metrics_from_confusion(cm: Tensor) -> dict:
    """Every semantic metric from a (C, C) confusion matrix (rows = truth, columns = prediction).

    Undefined values are NaN: a class absent from truth and prediction has NaN IoU and Dice, a class absent
    from truth has NaN accuracy, and means skip NaNs (as the study guide's mIoU does).
    """
    counts = cm.detach().to("cpu", torch.int64)
    m = counts.double()
    tp, truth, predicted = m.diagonal(), m.sum(1), m.sum(0)
    total = m.sum()
    iou = _iou(m)
    dice = 2 * tp / (truth + predicted)  # = 2 IoU / (1 + IoU)
    accuracy = tp / truth
    present = truth > 0
    fw_iou = float((truth[present] / total * iou[present]).sum()) if total > 0 else math.nan
    return {
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        "mean_accuracy": _nanmean(accuracy),
        "per_class_accuracy": accuracy.tolist(),
        "per_class_iou": iou.tolist(),
        "mean_iou": _nanmean(iou),
        "per_class_dice": dice.tolist(),
        "mean_dice": _nanmean(dice),
        "fw_iou": fw_iou,
        "confusion_matrix": counts,
    }


class SegMetrics:
    """Accumulates a dataset-level confusion matrix batch by batch; ``compute()`` derives the metrics.

    Dataset-level means each class's IoU is TP / (TP + FP + FN) summed over every pixel of every batch,
    not an average of per-batch scores (see docs/metrics.md). ``per_image=True`` also reports
    ``mean_iou_per_image``: the mean over images of each image's NaN-aware mIoU (fully ignored images skipped).

    Under DDP, call :meth:`reduce` once on every rank after the last update and before :meth:`compute`.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None,
                 per_image: bool = False) -> None:
        """Set up empty counts; ``device`` (optional) is where inputs are moved and the matrix lives."""
        if int(num_classes) < 1:
            raise ConfigError(f"SegMetrics: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.device = None if device is None else torch.device(device)
        self.per_image = per_image
        self._scratch: Tensor | None = None  # reused pair-index buffer: no page faults for a fresh one
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._counts: Tensor | None = None
        self._image_stats: Tensor | None = None  # float64 (sum of per-image mIoU, number of images)
        self._reduced = False

    def _state(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if self._counts is None:
            c = self.num_classes
            self._counts = torch.zeros(c, c, dtype=torch.int64, device=device)
            self._image_stats = torch.zeros(2, dtype=torch.float64, device=device)
        return self._counts, self._image_stats

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch: ``pred`` (N, H, W) class indices or (N, C, H, W) scores, ``target`` (N, H, W)."""
        if self._reduced:
            raise SeglabError("SegMetrics.update() after reduce(): the counts are already global; "
                              "call reset() before accumulating a new evaluation")
        device = self.device or (self._counts.device if self._counts is not None else target.device)
        pred, target = pred.to(device, non_blocking=True), target.to(device, non_blocking=True)
        c = self.num_classes
        pred, target = class_indices(pred, target, c)
        counts, image_stats = self._state(device)
        if not self.per_image:
            cm, self._scratch = _batch_confusion(pred, target, c, self.ignore_index, self._scratch)
            counts += cm
            return
        per_image = self._per_image_confusion(pred, target)
        counts += per_image.sum(0)
        image_miou = torch.nanmean(_iou(per_image.double()), dim=1)
        seen = ~image_miou.isnan()
        image_stats += torch.stack([image_miou[seen].sum(), seen.sum().double()])

    def _per_image_confusion(self, pred: Tensor, target: Tensor) -> Tensor:
        """(N, C, C): the image number offsets the pair index, so it is still one counting pass."""
        c = self.num_classes
        bins = c * (c + 1)
        index = _pair_index(pred, target, c, self.ignore_index, raw=False).long()
        low, high = torch.aminmax(index)
        if int(low) < 0 or int(high) >= bins:  # checked here: offsets would hide it in the next image
            raise target_error(target, c, self.ignore_index)
        index += torch.arange(0, index.shape[0] * bins, bins, device=index.device).view(-1, 1, 1)
        counts = _count(index, index.shape[0] * bins)
        return _fold(counts.view(-1, bins), c, raw=False)

    def reduce(self) -> None:
        """Sum the counts over DDP ranks (all_reduce); a no-op without torch.distributed or when done."""
        if self._reduced or not (dist.is_available() and dist.is_initialized()):
            return
        if self._counts is None:  # a rank that saw no batch still has to join the collective
            backend_device = torch.device("cuda", torch.cuda.current_device()) \
                if dist.get_backend() == "nccl" else torch.device("cpu")
            self._state(self.device or backend_device)
        dist.all_reduce(self._counts, op=dist.ReduceOp.SUM)
        if self.per_image:
            dist.all_reduce(self._image_stats, op=dist.ReduceOp.SUM)
        self._reduced = True

    def compute(self) -> dict:
        """The metrics dict (keys in :func:`metrics_from_confusion`, plus ``mean_iou_per_image`` if asked)."""
        counts, image_stats = self._state(self.device or torch.device("cpu"))
        result = metrics_from_confusion(counts)
        if self.per_image:
            total, images = image_stats.tolist()
            result["mean_iou_per_image"] = total / images if images > 0 else math.nan
        return result
