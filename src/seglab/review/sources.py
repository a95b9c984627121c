"""Where a review's images come from: a checkpoint predicting a split, or saved predictions of any tool.

Each source yields :class:`~seglab.review.rows.Sample` records one image at a time (a split of any size
streams) and says what the run is (:class:`Source`: task, classes, palette, headline). Predictions come from
the public inference functions (``predict``, ``predict_instances``, ``predict_panoptic``), so a checkpoint's
settings (normalization, ``data.resize``) apply as in ``seglab evaluate``; saved predictions are first checked
and scored by ``score_predictions`` (``seglab evaluate --predictions``), which names any bad file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.review.rows import Sample, image_ground_truth, instance_metrics, instance_sample, panoptic_sample

HEADLINES = {"semantic": ("mean_iou", "mIoU"), "instance": ("mask_AP", "mask AP"), "panoptic": ("PQ", "PQ")}


@dataclass
class Source:
    """What is reviewed: ``samples()`` streams the images; the rest labels the page."""

    task: str
    classes: list[str]
    palette: np.ndarray
    ignore_index: int
    origin: str
    data: Path
    split: str
    num_images: int
    samples: Callable[[], Iterator[Sample]]
    has_kinds: bool = False


def palette_for(info_palette: Any, data: Path, k: int) -> np.ndarray:
    """The run's palette (the checkpoint's, else the data's ``palette.txt``, else the default), ``(K, 3)``."""
    from seglab.data.layout import PALETTE_FILE, read_palette
    from seglab.viz.colors import default_palette

    if info_palette:
        pal = np.asarray(info_palette, dtype=np.uint8).reshape(-1, 3)
    elif (data / PALETTE_FILE).is_file():
        pal = read_palette(data / PALETTE_FILE)
    else:
        pal = default_palette(k, ignore_index=None)
    if len(pal) < k:
        pal = np.concatenate([pal, default_palette(k, ignore_index=None)[len(pal):]])
    return pal[:k]


def to_picture(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` float image in [0, 1] (or ``(H, W, 3)`` uint8) as ``(H, W, 3)`` uint8 for the page."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    x = torch.as_tensor(image).float()
    x = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x[..., :3]


def semantic_source(model: nn.Module, info: CheckpointInfo, data: Path, split: str, *, tta: str | None = None,
                    tile: int | None = None, device: str | torch.device | None = None) -> Source:
    """A semantic checkpoint predicting ``data``'s ``split`` (with probabilities: confidence, calibration)."""
    from seglab.data.semantic.dataset import SegmentationFolder
    from seglab.inference import predict
    from seglab.review.rows import semantic_metrics

    dataset = SegmentationFolder(data, split, in_channels=info.in_channels, ignore_index=info.ignore_index,
                                 num_classes=len(info.classes), classes_from=f"the checkpoint {info.path or ''}")
    k, resize = len(info.classes), info.resize
    extra = {"resize": resize} if resize else {}

    def samples() -> Iterator[Sample]:
        for i in range(len(dataset)):
            image, mask = dataset[i]
            labels, probs = predict(model, image, tile=tile, tta=tta, mean=info.mean, std=info.std, device=device,
                                    return_probs=True, **extra)
            truth, pred = np.asarray(mask, dtype=np.int64), labels.numpy()
            conf = probs.max(0).values.numpy()
            yield Sample(dataset.stems[i], to_picture(image), truth, pred, conf,
                         semantic_metrics(pred, truth, k, info.ignore_index))

    return Source("semantic", list(info.classes), palette_for(info.palette, data, k), info.ignore_index,
                  info.path, data, split, len(dataset), samples)


def image_stem(dataset: Any, i: int) -> str:
    """The file stem of image ``i`` of an instance split (either layout)."""
    if hasattr(dataset, "image_paths"):
        return Path(dataset.image_paths[i]).stem
    return Path(dataset.images[i]["file_name"]).stem


def instance_source(model: nn.Module, info: CheckpointInfo, data: Path, split: str,
                    device: str | torch.device | None = None) -> Source:
    """An instance checkpoint on ``data``'s ``split``: every detection scored (AP), the confident ones shown."""
    from seglab.data.instance.coco import open_instance_split
    from seglab.inference import instances_to_coco, predict_instances, split_ground_truth

    dataset = open_instance_split(data, split)
    gt = split_ground_truth(dataset)
    k = len(info.classes)

    def samples() -> Iterator[Sample]:
        for i in range(len(dataset)):
            image, target = dataset[i]
            _, _, inst = next(predict_instances(model, [(i, image)], score_threshold=0.0, device=device,
                                                 resize=info.resize))
            image_id = int(target["image_id"])
            dets = instances_to_coco(inst, image_id, cat_ids=info.cat_ids)
            metrics = instance_metrics(dets, image_ground_truth(gt, image_id))
            pred = {k_: v.numpy() for k_, v in inst.items()}
            yield instance_sample(image_stem(dataset, i), to_picture(image), np.asarray(target["masks"]).astype(bool),
                                  np.asarray(target["labels"]), pred, metrics, k, info.ignore_index)

    return Source("instance", list(info.classes), palette_for(info.palette, data, k), info.ignore_index, info.path,
                  data, split, len(dataset), samples, has_kinds=True)


def panoptic_source(model: nn.Module, info: CheckpointInfo, data: Path, split: str,
                    device: str | torch.device | None = None) -> Source:
    """A panoptic checkpoint on ``data``'s ``split``: PQ per image, the implied class maps, thing error kinds."""
    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.inference.panoptic import predict_panoptic

    truth = open_panoptic_split(data, split)
    things = [int(c) for c in info.options.get("thing_classes", truth.thing_classes)]

    def samples() -> Iterator[Sample]:
        for i in range(len(truth)):
            image, ids, segments = truth.load(i)
            _, _, out = next(predict_panoptic(model, [(i, image)], device=device, resize=info.resize))
            yield panoptic_sample(truth.stem(i), image, ids, segments, out, list(info.classes), things,
                                  list(truth.cat_ids), info.ignore_index)

    return Source("panoptic", list(info.classes), palette_for(info.palette, data, len(info.classes)),
                  info.ignore_index, info.path, data, split, len(truth), samples, has_kinds=True)


def checkpoint_source(model: nn.Module, info: CheckpointInfo, data: str | Path, split: str = "val",
                      **options: Any) -> Source:
    """The source for a loaded checkpoint of any task (``options``: ``tta``/``tile`` for semantic, ``device``)."""
    from seglab.inference import TileOptions
    from seglab.inference.evaluation import refuse_tiling

    data = Path(data)
    if info.task == "semantic":
        return semantic_source(model, info, data, split, **options)
    refuse_tiling(info, options.pop("tta", None), TileOptions(tile=options.pop("tile", None)))
    return (instance_source if info.task == "instance" else panoptic_source)(model, info, data, split, **options)
