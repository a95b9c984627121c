"""Where ``seglab annotate`` gets its objects: a prompt file, a trained seglab run, or SAM's automatic masks.

Each source knows its category ``names`` before the first image (so ``classes.txt`` is fixed) and turns one
image into :class:`~seglab.sam.formats.Objects`. The boundary always comes from SAM; the class from the
prompt file, the seglab model, or nowhere (``object``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError
from seglab.sam.auto import AutoMaskOptions, generate_masks
from seglab.sam.formats import Objects
from seglab.sam.prompts import DEFAULT_CLASS, ObjectPrompt
from seglab.sam.refine import mask_iou, semantic_regions
from seglab.sam.session import SamSession


class Source(Protocol):
    """What :func:`seglab.sam.annotate.annotate` asks of a source."""

    names: list[str]  # category names (class index i is category id i + 1)
    background: str  # name of label 0 in a semantic layout

    def find(self, session: SamSession, path: Path, image: np.ndarray) -> Objects:
        """The objects of one image."""

    def describe(self) -> dict[str, Any]:
        """How the objects were found (for ``annotate.json``)."""


class PromptSource:
    """Objects from a prompt file (:func:`seglab.sam.prompts.read_prompts`), matched to the input images.

    A lone point is ambiguous: SAM gives three candidates and the one with the best predicted IoU is kept.
    Any other prompt (a box, several points) asks for one mask.
    """

    background = "background"

    def __init__(self, objects: dict[Path, list[ObjectPrompt]], source: str,
                 names: list[str] | None = None) -> None:
        """``objects``: each input image with its prompts; ``names``: the category order (default sorted)."""
        used = sorted({o.class_name for objs in objects.values() for o in objs})
        if names is not None:
            missing = [n for n in used if n not in names]
            if missing:
                raise ConfigError(f"{source}: classes {missing} are not in the given class list {names}.")
        self.objects, self.source, self.names = objects, source, list(names) if names is not None else used
        self.names = self.names or [DEFAULT_CLASS]

    def find(self, session: SamSession, path: Path, image: np.ndarray) -> Objects:
        """One SAM answer per object of the image (the image is encoded once, and only when it has objects)."""
        objs = self.objects.get(path, [])
        if not objs:
            return Objects.empty(*image.shape[:2])
        session.set_image(image)
        masks, scores = [], []
        for o in objs:
            try:
                r = session.predict(points=o.points or None, labels=o.labels or None, box=o.box,
                                    multimask=o.box is None and len(o.points) == 1)
            except ConfigError as e:
                raise ConfigError(f"{o.where}: {e}") from e
            masks.append(r.masks[r.best])
            scores.append(r.scores[r.best])
        classes = np.asarray([self.names.index(o.class_name) for o in objs], np.int64)
        return Objects(np.stack(masks), classes, np.asarray(scores, np.float32))

    def describe(self) -> dict[str, Any]:
        """The prompt file."""
        return {"source": "prompts", "file": self.source}


class ModelSource:
    """What a trained seglab model sees in an image: detections (instance) or class regions (semantic)."""

    def __init__(self, model: nn.Module, info: CheckpointInfo, score_threshold: float = 0.5,
                 min_area: int = 16) -> None:
        """``score_threshold``: detections kept (instance); ``min_area``: smallest region prompted (semantic)."""
        if info.task not in ("semantic", "instance"):
            raise ConfigError(f"{info.path}: a {info.task} checkpoint; annotate reads semantic or instance runs.")
        if not 0.0 <= score_threshold <= 1.0:
            raise ConfigError(f"Expected `score_threshold` (--score-threshold) in [0, 1], but got {score_threshold}.")
        if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 0:
            raise ConfigError(f"Expected `min_area` (--min-area) to be a pixel count >= 0, but got {min_area!r}.")
        self.model, self.info, self.score_threshold, self.min_area = model, info, score_threshold, min_area
        self.names = list(info.classes[1:])
        self.background = info.classes[0] if info.task == "semantic" else "background"

    def detections(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        """The instance model's detections scoring at least ``score_threshold`` (best first)."""
        from seglab.inference.instance import predict_instances

        return next(predict_instances(self.model, [(0, image)], score_threshold=self.score_threshold,
                                      resize=self.info.resize))[2]

    def semantic_labels(self, image: np.ndarray) -> np.ndarray:
        """The semantic model's ``(H, W)`` class map."""
        from seglab.inference.semantic import predict

        return predict(self.model, image, mean=self.info.mean, std=self.info.std,
                       resize=self.info.resize).numpy()  # channels adapted

    def find(self, session: SamSession, path: Path, image: np.ndarray) -> Objects:
        """The model's boxes as SAM prompts: class from the model, boundary from SAM."""
        if self.info.task == "instance":
            det = self.detections(image)
            boxes, classes = det["boxes"].numpy(), det["labels"].numpy() - 1
            scores = det["scores"].numpy()
        else:
            regions = semantic_regions(self.semantic_labels(image), 0, self.min_area)
            boxes, classes = np.asarray(regions.boxes, np.float32), np.asarray(regions.classes, np.int64) - 1
            scores = None
        if len(boxes) == 0:
            return Objects.empty(*image.shape[:2])
        session.set_image(image)
        masks, sam_scores = session.predict_boxes(boxes)
        return Objects(masks, classes.astype(np.int64), sam_scores if scores is None else scores.astype(np.float32))

    def describe(self) -> dict[str, Any]:
        """The run and its thresholds."""
        return {"source": "run", "checkpoint": self.info.path, "task": self.info.task,
                "score_threshold": self.score_threshold, "min_area": self.min_area}


