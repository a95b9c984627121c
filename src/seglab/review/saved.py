"""Review saved predictions of any tool (``seglab review --predictions``): the files ``evaluate --predictions``
reads, checked and scored by it first (so every bad file is named before any picture is drawn).

Saved predictions carry no per-pixel probabilities, so their review has no confidence map, calibration or
suspected label errors; instance results with scores still get their error kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seglab.review.rows import Sample, image_ground_truth, instance_metrics, instance_sample, panoptic_sample
from seglab.review.sources import Source, image_stem, palette_for, to_picture


def saved_source(predictions: str | Path, data: str | Path, split: str = "val") -> Source:
    """The source for saved predictions of any task (the kind told by what ``predictions`` holds)."""
    from seglab.inference.scoring import prediction_kind, score_predictions

    predictions, data = Path(predictions), Path(data)
    score_predictions(predictions, data, split)  # every check of `evaluate --predictions`, before any picture
    kind = prediction_kind(predictions)
    return {"semantic": _semantic, "instance": _instance, "panoptic": _panoptic}[kind](predictions, data, split)


def _semantic(predictions: Path, data: Path, split: str) -> Source:
    from seglab.data.io import read_image, read_label
    from seglab.data.semantic.dataset import SegmentationFolder
    from seglab.review.rows import semantic_metrics

    truth = SegmentationFolder(data, split)
    k = len(truth.classes) or truth.num_classes or 0
    if not k:  # no classes.txt: the classes the labels and predictions hold (as evaluate --predictions counts)
        values = [read_label(lab) for _, lab in truth.samples]
        k = 1 + max(int(v[v != truth.ignore_index].max(initial=0)) for v in values)
        truth.classes = [f"class_{i}" for i in range(k)]

    def samples() -> Iterator[Sample]:
        for stem, (image_path, label_path) in zip(truth.stems, truth.samples, strict=True):
            pred = read_label(predictions / f"{stem}.png").astype(np.int64)
            target = read_label(label_path).astype(np.int64)
            yield Sample(stem, to_picture(read_image(image_path)), target, pred, None,
                         semantic_metrics(pred, target, k, truth.ignore_index))

    return Source("semantic", list(truth.classes), palette_for(None, data, k), truth.ignore_index, str(predictions),
                  data, split, len(truth), samples)


def _instance(predictions: Path, data: Path, split: str) -> Source:
    from seglab.data.instance.coco import open_instance_split, read_json
    from seglab.data.rle import decode_masks, segmentation_to_rle
    from seglab.inference import split_ground_truth

    dataset = open_instance_split(data, split)
    gt = split_ground_truth(dataset)
    by_image: dict[int, list[dict]] = {}
    for d in read_json(predictions):
        by_image.setdefault(int(d["image_id"]), []).append(d)
    label_of = {int(c): i for i, c in enumerate(dataset.cat_ids)}

    def samples() -> Iterator[Sample]:
        for i in range(len(dataset)):
            image, target = dataset[i]
            image_id, (h, w) = int(target["image_id"]), image.shape[-2:]
            dets = [dict(d) for d in by_image.get(image_id, [])]
            for d in dets:
                if d.get("segmentation") is not None:
                    d["segmentation"] = segmentation_to_rle(d["segmentation"], h, w)
            masks = np.zeros((len(dets), h, w), dtype=bool)
            with_masks = [d for d in dets if d.get("segmentation") is not None]
            if len(with_masks) == len(dets) and dets:
                masks = decode_masks([d["segmentation"] for d in dets], h, w).astype(bool)
            else:  # box-only results: the box is the mask shown
                for j, d in enumerate(dets):
                    x, y, bw, bh = (int(round(v)) for v in d["bbox"])
                    masks[j, max(y, 0):y + bh, max(x, 0):x + bw] = True
            gt_one = image_ground_truth(gt, image_id)
            metrics = instance_metrics(dets, gt_one) if with_masks else {
                **instance_metrics([{**d, "segmentation": _box_rle(d["bbox"], h, w)} for d in dets], gt_one),
                "mask_AP": float("nan"), "mask_AP50": float("nan")}
            pred = {"masks": masks, "labels": np.array([label_of[int(d["category_id"])] for d in dets], np.int64),
                    "scores": np.array([float(d.get("score", 1.0)) for d in dets], np.float32)}
            yield instance_sample(image_stem(dataset, i), to_picture(image), np.asarray(target["masks"]).astype(bool),
                                  np.asarray(target["labels"]), pred, metrics, len(dataset.classes), 255)

    return Source("instance", list(dataset.classes), palette_for(None, data, len(dataset.classes)), 255,
                  str(predictions), data, split, len(dataset), samples, has_kinds=True)


def _box_rle(bbox: list[float], h: int, w: int) -> dict:
    from seglab.data.rle import encode_mask

    mask = np.zeros((h, w), dtype=bool)
    x, y, bw, bh = (int(round(v)) for v in bbox)
    mask[max(y, 0):y + bh, max(x, 0):x + bw] = True
    return encode_mask(mask)


def _panoptic(predictions: Path, data: Path, split: str) -> Source:
    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.inference.scoring import saved_panoptic

    truth = open_panoptic_split(data, split)
    read = saved_panoptic(predictions, truth)

    def samples() -> Iterator[Sample]:
        for i in range(len(truth)):
            image, ids, segments = truth.load(i)
            pred = read(truth.stem(i), ids.shape)
            yield panoptic_sample(truth.stem(i), image, ids, segments, pred, list(truth.classes),
                                  list(truth.thing_classes), list(truth.cat_ids), 255)

    return Source("panoptic", list(truth.classes), palette_for(None, data, len(truth.classes)), 255,
                  str(predictions), data, split, len(truth), samples, has_kinds=True)
