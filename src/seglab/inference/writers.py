"""The writers of ``seglab predict``: what one input's prediction becomes on disk, per task.

Both tasks name files alike: ``<stem>.png`` is the prediction as data (semantic: the index PNG with the class
palette, ``format="index"``; instance: the id map) and ``<stem>_<format>.png`` each picture (color, overlay,
panel); ``format="index,overlay"`` writes several in one pass. Semantic options add ``<stem>_probs.npy`` and
``<stem>_features.png``.
Instance checkpoints always write ``<stem>.png`` of instance ids (0 = background) with ``<stem>.json``
(category, class name and score of each id), a picture ``<stem>_<format>.png`` per color/overlay/panel
format, and ``predictions.json`` (COCO results) at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError
from seglab.inference.naming import OutputNames, parse_formats
from seglab.inference.tiling import TileOptions


@dataclass(frozen=True)
class PredictOptions:
    """What to predict and write. ``format``: one of ``FORMATS`` or several comma-separated
    (``"index,overlay"``: every picture in one pass). Semantic-only: ``tile``/``tta``/``probs``/``features``;
    instance-only: ``score_threshold`` (``None``: 0.5). ``alpha`` is the mask opacity of overlays. ``refine``:
    ``(image, result) -> result`` applied to each input's prediction before it is written (``result`` is the
    tuple the task's writer predicts: semantic ``(labels, probs)``, instance ``(instances,)``)."""

    format: str = "index"
    tiles: TileOptions = field(default_factory=TileOptions)
    tta: str | None = None
    probs: bool = False
    features: str | None = None
    score_threshold: float | None = None
    alpha: float = 0.5
    refine: Callable[[np.ndarray, tuple], tuple] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        parse_formats(self.format)
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            # checked here, not only when predicting starts, so a bad value leaves no output folder behind
            raise ConfigError(f"Expected `score_threshold` (--score-threshold) in [0, 1], but got "
                              f"{self.score_threshold}.")

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats to write, in the order given (``"index,overlay"`` -> ``("index", "overlay")``)."""
        return parse_formats(self.format)


def semantic_only(info: CheckpointInfo, given: dict[str, Any]) -> None:
    """Instance and panoptic checkpoints: refuse tiling, overlap, blending, TTA, probabilities, feature grids."""
    keys = ("tile", "overlap", "blend", "tta", "probs", "features")
    flags = [f"--{k.replace('_', '-')}" for k in keys if given.get(k) is not None]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: {info.path} is an {info.task} checkpoint; tiling, "
                          "overlap, blending, TTA, probabilities and feature grids apply to semantic models. Drop "
                          f"{' and '.join(flags)}.")


def class_palette(info: CheckpointInfo) -> np.ndarray:
    """256 colours: the checkpoint's palette where it has one, seglab's default for the rest."""
    from seglab.viz import default_palette

    palette = default_palette(256, ignore_index=info.ignore_index)
    if info.palette:
        given = np.asarray(info.palette, dtype=np.uint8).reshape(-1, 3)[:256]
        palette[: len(given)] = given
    return palette


class SemanticWriter:
    """Writes one input's outputs (mask pictures, probabilities, features) and its predictions.csv row."""

    detections_path: Path | None = None

    def __init__(self, out: Path, info: CheckpointInfo, options: PredictOptions, model: nn.Module) -> None:
        self.out, self.info, self.options, self.model = out, info, options, model
        self.formats = options.formats
        self.palette = class_palette(info)
        self.names = OutputNames(self.files, ["predictions.csv"])
        self.columns = ["file", "output", "height", "width", "status"] + [f"share_{c}" for c in info.classes]

    def pictures(self, stem: str) -> list[str]:
        """One file per format, named as instance outputs are: ``<stem>.png`` is the index mask (the prediction
        as data), ``<stem>_<fmt>.png`` a picture (color, overlay, panel)."""
        return [f"{stem}.png" if fmt == "index" else f"{stem}_{fmt}.png" for fmt in self.formats]

    def files(self, stem: str) -> list[str]:
        """The file names one input's outputs take."""
        return self.pictures(stem) + [f"{stem}_probs.npy"] * self.options.probs + \
            [f"{stem}_features.png"] * bool(self.options.features)

    @staticmethod
    def refuse(info: CheckpointInfo, given: dict[str, Any]) -> None:
        """Semantic checkpoints have no detection scores to threshold."""
        if given.get("score_threshold") is not None:
            raise ConfigError(f"--score-threshold: {info.path} is a semantic checkpoint (no detection scores). "
                              "Drop --score-threshold.")

    def predict(self, items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
        """``(path, image, labels, probs or None)`` per readable input."""
        from seglab.inference.semantic import predict_many

        t, o = self.options.tiles, self.options
        return predict_many(self.model, items, mean=self.info.mean, std=self.info.std, tile=t.tile,
                            overlap=t.overlap, blend=t.blend, tta=o.tta, batch_size=t.batch_size,
                            return_probs=o.probs, resize=self.info.resize)

    def write(self, path: Path, image: np.ndarray, labels: torch.Tensor, probs: torch.Tensor | None) -> dict:
        from seglab.fileio import atomic_path

        stem, info = self.names.stems[path], self.info
        lab = labels.numpy()
        names = self.pictures(stem)
        for fmt, name in zip(self.formats, names, strict=True):
            self._picture(fmt, self.out / name, path, image, lab)
        if self.options.probs and probs is not None:
            with atomic_path(self.out / f"{stem}_probs.npy") as tmp:
                np.save(tmp, probs.numpy().astype(np.float16))
        if self.options.features:
            self._features(image, self.out / f"{stem}_features.png")
        counts = np.bincount(lab.reshape(-1), minlength=len(info.classes))[: len(info.classes)]
        shares = {f"share_{c}": f"{v / lab.size:.6f}" for c, v in zip(info.classes, counts, strict=True)}
        return {"file": str(path), "output": ";".join(names), "height": lab.shape[0], "width": lab.shape[1],
                "status": "ok", **shares}

    def finish(self) -> None:
        """Nothing beyond predictions.csv for semantic checkpoints."""

    def _picture(self, fmt: str, target: Path, path: Path, image: np.ndarray, lab: np.ndarray) -> None:
        from seglab import viz
        from seglab.data.io import write_label

        info = self.info
        if fmt == "index":
            write_label(target, lab, palette=self.palette)
        elif fmt == "panel":
            viz.save_panels(target, [(image, None, lab)], self.palette, class_names=info.classes,
                            ignore_index=info.ignore_index, titles=[path.name])
        else:
            rgb = viz.colorize(lab, self.palette, info.ignore_index) if fmt == "color" else \
                viz.overlay(image, lab, self.palette, self.options.alpha, info.ignore_index)
            save_rgb(target, rgb)

    def _features(self, image: np.ndarray, target: Path) -> None:
        from seglab.inference.source import prepare_image
        from seglab.models.features import capture_features, save_feature_grid

        x = prepare_image(image, mean=self.info.mean, std=self.info.std, in_channels=self.info.in_channels,
                          resize=self.info.resize)  # the features the model computes, at the scale it sees
        device = next(self.model.parameters()).device
        save_feature_grid(capture_features(self.model, x[None].to(device), self.options.features), target)


class InstanceWriter:
    """Writes one input's instance-id PNG + JSON (and pictures), collects its COCO results."""

    def __init__(self, out: Path, info: CheckpointInfo, options: PredictOptions, model: nn.Module) -> None:
        self.out, self.info, self.options, self.model = out, info, options, model
        self.classes, self.cat_ids = info.classes, info.cat_ids
        self.pictures = [fmt for fmt in options.formats if fmt != "index"]
        self.names = OutputNames(self.files, ["predictions.csv", "predictions.json"])
        self.detections: list[dict] = []
        self.detections_path = out / "predictions.json"
        self.image_id = 0
        self.columns = ["file", "output", "image_id", "height", "width", "status", "detections", "instances"] + \
            [f"count_{c}" for c in self.classes[1:]]

    refuse = staticmethod(semantic_only)

    def files(self, stem: str) -> list[str]:
        """The file names one input's outputs take."""
        return [f"{stem}.png", f"{stem}.json"] + [f"{stem}_{fmt}.png" for fmt in self.pictures]

    def predict(self, items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
        """``(path, image, instances)`` per readable input (detections at or above the score threshold)."""
        from seglab.inference.instance import predict_instances

        threshold = 0.5 if self.options.score_threshold is None else self.options.score_threshold
        return predict_instances(self.model, items, score_threshold=threshold,
                                 batch_size=self.options.tiles.batch_size, resize=self.info.resize)

    def write(self, path: Path, image: np.ndarray, inst: dict[str, Any]) -> dict[str, Any]:
        from seglab import viz
        from seglab.data.io import write_label
        from seglab.fileio import atomic_write_text
        from seglab.inference.instance import instances_to_coco

        stem = self.names.stems[path]
        self.image_id += 1
        ids, kept = viz.instance_ids(inst["masks"], inst["scores"])
        palette = viz.default_palette(256, ignore_index=None)
        write_label(self.out / f"{stem}.png", ids, palette=palette)
        keep = torch.as_tensor(kept, dtype=torch.long)
        labels = inst["labels"][keep].tolist()
        record = {"labels": [self.cat_ids[c] for c in labels], "classes": [self.classes[c] for c in labels],
                  "scores": [round(float(v), 4) for v in inst["scores"][keep]]}
        atomic_write_text(self.out / f"{stem}.json", json.dumps(record) + "\n")
        for fmt in self.pictures:
            target = self.out / f"{stem}_{fmt}.png"
            if fmt == "color":
                save_rgb(target, viz.colorize(ids, palette, ignore_index=None))
            elif fmt == "overlay":
                viz.save_instance_overlay(target, image, inst, self.classes, self.options.alpha)
            else:
                viz.save_instance_panels(target, [(image, None, inst)], self.classes, titles=[path.name])
        self.detections += instances_to_coco(inst, self.image_id, cat_ids=self.cat_ids)
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(self.classes))
        return {"file": str(path), "output": f"{stem}.png", "image_id": self.image_id, "height": ids.shape[0],
                "width": ids.shape[1], "status": "ok", "detections": len(inst["labels"]),
                "instances": len(labels),
                **{f"count_{c}": int(counts[i]) for i, c in enumerate(self.classes) if i > 0}}

    def finish(self) -> None:
        """predictions.json: every kept detection (overlaps included) in COCO results format."""
        from seglab.fileio import atomic_write_text

        atomic_write_text(self.detections_path, json.dumps(self.detections) + "\n")


def save_rgb(target: Path, rgb: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 picture as PNG, atomically."""
    from PIL import Image

    from seglab.fileio import atomic_path

    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