class AutoSource:
    """SAM's automatic masks, each named ``object`` or given a class by a seglab model.

    With a semantic model a mask takes the class most of its pixels have in the model's map (a mask that is
    mostly background is dropped); with an instance model the class of the detection it overlaps best
    (mask IoU at least ``match_iou``; a mask no detection matches is dropped).
    """

    def __init__(self, sam: nn.Module, options: AutoMaskOptions | None = None, classifier: ModelSource | None = None,
                 match_iou: float = 0.5) -> None:
        """``classifier``: a :class:`ModelSource` whose model names the masks (None: all ``object``)."""
        self.sam, self.options = sam, options or AutoMaskOptions()
        self.classifier, self.match_iou = classifier, match_iou
        self.names = classifier.names if classifier is not None else [DEFAULT_CLASS]
        self.background = classifier.background if classifier is not None else "background"
        self.dropped = 0

    def find(self, session: SamSession, path: Path, image: np.ndarray) -> Objects:
        """Every automatic mask of the image, classified (or ``object``)."""
        found = generate_masks(self.sam, image, self.options)
        if self.classifier is None or len(found) == 0:
            return Objects(found.masks, np.zeros(len(found), np.int64), found.scores)
        classes = classify(self.classifier, found.masks, image, self.match_iou)
        keep = classes >= 0
        self.dropped += int((~keep).sum())
        return Objects(found.masks[keep], classes[keep], found.scores[keep])

    def describe(self) -> dict[str, Any]:
        """The automatic-mask options and the classifier."""
        from dataclasses import asdict

        record: dict[str, Any] = {"source": "auto", "options": asdict(self.options)}
        if self.classifier is not None:
            record["classifier"] = self.classifier.describe()
            record["dropped_unclassified"] = self.dropped
        return record


def classify(model: ModelSource, masks: np.ndarray, image: np.ndarray, match_iou: float = 0.5) -> np.ndarray:
    """Class index of each of ``masks`` by ``model`` (-1: dropped; see :class:`AutoSource`)."""
    out = np.full(len(masks), -1, np.int64)
    if model.info.task == "semantic":
        labels = model.semantic_labels(image)
        k = len(model.info.classes)
        for i, m in enumerate(masks):
            top = int(np.bincount(labels[m], minlength=k).argmax()) if m.any() else 0
            out[i] = top - 1  # background (0) -> -1: dropped
        return out
    det = model.detections(image)
    det_masks, det_labels = det["masks"].numpy(), det["labels"].numpy()
    for i, m in enumerate(masks):
        ious = [mask_iou(m, d) for d in det_masks]
        if ious and max(ious) >= match_iou:
            out[i] = int(det_labels[int(np.argmax(ious))]) - 1
    return out
