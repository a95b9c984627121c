"""Score saved predictions without a model: ``seglab evaluate --predictions PRED --data DIR``.

Users compare tools (nnU-Net, Detectron2, their own code) on one yardstick; this reads what such tools write
and scores it with seglab's metrics, the same code ``seglab evaluate`` runs on a checkpoint:

- semantic: a folder of label PNGs ``<stem>.png`` (pixel = class index), one per image of the split;
- instance: a COCO results JSON (a list of ``{"image_id", "category_id", "score", "segmentation" | "bbox"}``)
  whose image ids and category ids are the dataset's;
- panoptic: a COCO panoptic prediction, ``panoptic*.json`` with its PNGs beside it (as ``seglab predict``
  writes them) or in the folder named like the JSON (COCO's convention), matched to images by file stem and
  to classes by category name (the file's ``categories``; else by the dataset's category ids).

PQ, SQ, RQ and the implied mIoU equal those of evaluating the model that wrote the files. The implied AP does
not: a saved panoptic result holds only the segments left after the merge (each with the ``score`` its file
gives, else 1), while the model's evaluation scores every detection it made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.checkpoint import CheckpointInfo
from seglab.errors import DataError
from seglab.inference.evaluation import Evaluation
from seglab.tasks import INSTANCE, PANOPTIC, SEMANTIC

Progress = Callable[[int, int], None]


def prediction_kind(predictions: Path) -> str:
    """``semantic``, ``instance`` or ``panoptic``: what ``predictions`` holds (see the module docstring)."""
    if predictions.is_file() and predictions.suffix.lower() == ".json":
        data = _read_json(predictions)
        if isinstance(data, list):
            return "instance"
        if isinstance(data, dict) and "annotations" in data:
            return "panoptic"
        raise DataError(f"{predictions}: neither a COCO results list nor a COCO panoptic file (no 'annotations').")
    if predictions.is_dir():
        if _panoptic_json(predictions) is not None:
            return "panoptic"
        if any(p.suffix.lower() == ".png" for p in predictions.iterdir()):
            return "semantic"
    raise DataError(f"{predictions}: no predictions found. Pass a folder of label PNGs (semantic), a COCO results "
                    "JSON (instance) or a folder with panoptic.json and its PNGs (panoptic).")


def score_predictions(predictions: str | Path, data: str | Path, split: str = "val",
                      callback: Progress | None = None) -> Evaluation:
    """Score saved predictions of any task against ``data``'s ``split`` (no model involved).

    Raises:
        DataError: predictions missing for some images, of another size, or naming unknown classes.
    """
    predictions, data = Path(predictions), Path(data)
    kind = prediction_kind(predictions)
    return SCORERS[kind](predictions, data, split, callback)


def _info(path: Path, task: str, classes: list[str], cat_ids: list[int] | None = None,
          **options: Any) -> CheckpointInfo:
    """A stand-in for the checkpoint's metadata, so the result renders and records like a model's."""
    return CheckpointInfo(path=str(path), task=task, model="(saved predictions)", num_classes=len(classes),
                          options=options, classes=classes, cat_ids=cat_ids or list(range(len(classes))))


def _semantic(predictions: Path, data: Path, split: str, callback: Progress | None) -> Evaluation:
    import torch

    from seglab.data.io import read_label
    from seglab.data.semantic.dataset import SegmentationFolder
    from seglab.metrics import BoundaryMetrics, SegMetrics
    from seglab.metrics.baselines import split_baselines

    truth = SegmentationFolder(data, split)
    k = len(truth.classes) or truth.num_classes or 0
    if not k:  # no classes.txt: the classes the labels hold
        values = [read_label(lab) for _, lab in truth.samples]
        k = 1 + max(int(v[v != truth.ignore_index].max(initial=0)) for v in values)
        truth.classes = [f"class_{i}" for i in range(k)]
    seg, boundary = SegMetrics(k, ignore_index=truth.ignore_index), BoundaryMetrics(k, ignore_index=truth.ignore_index)
    missing = [s for s in truth.stems if not (predictions / f"{s}.png").is_file()]
    if missing:
        raise DataError(f"{predictions}: no prediction for {len(missing)} of {len(truth.stems)} images of {data} "
                        f"({split}), e.g. {missing[0]}.png. Predict every image of the split (same stems).")
    for i, (stem, (_, label_path)) in enumerate(zip(truth.stems, truth.samples, strict=True)):
        pred_path = predictions / f"{stem}.png"
        pred, target = _read_prediction_png(pred_path, predictions, data), read_label(label_path)
        if pred.shape != target.shape:
            raise DataError(f"{pred_path}: {pred.shape[1]}x{pred.shape[0]}, but its label {label_path} is "
                            f"{target.shape[1]}x{target.shape[0]}. Predict at the label's size.")
        bad = (pred >= k) | (pred < 0)
        if bad.any():
            raise DataError(f"{pred_path}: value {int(pred[bad][0])} is not a class index (0..{k - 1}); a prediction "
                            "gives every pixel a class. Save label indices, not colours (`seglab data convert "
                            "rgb-to-index`).")
        p, t = torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(target.astype(np.int64))[None]
        seg.update(p, t)
        boundary.update(p, t)
        if callback is not None:
            callback(i + 1, len(truth.stems))
    info = _info(predictions, "semantic", list(truth.classes))
    bar = split_baselines(data, split, k, truth.ignore_index)  # the sanity bar, as for a checkpoint
    return Evaluation(info, data, split, len(truth.stems), {**seg.compute(), **boundary.compute()}, baselines=bar)


def _read_prediction_png(path: Path, predictions: Path, data: Path) -> np.ndarray:
    """A prediction PNG as class indices; a colour PNG gets a fix that applies to a predictions folder."""
    from seglab.data.io import open_image, read_label
    from seglab.data.layout import PALETTE_FILE

    try:
        with open_image(path) as im:
            mode, bands = im.mode, len(im.getbands())
    except Exception:  # unreadable: read_label names the file and the decoder's error
        return read_label(path)
    if bands == 1:
        return read_label(path)
    palette = data / PALETTE_FILE
    fix = (f"if the colours are the dataset's palette, convert them: `seglab data convert rgb-to-index {predictions} "
           f"--palette {palette} --out {predictions}_index`, then score {predictions}_index; otherwise "
           if palette.is_file() else "")
    raise DataError(f"{path}: prediction has {bands} channels ({mode}); --predictions needs one class index per "
                    f"pixel (a single-channel PNG, as `seglab predict` writes <stem>.png). Fix: {fix}save your tool's "
                    "class indices instead of a colour picture.")


def _instance(predictions: Path, data: Path, split: str, callback: Progress | None) -> Evaluation:
    from seglab.data.instance.coco import open_instance_split
    from seglab.inference.instance import coco_ap, split_ground_truth
    from seglab.inference.prediction_checks import check_detections

    dataset = open_instance_split(data, split)
    gt = split_ground_truth(dataset)
    sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in gt["images"]}
    known_cats = {int(c["id"]) for c in gt["categories"]}
    detections, with_masks = check_detections(predictions, _read_json(predictions), sizes, known_cats,
                                              f"{data} ({split})")
    # box-only results (a detector's) get box AP; their mask AP is undefined (NaN, shown as "-"), not refused
    metrics = coco_ap(detections, gt, per_class=True, masks=with_masks)
    if callback is not None:
        callback(1, 1)
    info = _info(predictions, "instance", list(dataset.classes), [int(c) for c in dataset.cat_ids])
    return Evaluation(info, data, split, len(dataset), metrics, detections)


def _panoptic(predictions: Path, data: Path, split: str, callback: Progress | None) -> Evaluation:
    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.inference.panoptic import PanopticScorer

    truth = open_panoptic_split(data, split)
    json_path = predictions if predictions.is_file() else _panoptic_json(predictions)
    by_stem, cat_index = _panoptic_record(json_path, truth)
    scorer = PanopticScorer(truth.classes, truth.thing_classes, truth.cat_ids)
    for i in range(len(truth)):
        stem = truth.stem(i)
        if stem not in by_stem:
            raise DataError(f"{json_path}: no annotation for image {stem} of {data} ({split}). Predict every image "
                            "of the split; annotations are matched to images by file stem.")
        image, ids, segments = truth.load(i)
        pred = _panoptic_prediction(json_path, by_stem[stem], cat_index, truth.thing_classes, ids.shape)
        try:
            scorer.add(pred, ids, segments, i + 1)
        except DataError as e:
            raise DataError(f"{json_path} ({by_stem[stem]['file_name']}): {e}") from e
        if callback is not None:
            callback(i + 1, len(truth))
    info = _info(predictions, "panoptic", list(truth.classes), [int(c) for c in truth.cat_ids],
                 thing_classes=list(truth.thing_classes))
    return Evaluation(info, data, split, len(truth), scorer.compute())


# How each task's saved predictions are scored (``prediction_kind`` tells which).
SCORERS: dict[str, Any] = {SEMANTIC.name: _semantic, INSTANCE.name: _instance, PANOPTIC.name: _panoptic}


def _panoptic_record(json_path: Path, truth: Any) -> tuple[dict[str, dict], dict[int, int]]:
    """The annotations by file stem, checked, and each prediction category id's class index: by name when the
    file lists its categories (so ids may differ from the dataset's), else by the dataset's ids."""
    from seglab.data.io import is_int
    from seglab.inference.prediction_checks import check_panoptic_annotations

    record = _read_json(json_path)
    by_stem = check_panoptic_annotations(json_path, record)
    by_id = {int(c): i for i, c in enumerate(truth.cat_ids)}
    cats = record.get("categories")
    if isinstance(cats, list) and cats and all(isinstance(c, dict) and is_int(c.get("id"))
                                               and isinstance(c.get("name"), str) for c in cats):
        by_name = {n: i for i, n in enumerate(truth.classes)}
        unknown = [c["name"] for c in cats if c["name"] not in by_name]
        if unknown:
            raise DataError(f"{json_path}: categories {unknown} are not classes of the dataset ({truth.classes}). "
                            "Score predictions of the classes the data has.")
        by_id = {int(c["id"]): by_name[c["name"]] for c in cats}
    return by_stem, by_id


def _panoptic_prediction(json_path: Path, annotation: dict, cat_index: dict[int, int], things: list[int],
                         shape: tuple[int, ...]) -> dict[str, Any]:
    """One COCO panoptic annotation as a panoptic output: its thing segments (with their ``score`` where the file
    has one) become the implied detections."""
    import torch

    from seglab.data.panoptic.format import read_panoptic_png

    name = annotation["file_name"]
    from seglab.data.layout import containment_problem

    # file_name was checked against json_path's folder; a link inside the COCO-style subfolder is checked too
    png = next((base / name for base in (json_path.parent, json_path.with_suffix(""))
                if containment_problem(base, name) is None and (base / name).is_file()), None)
    if png is None:
        raise DataError(f"{json_path}: PNG {name} not found beside it or in {json_path.with_suffix('')}/.")
    ids = read_panoptic_png(png).astype(np.int64)
    if ids.shape != tuple(shape):
        raise DataError(f"{png}: {ids.shape[1]}x{ids.shape[0]}, but the image is {shape[1]}x{shape[0]}.")
    segments, boxes, labels, scores, masks = [], [], [], [], []
    for s in annotation["segments_info"]:
        if int(s["category_id"]) not in cat_index:
            raise DataError(f"{json_path}: segment {s['id']} of {name} has category_id {s['category_id']}, not a "
                            f"category of the dataset ({sorted(cat_index)}).")
        c = cat_index[int(s["category_id"])]
        score = float(s.get("score", 1.0))  # a finite number: checked with the annotations
        segments.append({"id": int(s["id"]), "category": c, "isthing": c in things, "score": score})
        mask = ids == int(s["id"])
        if c in things and mask.any():
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(c)
            scores.append(score)
            masks.append(mask)
    n = len(labels)
    instances = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                 "labels": torch.tensor(labels, dtype=torch.int64), "scores": torch.tensor(scores).reshape(n),
                 "masks": torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)) if n else
                 torch.zeros((0, 1, *ids.shape))}
    return {"ids": torch.from_numpy(ids), "segments": segments, "instances": instances}


def _panoptic_json(folder: Path) -> Path | None:
    found = sorted(folder.glob("panoptic*.json"))
    return found[0] if found else None


def _read_json(path: Path | None) -> Any:
    """The JSON at ``path`` (deep nesting, bad syntax or encoding: a DataError naming the file)."""
    from seglab.data.io import read_json

    return read_json(Path(path))  # type: ignore[arg-type]


def saved_panoptic(predictions: str | Path, truth: Any) -> Callable[[str, tuple[int, ...]], dict[str, Any]]:
    """A reader of saved panoptic predictions for the split ``truth`` (``open_panoptic_split``):
    ``read(stem, shape)`` is that image's panoptic output, checked as :func:`score_predictions` checks it
    (``seglab review --predictions`` shows each image's)."""
    predictions = Path(predictions)
    json_path = predictions if predictions.is_file() else _panoptic_json(predictions)
    by_stem, cat_index = _panoptic_record(json_path, truth)

    def read(stem: str, shape: tuple[int, ...]) -> dict[str, Any]:
        if stem not in by_stem:
            raise DataError(f"{json_path}: no annotation for image {stem}. Predict every image of the split; "
                            "annotations are matched to images by file stem.")
        return _panoptic_prediction(json_path, by_stem[stem], cat_index, truth.thing_classes, shape)

    return read
