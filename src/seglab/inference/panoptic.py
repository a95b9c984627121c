"""Panoptic prediction and scoring: PQ, the implied semantic map's mIoU and the implied instances' COCO AP.

One pass over a split feeds three views of the same result, so a user reads PQ (what panoptic models are
compared on) beside the numbers their semantic and instance models were judged by: the class of each
pixel's segment against the labels (mIoU; a pixel predicted void counts as missed), and the model's thing
detections against the thing segments (COCO mask and box AP; crowd segments as COCO crowd regions). Under
DDP each rank scores its shard; the counts are all-reduced and the COCO records gathered, so every rank
returns the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from seglab.inference.scaled import detect_at_scale
from seglab.inference.source import (
    ImageLike,
    check_batch_size,
    eval_mode,
    model_device,
    prepare_image,
    same_size_batches,
)

PANOPTIC_KEYS = ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st")


def predict_panoptic(model: nn.Module, items: Iterable[tuple[Any, ImageLike]], *, batch_size: int = 4,
                     device: str | torch.device | None = None,
                     resize: int | None = None) -> Iterator[tuple[Any, ImageLike, dict[str, Any]]]:
    """Stream ``(key, image, result)`` for ``(key, image)`` pairs; ``result`` is the model's panoptic output
    (``ids``, ``segments``, ``instances``) on the CPU. Consecutive same-size images share a batch."""
    check_batch_size(batch_size)
    dev = model_device(model, device)
    for batch in same_size_batches(items, lambda image: prepare_image(image, in_channels=3), batch_size):
        with torch.inference_mode(), eval_mode(model):
            outputs = detect_at_scale(model, [x.to(dev) for _, _, x in batch], resize)  # data.resize: at scale
        for (key, image, _), out in zip(batch, outputs, strict=True):
            yield key, image, to_cpu(out)


def to_cpu(out: dict[str, Any]) -> dict[str, Any]:
    """A panoptic output with every tensor on the CPU (masks as float32)."""
    inst = {k: v.detach().float().cpu() if k in ("masks", "boxes", "scores") else v.detach().cpu()
            for k, v in out["instances"].items()}
    return {"ids": out["ids"].detach().cpu(), "segments": list(out["segments"]), "instances": inst}


def semantic_map(ids: torch.Tensor | np.ndarray, segments: Sequence[dict], void: int) -> torch.Tensor:
    """The class index of each pixel's segment (``void`` where the id is 0 or unlisted), as a tensor."""
    from seglab.data.panoptic.dataset import semantic_map as class_of_pixels

    ids = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    return torch.from_numpy(np.asarray(class_of_pixels(ids, segments, void), dtype=np.int64))


def thing_annotations(ids: np.ndarray, segments: Sequence[dict], image_id: int,
                      cat_ids: Sequence[int]) -> list[dict]:
    """One image's thing segments as COCO instance annotations (crowd segments with ``iscrowd`` 1)."""
    from seglab.data.rle import encode_mask, rle_area, rle_bbox

    records = []
    for s in segments:
        if not s.get("isthing"):
            continue
        rle = encode_mask(np.asarray(ids) == int(s["id"]))
        records.append({"image_id": int(image_id), "category_id": int(cat_ids[int(s["category"])]),
                        "segmentation": rle, "area": float(rle_area(rle)), "bbox": rle_bbox(rle),
                        "iscrowd": int(s.get("iscrowd", 0))})
    return records


