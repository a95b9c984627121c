"""COCO box and mask AP through faster-coco-eval (same numbers as pycocotools, several times faster).

``evaluate`` scores COCO-results detections against a COCO ground truth; ``predictions_to_coco`` and
``targets_to_coco`` turn torchvision Mask R-CNN outputs and seglab dataset targets into those two inputs,
so evaluation during training needs no file on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.errors import ConfigError, DataError

# Order of COCOeval.stats (the 12 numbers pycocotools prints).
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("segm", "bbox")


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


def _load(obj: Any) -> Any:
    if isinstance(obj, (str, os.PathLike)):
        from seglab.data.io import read_json

        return read_json(Path(obj))
    return _copy_records(obj)


def _load_ground_truth(obj: Any) -> Any:
    """A ground-truth file is untrusted: every record is type-checked (the doctor's rules) before scoring."""
    if isinstance(obj, (str, os.PathLike)):
        from seglab.data.instance.checks import load_coco
        from seglab.data.io import read_json

        data = read_json(Path(obj))  # read once: checked here, then scored
        load_coco(obj, None, data=data)  # raises DataError naming the file, the record and the field
        return data
    return _load(obj)


def _copy_records(obj: Any) -> Any:
    # faster-coco-eval writes ids, areas and flags into the record dicts; copy those, not the (large)
    # segmentations inside them, which it only reads (a deepcopy would cost more than the evaluation).
    if isinstance(obj, dict):
        return {k: [dict(r) if isinstance(r, dict) else r for r in v] if isinstance(v, list) else v
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [dict(r) if isinstance(r, dict) else r for r in obj]
    return obj


def evaluate(ground_truth: str | os.PathLike | dict, detections: str | os.PathLike | list[dict],
             iou_type: str = "segm", per_class: bool = False) -> dict[str, Any]:
    """COCO AP/AR of ``detections`` against ``ground_truth`` (nothing printed).

    Args:
        ground_truth: COCO instances JSON path or dict (``images``, ``annotations``, ``categories``).
        detections: COCO results JSON path or list of ``{"image_id", "category_id", "score", "bbox"
            and/or "segmentation" (compressed RLE)}``.
        iou_type: ``"segm"`` (mask AP) or ``"bbox"`` (box AP).
        per_class: also return ``per_class_AP``: ``{category id: AP}`` (IoU 0.50:0.95, all areas, 100
            detections; NaN for a category without ground truth), from the accumulated precision table.

    Returns:
        ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl`` as floats in [0, 1]; -1 where
        undefined (no ground truth in that size range), as in pycocotools.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    if iou_type not in IOU_TYPES:
        raise ConfigError(f"Expected `iou_type` to be one of {IOU_TYPES}, but got {iou_type!r}.")
    gt_data, dt_data = _load_ground_truth(ground_truth), _load(detections)
    if not isinstance(gt_data, dict) or not isinstance(gt_data.get("images"), list):
        raise DataError(f"{ground_truth if not isinstance(ground_truth, dict) else 'ground truth'}: not a COCO "
                        "instances dict (needs 'images', 'annotations', 'categories').")
    gt_data.setdefault("annotations", [])
    gt_data.setdefault("categories", [])
    if not isinstance(dt_data, list):
        raise DataError("detections must be a list of COCO results (a JSON array), "
                        f"got {type(dt_data).__name__}.")
    unknown = {d.get("image_id") for d in dt_data} - {im["id"] for im in gt_data["images"]}
    if unknown:
        raise DataError(f"detections refer to image ids not in the ground truth: {sorted(unknown)[:10]}. "
                        "Use the image ids of the ground-truth JSON.")
    if iou_type == "segm" and any("segmentation" not in d for d in dt_data):
        raise DataError("mask AP needs a 'segmentation' (RLE) in every detection; use iou_type='bbox'.")
    gt = COCO(gt_data, print_function=_silent)
    dt = gt.loadRes(dt_data)
    ev = COCOeval_faster(gt, dt, iou_type, print_function=_silent)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats: dict[str, Any] = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats[: len(STAT_NAMES)], strict=True)}
    if per_class:
        # precision: [IoU thresholds, recall points, categories, area ranges, max dets]; -1 = no ground truth
        precision = np.asarray(ev.eval["precision"])[:, :, :, 0, -1]
        stats["per_class_AP"] = {}
        for k, cat in enumerate(ev.params.catIds):
            p = precision[:, :, k]
            stats["per_class_AP"][int(cat)] = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
    return stats


def _label_map(cat_ids: Sequence[int] | None, label: int) -> int:
    return int(label) if cat_ids is None else int(cat_ids[int(label)])


def predictions_to_coco(outputs: Sequence[dict[str, torch.Tensor]], image_ids: Sequence[int],
                        score_threshold: float = 0.0, mask_threshold: float = 0.5,
                        cat_ids: Sequence[int] | None = None) -> list[dict]:
    """Mask R-CNN outputs -> COCO results (one dict per detection, masks as compressed RLE).

    Args:
        outputs: per image ``{"boxes": (N, 4) XYXY, "labels": (N,), "scores": (N,), "masks": (N, 1, H, W)
            probabilities}`` (``masks`` optional: box-only results).
        image_ids: the COCO image id of each output.
        score_threshold: detections scoring below are dropped.
        mask_threshold: probability above which a pixel belongs to the mask.
        cat_ids: ``cat_ids[label]`` is the category id of contiguous label ``label`` (a dataset's
            ``.cat_ids``); ``None`` keeps labels as ids.
    """
    from seglab.data.rle import encode_mask

    if len(outputs) != len(image_ids):
        raise ValueError(f"{len(outputs)} outputs but {len(image_ids)} image ids")
    results = []
    for out, image_id in zip(outputs, image_ids, strict=True):
        keep = out["scores"] >= score_threshold
        boxes = out["boxes"][keep].detach().float().cpu()
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
        masks = None
        if "masks" in out:
            masks = (out["masks"][keep].detach().cpu() > mask_threshold).squeeze(1).numpy().astype(np.uint8)
        for j, (label, score) in enumerate(zip(out["labels"][keep].tolist(), out["scores"][keep].tolist(),
                                               strict=True)):
            det = {"image_id": int(image_id), "category_id": _label_map(cat_ids, label),
                   "score": float(score), "bbox": [float(v) for v in xywh[j]]}
            if masks is not None:
                det["segmentation"] = encode_mask(masks[j])
            results.append(det)
    return results


def targets_to_coco(targets: Iterable[dict[str, Any]], categories: Sequence[str],
                    cat_ids: Sequence[int] | None = None) -> dict:
    """Dataset targets -> a COCO ground-truth dict (for evaluation during training).

    Args:
        targets: seglab instance targets (``boxes`` XYXY, ``labels``, ``masks`` (N, H, W), ``image_id``,
            optional ``iscrowd``); the image size is read from ``masks``.
        categories: class names by contiguous label, index 0 = background (a dataset's ``.classes``).
        cat_ids: category id of each label (a dataset's ``.cat_ids``); ``None`` uses the labels.
    """
    from seglab.data.rle import encode_mask

    images, anns = [], []
    for t in targets:
        h, w = (int(s) for s in t["masks"].shape[-2:])
        images.append({"id": int(t["image_id"]), "width": w, "height": h})
        boxes = torch.as_tensor(t["boxes"]).float().cpu()
        crowd = t.get("iscrowd", torch.zeros(len(boxes), dtype=torch.int64)).tolist()
        masks = torch.as_tensor(t["masks"]).cpu().numpy().astype(np.uint8)
        for j, label in enumerate(t["labels"].tolist()):
            x1, y1, x2, y2 = boxes[j].tolist()
            anns.append({"id": len(anns) + 1, "image_id": int(t["image_id"]),
                         "category_id": _label_map(cat_ids, label), "segmentation": encode_mask(masks[j]),
                         "area": float(masks[j].sum()), "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "iscrowd": int(crowd[j])})
    cats = [{"id": _label_map(cat_ids, i), "name": n} for i, n in enumerate(categories) if i > 0]
    return {"images": images, "annotations": anns, "categories": cats}
