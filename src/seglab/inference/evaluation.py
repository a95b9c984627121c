"""Score a checkpoint on a dataset split: ``evaluate_checkpoint(model, info, data, split)``, DDP-aware.

Semantic checkpoints: pixel accuracy, mIoU, Dice, per class, from one confusion matrix over the split
(all-reduced). Instance checkpoints: COCO mask and box AP with AP per class; each process predicts its
share, the detections are gathered and scored once on rank 0, and every rank gets the numbers. Panoptic
checkpoints: PQ / SQ / RQ (all, things, stuff, per class), the implied semantic mIoU and the implied
instances' AP (:mod:`seglab.inference.panoptic`). The result's
``record()`` is the JSON ``seglab evaluate --json`` writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.distributed import DistInfo, Shard
from seglab.errors import ConfigError
from seglab.inference.outputs import semantic_only
from seglab.inference.tiling import TileOptions
from seglab.metrics.baselines import Baselines, split_baselines
from seglab.tasks import INSTANCE, PANOPTIC, SEMANTIC

Progress = Callable[[int, int], None]


@dataclass
class Evaluation:
    """Metrics of one checkpoint on one split (and, for instance checkpoints, every detection)."""

    info: CheckpointInfo
    data: Path
    split: str
    num_images: int
    metrics: dict[str, Any]
    detections: list[dict] | None = None
    baselines: Baselines | None = None  # semantic: the split's trivial baselines (the sanity bar)

    def baseline_warning(self) -> str | None:
        """Words when the model's mIoU is not clearly above the trivial baselines (``None`` when it is)."""
        return self.baselines.warning(self.metrics.get("mean_iou", math.nan)) if self.baselines else None

    def record(self) -> dict[str, Any]:
        """The JSON-safe record (tensors as lists, NaN as null) that ``seglab evaluate --json`` writes."""
        metrics = self.metrics
        if self.info.task == "instance":
            per_class = [{"category_id": cat, "name": name,
                          **{f"{kind}_AP": metrics[f"{kind}_per_class_AP"].get(cat) for kind in ("mask", "box")}}
                         for name, cat in zip(self.info.classes[1:], self.info.cat_ids[1:], strict=True)]
            metrics = {k: v for k, v in metrics.items() if not k.endswith("per_class_AP")} | {"per_class": per_class}
        return {"checkpoint": self.info.path, "task": self.info.task, "data": str(self.data), "split": self.split,
                "num_images": self.num_images, "classes": list(self.info.classes), **jsonable(metrics),
                **({"baselines": jsonable({**self.baselines.record(), "warning": self.baseline_warning()})}
                   if self.baselines else {})}


def evaluate_checkpoint(model: nn.Module, info: CheckpointInfo, data: str | Path, split: str = "val", *,
                        tta: str | None = None, tiles: TileOptions | None = None, dist: DistInfo | None = None,
                        callback: Progress | None = None) -> Evaluation:
    """Score ``model`` (loaded with its ``info``) on ``data``'s ``split`` at full resolution.

    ``tta`` and ``tiles`` apply to semantic checkpoints only. Under DDP (``dist`` from
    :func:`seglab.distributed.setup`) each rank predicts every ``world_size``-th image; all ranks return
    the same metrics. ``callback(done, total)`` reports this rank's progress.

    Raises:
        ConfigError: options that do not apply to the task, or data whose categories differ from the model's.
    """
    return EVALUATORS[info.task](model, info, Path(data), split, tta, tiles, dist or DistInfo(), callback)


