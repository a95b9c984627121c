"""Instance prediction and scoring (Mask R-CNN checkpoints): detections, COCO results, COCO mask/box AP.

``predict_instances`` streams detections for images; ``detect_dataset`` keeps every detection of a split
(AP integrates over scores); ``score_detections`` gives COCO mask and box AP, computed once on rank 0 under
DDP and shared, so every rank takes the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from seglab.errors import ConfigError
from seglab.inference.scaled import detect_at_scale
from seglab.inference.source import (
    ImageLike,
    check_batch_size,
    eval_mode,
    model_device,
    prepare_image,
    same_size_batches,
)

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def predict_instances(
    model: nn.Module,
    items: Iterable[tuple[Any, ImageLike]],
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    resize: int | None = None,
) -> Iterator[tuple[Any, ImageLike, dict[str, torch.Tensor]]]:
    """Stream Mask R-CNN detections for ``(key, image)`` pairs: yields ``(key, image, instances)``.

    ``image`` is a picture as read from disk (``(H, W, 3)`` uint8) or a ``(3, H, W)`` float tensor in
    [0, 1]; the model resizes and normalizes internally. ``instances`` holds the detections scoring at
    least ``score_threshold``, best first, on the CPU: ``boxes`` (N, 4) XYXY pixels, ``labels`` (N,)
    contiguous class indices, ``scores`` (N,), ``masks`` (N, H, W) bool (probability > ``mask_threshold``)
    and ``mask_probs`` (N, H, W) float. Consecutive images of the same size are batched, up to ``batch_size``.
    ``resize`` (the checkpoint's ``data.resize``): images run at that long side, detections come back at the
    image's own size (:func:`seglab.inference.scaled.detect_at_scale`).
    """
    check_batch_size(batch_size)
    for name, v in (("score_threshold", score_threshold), ("mask_threshold", mask_threshold)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"Expected `{name}` in [0, 1], but got {v}.")
    dev = model_device(model, device)
    for batch in same_size_batches(items, lambda image: prepare_image(image, in_channels=3), batch_size):
        with torch.inference_mode(), eval_mode(model):
            outputs = detect_at_scale(model, [x.to(dev) for _, _, x in batch], resize)
        for (key, image, _), out in zip(batch, outputs, strict=True):
            yield key, image, _select(out, score_threshold, mask_threshold)


def detect_dataset(
    model: nn.Module,
    dataset: Any,
    *,
    cat_ids: Sequence[int] | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    callback: Callable[[int, int], None] | None = None,
    resize: int | None = None,
) -> list[dict]:
    """COCO-results detections of ``model`` on an instance dataset (items ``(image, target)``).

    Every detection the model returns is kept (AP integrates over scores; thresholding would only
    lower it). ``cat_ids[label]`` maps contiguous labels back to the dataset's category ids.
    """
    total = len(dataset)

    def items() -> Iterator[tuple[int, torch.Tensor]]:
        for i in range(total):
            image, target = dataset[i]
            yield int(target["image_id"]), image

    detections: list[dict] = []
    for done, (image_id, _, inst) in enumerate(predict_instances(model, items(), score_threshold=0.0,
                                                                 batch_size=batch_size, device=device,
                                                                 resize=resize), 1):
        detections += instances_to_coco(inst, image_id, cat_ids=cat_ids)
        if callback is not None:
            callback(done, total)
    return detections


def instances_to_coco(inst: dict[str, torch.Tensor], image_id: int,
                      cat_ids: Sequence[int] | None = None) -> list[dict]:
    """One image's :func:`predict_instances` result as COCO results (masks from ``mask_probs``, RLE)."""
    from seglab.metrics.coco import predictions_to_coco

    out = {"boxes": inst["boxes"], "labels": inst["labels"], "scores": inst["scores"],
           "masks": inst["mask_probs"][:, None]}
    return predictions_to_coco([out], [image_id], cat_ids=cat_ids)


def split_ground_truth(dataset: Any) -> dict:
    """An instance split as a COCO dict: the JSON itself (crowd regions kept) or built from the masks."""
    from seglab.data.instance.coco import CocoInstances, read_json
    from seglab.metrics.coco import targets_to_coco

    if isinstance(dataset, CocoInstances):
        return read_json(dataset.ann_file)
    targets = (dataset[i][1] for i in range(len(dataset)))  # one image's masks in memory at a time
    return targets_to_coco(targets, dataset.classes, dataset.cat_ids)


def score_detections(detections: list[dict], ground_truth: Callable[[], dict], per_class: bool = False,
                     gathered: bool = False) -> dict[str, Any]:
    """COCO mask and box AP (``mask_AP``, ``box_AP50``, ...) of ``detections``, DDP-aware.

    Under DDP every rank passes its shard's detections (or, with ``gathered``, the result of
    :func:`seglab.distributed.gather_lists`); they are scored once on rank 0 (``ground_truth()`` is only
    called there) and the numbers are shared, so all ranks agree. With ``per_class`` the result also holds
    ``mask_per_class_AP`` / ``box_per_class_AP`` by category id.
    """
    from seglab.distributed import gather_lists, on_main_then_share

    if not gathered:
        detections = gather_lists(detections)
    return on_main_then_share(lambda: coco_ap(detections, ground_truth(), per_class))


def coco_ap(detections: list[dict], gt: dict, per_class: bool = False, masks: bool = True) -> dict[str, Any]:
    """COCO mask and box AP of ``detections`` against the COCO dict ``gt`` (one process).

    ``masks=False`` (box-only results): the mask metrics are NaN (undefined), the box metrics computed.
    """
    from seglab.metrics.coco import evaluate

    metrics: dict[str, Any] = {}
    if not masks:
        metrics.update({f"mask_{k}": math.nan for k in STAT_KEYS})
        if per_class:
            metrics["mask_per_class_AP"] = {int(c["id"]): math.nan for c in gt.get("categories", [])}
    for prefix, iou_type in (("mask", "segm"), ("box", "bbox"))[0 if masks else 1:]:
        stats = evaluate(gt, detections, iou_type, per_class=per_class)
        # pycocotools writes -1 where a stat is undefined (no objects of that size): NaN says so in the CSV
        metrics.update({f"{prefix}_{k}": stats[k] if stats[k] >= 0 else math.nan for k in STAT_KEYS})
        if per_class:
            metrics[f"{prefix}_per_class_AP"] = stats["per_class_AP"]
    return metrics


def _select(out: dict[str, torch.Tensor], score_threshold: float, mask_threshold: float) -> dict[str, torch.Tensor]:
    scores = out["scores"].float().cpu()
    keep = torch.nonzero(scores >= score_threshold).flatten()
    keep = keep[scores[keep].argsort(descending=True, stable=True)]
    probs = out["masks"][keep.to(out["masks"].device), 0].float().cpu()
    return {"boxes": out["boxes"][keep.to(out["boxes"].device)].float().cpu(),
            "labels": out["labels"][keep.to(out["labels"].device)].cpu(), "scores": scores[keep],
            "masks": probs > mask_threshold, "mask_probs": probs}