class PanopticScorer:
    """PQ, the implied semantic confusion matrix and the COCO records of a split, added image by image.

    Args:
        classes: panoptic class names (index = class index); ``thing_classes``: the class indices of things;
        ``cat_ids``: the COCO category id of each class (for the AP records).
    """

    def __init__(self, classes: Sequence[str], thing_classes: Sequence[int], cat_ids: Sequence[int]) -> None:
        from seglab.metrics.panoptic import PanopticQuality

        self.classes, self.thing_classes, self.cat_ids = list(classes), list(thing_classes), list(cat_ids)
        self.k = len(self.classes)
        self.pq = PanopticQuality(self.k, self.thing_classes)
        self.confusion = torch.zeros((self.k + 1) ** 2, dtype=torch.int64)  # truth x prediction, K = void
        self.detections: list[dict] = []
        self.truth: list[dict] = []
        self.images: list[dict] = []

    def add(self, pred: dict[str, Any], gt_ids: torch.Tensor | np.ndarray, gt_segments: Sequence[dict],
            image_id: int) -> None:
        """Score one image: ``pred`` is a panoptic output, ``gt_ids``/``gt_segments`` its annotation."""
        from seglab.metrics.coco import predictions_to_coco

        gt = np.asarray(gt_ids.cpu() if isinstance(gt_ids, torch.Tensor) else gt_ids)
        pred_ids = np.asarray(pred["ids"].cpu())
        self.pq.update(pred_ids, pred["segments"], gt, gt_segments)
        truth = semantic_map(gt, gt_segments, self.k).flatten()
        guess = semantic_map(pred_ids, pred["segments"], self.k).flatten()
        keep = truth < self.k
        self.confusion += torch.bincount(truth[keep] * (self.k + 1) + guess[keep], minlength=(self.k + 1) ** 2)
        self.images.append({"id": int(image_id), "height": int(gt.shape[0]), "width": int(gt.shape[1])})
        self.truth += thing_annotations(gt, gt_segments, image_id, self.cat_ids)
        inst = pred["instances"]
        if len(inst.get("labels", ())):
            self.detections += predictions_to_coco([inst], [int(image_id)], cat_ids=self.cat_ids)

    def compute(self) -> dict[str, Any]:
        """Every number, identical on all DDP ranks (a collective: call it on every rank)."""
        from seglab.distributed import gather_lists
        from seglab.metrics.confusion import metrics_from_confusion

        self.pq.reduce()
        metrics = dict(self.pq.compute())
        if dist.is_available() and dist.is_initialized():  # NCCL reduces GPU tensors only
            counts = self.confusion.cuda() if dist.get_backend() == "nccl" else self.confusion
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)
            self.confusion = counts.cpu()
        cm = metrics_from_confusion(self.confusion.view(self.k + 1, self.k + 1))
        iou = [float(v) for v in cm["per_class_iou"][: self.k]]
        metrics.update(mean_iou=_nanmean(iou), per_class_iou=iou, pixel_accuracy=cm["pixel_accuracy"])
        detections, truth, images = gather_lists(self.detections), gather_lists(self.truth), gather_lists(self.images)
        metrics.update(implied_ap(detections, truth, images, self.thing_classes, self.classes, self.cat_ids))
        return metrics


def implied_ap(detections: list[dict], truth: list[dict], images: list[dict], thing_classes: Sequence[int],
               classes: Sequence[str], cat_ids: Sequence[int]) -> dict[str, Any]:
    """COCO mask and box AP of the thing detections (NaN when the split holds no thing segment)."""
    from seglab.inference.instance import STAT_KEYS, coco_ap

    if not any(not t["iscrowd"] for t in truth):
        return {f"{kind}_{k}": math.nan for kind in ("mask", "box") for k in STAT_KEYS}
    gt = {"images": images, "annotations": [{**t, "id": i} for i, t in enumerate(truth, 1)],
          "categories": [{"id": int(cat_ids[c]), "name": classes[c]} for c in thing_classes]}
    return coco_ap(detections, gt)


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


class PanopticEvalSet(torch.utils.data.Dataset):
    """A panoptic split for scoring: items ``(image (3, H, W) in [0, 1], {"image_id", "ids", "segments"})``."""

    def __init__(self, split: Any) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, ids, segments = self.split.load(i)
        tensor = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float() / 255.0
        return tensor, {"image_id": i + 1, "ids": torch.from_numpy(ids.astype(np.int64)), "segments": segments}


def collate_lists(batch: list[tuple[Any, Any]]) -> tuple[list, list]:
    """``[(image, target), ...]`` -> ``([images], [targets])``: panoptic models take image lists."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)


@torch.no_grad()
def score_batches(model: nn.Module, batches: Iterable[tuple[list, list]], scorer: PanopticScorer,
                  device: torch.device, autocast: Callable[[], AbstractContextManager] = nullcontext,
                  callback: Callable[[int, int], None] | None = None, total: int = 0,
                  resize: int | None = None) -> dict[str, Any]:
    """Predict every batch of ``(images, targets)`` (from :class:`PanopticEvalSet`) and score it."""
    done = 0
    with eval_mode(model):
        for images, targets in batches:
            with autocast():
                outputs = detect_at_scale(model, [im.to(device) for im in images], resize)
            for out, target in zip(outputs, targets, strict=True):
                scorer.add(to_cpu(out), target["ids"], target["segments"], int(target["image_id"]))
            done += len(images)
            if callback is not None:
                callback(done, total)
    return scorer.compute()