def _semantic(model: nn.Module, info: CheckpointInfo, data: Path, split: str, tta: str | None,
              tiles: TileOptions | None, dist: DistInfo, callback: Progress | None) -> Evaluation:
    from seglab.data.semantic.dataset import SegmentationFolder
    from seglab.inference.semantic import evaluate

    tiles = tiles or TileOptions()
    dataset = SegmentationFolder(data, split, in_channels=info.in_channels, ignore_index=info.ignore_index,
                                 num_classes=len(info.classes), classes_from=f"the checkpoint {info.path or ''}")
    metrics = evaluate(model, Shard(dataset, dist.rank, dist.world_size), num_classes=len(info.classes),
                       ignore_index=info.ignore_index, mean=info.mean, std=info.std, device=dist.device,
                       tta=tta, tile=tiles.tile, overlap=tiles.overlap, callback=callback, resize=info.resize)
    baselines = split_baselines(data, split, len(info.classes), info.ignore_index)  # labels + histograms: cheap
    return Evaluation(info, data, split, len(dataset), metrics, baselines=baselines)


def _instance(model: nn.Module, info: CheckpointInfo, data: Path, split: str, tta: str | None,
              tiles: TileOptions | None, dist: DistInfo, callback: Progress | None) -> Evaluation:
    from seglab.data.instance.coco import open_instance_split
    from seglab.distributed import gather_lists
    from seglab.inference.instance import detect_dataset, score_detections, split_ground_truth

    refuse_tiling(info, tta, tiles)
    dataset = open_instance_split(data, split)
    if list(dataset.cat_ids) != info.cat_ids:
        have = {int(c): n for c, n in zip(dataset.cat_ids[1:], dataset.classes[1:], strict=True)}
        want = {int(c): n for c, n in zip(info.cat_ids[1:], info.classes[1:], strict=True)}
        raise ConfigError(f"{data} ({split}): categories {have} differ from the checkpoint's {want}. Evaluate "
                          "on data with the categories the model was trained on.")
    shard = Shard(dataset, dist.rank, dist.world_size)
    dets = gather_lists(detect_dataset(model, shard, cat_ids=info.cat_ids, device=dist.device, callback=callback,
                                       resize=info.resize))
    metrics = score_detections(dets, lambda: split_ground_truth(dataset), per_class=True, gathered=True)
    return Evaluation(info, data, split, len(dataset), metrics, dets)


def _panoptic(model: nn.Module, info: CheckpointInfo, data: Path, split: str, tta: str | None,
              tiles: TileOptions | None, dist: DistInfo, callback: Progress | None) -> Evaluation:
    import torch

    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.inference.panoptic import PanopticEvalSet, PanopticScorer, collate_lists, score_batches

    refuse_tiling(info, tta, tiles)
    panoptic = open_panoptic_split(data, split)
    things = [int(c) for c in info.options.get("thing_classes", [])]
    if list(panoptic.classes) != list(info.classes) or list(panoptic.thing_classes) != things:
        raise ConfigError(f"{data} ({split}): classes {panoptic.classes} (things {panoptic.thing_classes}) differ "
                          f"from the checkpoint's {info.classes} (things {things}). Evaluate on data with the "
                          "classes the model was trained on.")
    shard = Shard(PanopticEvalSet(panoptic), dist.rank, dist.world_size)
    batches = torch.utils.data.DataLoader(shard, batch_size=1, collate_fn=collate_lists)
    scorer = PanopticScorer(info.classes, things, panoptic.cat_ids)
    metrics = score_batches(model, batches, scorer, dist.device, callback=callback, total=len(shard),
                            resize=info.resize)
    return Evaluation(info, data, split, len(panoptic), metrics, scorer.detections)


def refuse_tiling(info: CheckpointInfo, tta: str | None, tiles: TileOptions | None) -> None:
    """Detector checkpoints (instance, panoptic) score whole images: TTA, tiles and overlap are refused."""
    tiles = tiles or TileOptions()
    semantic_only(info, {"tta": tta, "tile": tiles.tile,
                         "overlap": None if tiles.overlap == TileOptions.overlap else tiles.overlap})


# The evaluator of each task; a new task adds its function here.
EVALUATORS: dict[str, Callable[..., Evaluation]] = {SEMANTIC.name: _semantic, INSTANCE.name: _instance,
                                                   PANOPTIC.name: _panoptic}


def jsonable(v: Any) -> Any:
    """Tensors to lists and NaN to null, so the JSON is standard (Python's NaN literal is not)."""
    import torch

    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
