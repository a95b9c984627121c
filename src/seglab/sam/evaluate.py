"""Did SAM help? A model's scores on a split before and after ``--refine sam``, boundary IoU included.

Semantic checkpoints: mIoU, pixel accuracy, Dice, boundary IoU and boundary F-score (a ``band``-pixel band,
:mod:`seglab.metrics.boundary`), before and after refinement, from one pass over the split. Instance
checkpoints: COCO mask AP of the detections scoring at least ``score_threshold`` (the same detections
before and after; only their masks change), and boundary IoU / F of the class maps the instances paint
(higher score on top) against the ground truth's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError
from seglab.sam.refine import RefineOptions, SamRefiner
from seglab.sam.session import SamSession

SEMANTIC_KEYS = ("mean_iou", "pixel_accuracy", "mean_dice", "boundary_iou", "boundary_f1")
INSTANCE_KEYS = ("mask_AP", "mask_AP50", "mask_AP75", "boundary_iou", "boundary_f1")
Progress = Callable[[int, int], None]


def evaluate_refinement(model: nn.Module, info: CheckpointInfo, data: str | Path, split: str,
                        sam: nn.Module | SamSession, *, options: RefineOptions | None = None, band: int = 3,
                        score_threshold: float = 0.5, callback: Progress | None = None) -> dict[str, Any]:
    """Score ``model`` on ``data``'s ``split`` with and without SAM's refinement of its masks.

    Args:
        model, info: from :func:`seglab.load_checkpoint` (semantic or instance).
        data, split: the dataset folder and split with ground truth.
        sam: a SAM model (:func:`seglab.sam.load_sam`) or a session on one.
        options: how masks are refined (:class:`RefineOptions`).
        band: boundary band and match tolerance in pixels.
        score_threshold: instance checkpoints: the detections scored (and refined).
        callback: ``callback(done, total)`` per image.

    Returns:
        ``{"task", "data", "split", "num_images", "band", "before": {metric: value}, "after": {...},
        "delta": {metric: after - before}, "refined", "kept", "per_class_boundary_iou": {"before", "after"}}``;
        metrics: semantic ``mean_iou, pixel_accuracy, mean_dice, boundary_iou, boundary_f1``, instance
        ``mask_AP, mask_AP50, mask_AP75, boundary_iou, boundary_f1``. ``refined`` / ``kept``: masks SAM
        replaced / left (IoU with the model's below ``options.min_iou``).

    Raises:
        ConfigError: a task other than semantic / instance, or data whose classes differ from the model's.
    """
    if info.task not in ("semantic", "instance"):
        raise ConfigError(f"{info.path}: a {info.task} checkpoint; refinement is scored for semantic and instance.")
    refiner = SamRefiner(sam, info.task, options)
    run = _semantic if info.task == "semantic" else _instance
    scores, per_class, n = run(model, info, Path(data), split, refiner, band, score_threshold, callback)
    keys = SEMANTIC_KEYS if info.task == "semantic" else INSTANCE_KEYS
    before = {k: float(scores[0][k]) for k in keys}
    after = {k: float(scores[1][k]) for k in keys}
    return {"task": info.task, "data": str(data), "split": split, "num_images": n, "band": band,
            "before": before, "after": after, "delta": {k: after[k] - before[k] for k in keys},
            "refined": refiner.counts.refined, "kept": refiner.counts.kept,
            "per_class_boundary_iou": {"before": per_class[0], "after": per_class[1]}}


def _semantic(model: nn.Module, info: CheckpointInfo, data: Path, split: str, refiner: SamRefiner, band: int,
              score_threshold: float, callback: Progress | None) -> tuple[list[dict], list[list], int]:
    from seglab.data.io import read_image
    from seglab.data.semantic.dataset import SegmentationFolder
    from seglab.inference.semantic import predict
    from seglab.metrics import BoundaryMetrics, SegMetrics

    k = len(info.classes)
    dataset = SegmentationFolder(data, split, in_channels=info.in_channels, ignore_index=info.ignore_index,
                                 num_classes=k, classes_from=f"the checkpoint {info.path or ''}")
    metrics = [(SegMetrics(k, ignore_index=info.ignore_index), BoundaryMetrics(k, band, info.ignore_index))
               for _ in range(2)]
    for i, (image_path, _) in enumerate(dataset.samples):
        image, target = dataset[i]
        labels = predict(model, image, mean=info.mean, std=info.std, resize=info.resize)
        refined = refiner(read_image(image_path, channels=3), (labels,))[0]
        for (seg, edge), pred in zip(metrics, (labels, refined), strict=True):
            seg.update(pred[None], target[None])
            edge.update(pred[None], target[None])
        if callback is not None:
            callback(i + 1, len(dataset))
    results = [{**seg.compute(), **edge.compute()} for seg, edge in metrics]
    return results, [r["per_class_boundary_iou"] for r in results], len(dataset)


def _instance(model: nn.Module, info: CheckpointInfo, data: Path, split: str, refiner: SamRefiner, band: int,
              score_threshold: float, callback: Progress | None) -> tuple[list[dict], list[list], int]:
    from seglab.data.instance.coco import open_instance_split
    from seglab.inference.instance import coco_ap, instances_to_coco, predict_instances, split_ground_truth
    from seglab.metrics import BoundaryMetrics

    dataset = open_instance_split(data, split)
    if list(dataset.cat_ids) != info.cat_ids:
        raise ConfigError(f"{data} ({split}): category ids {list(dataset.cat_ids[1:])} differ from the checkpoint's "
                          f"{info.cat_ids[1:]}. Score on data with the categories the model was trained on.")
    k = len(info.classes)
    edges = [BoundaryMetrics(k, band, ignore_index=255) for _ in range(2)]
    detections: list[list[dict]] = [[], []]
    for i in range(len(dataset)):
        image, target = dataset[i]
        det = next(predict_instances(model, [(0, image)], score_threshold=score_threshold, resize=info.resize))[2]
        pixels = (image * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        refined = refiner(pixels, (det,))[0]
        truth = torch.from_numpy(class_map(target["masks"], target["labels"]))
        for j, inst in enumerate((det, refined)):
            detections[j] += instances_to_coco(inst, int(target["image_id"]), cat_ids=info.cat_ids)
            pred = torch.from_numpy(class_map(inst["masks"], inst["labels"], inst["scores"]))
            edges[j].update(pred[None], truth[None])
        if callback is not None:
            callback(i + 1, len(dataset))
    gt = split_ground_truth(dataset)
    results = [{**coco_ap(dets, gt), **edge.compute()} for dets, edge in zip(detections, edges, strict=True)]
    return results, [r["per_class_boundary_iou"] for r in results], len(dataset)


def class_map(masks: Any, labels: Any, scores: Any = None) -> np.ndarray:
    """``(H, W)`` class map of instance masks: 0 = background, each instance's label where it is visible."""
    from seglab.viz import instance_ids

    m = torch.as_tensor(masks).bool()
    ids, kept = instance_ids(m, scores)
    lut = np.concatenate([[0], torch.as_tensor(labels).long().numpy()[kept]]).astype(np.int64)
    return lut[ids]
