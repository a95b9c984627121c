"""SAM's masks in seglab's file formats: instance-id PNG + JSON, class-index label PNG, COCO RLE, a review picture.

Every format is what seglab's own readers take: the instance PNG + ``<stem>.json`` is the ``masks/<split>/``
layout (:class:`seglab.data.instance.masks.InstanceMaskFolder`), the label PNG the semantic layout
(:func:`seglab.data.io.read_label`), the COCO document passes :func:`seglab.data.instance.checks.load_coco`.
SAM's masks may overlap; a pixel goes to the mask with the higher score, and a mask left without pixels is
dropped (ids stay 1..N, the layout's contract).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKGROUND = "background"


@dataclass
class Objects:
    """The objects found on one image: masks, their class (index into the category names) and score.

    Attributes:
        masks: ``(N, H, W)`` bool; classes: ``(N,)`` int, index into the run's category names (0-based,
        the background is not a category); scores: ``(N,)`` float (SAM's predicted IoU, or a model's score).
    """

    masks: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls, height: int, width: int) -> Objects:
        """No object on an ``height`` x ``width`` image."""
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.masks)

    def painted(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (H, W), kept)``: instance ids 1..M (higher score on top), ``kept[k-1]`` the object of id k."""
        from seglab.viz import instance_ids

        return instance_ids(self.masks, self.scores)


def write_instances(png: Path, objects: Objects, names: Sequence[str]) -> int:
    """``png`` (instance ids, 0 = none) and ``png.with_suffix('.json')`` (``{"labels", "classes", "scores"}``).

    Category ids are ``class index + 1`` (``classes.txt`` starts with ``background``). Returns the number of
    instances written.
    """
    from seglab.data.io import write_label
    from seglab.fileio import atomic_write_text
    from seglab.viz import default_palette

    ids, kept = objects.painted()
    write_label(png, ids, palette=default_palette(256, ignore_index=None))
    classes = objects.classes[kept].tolist()
    record = {"labels": [c + 1 for c in classes], "classes": [names[c] for c in classes],
              "scores": [round(float(s), 4) for s in objects.scores[kept]]}
    atomic_write_text(png.with_suffix(".json"), json.dumps(record) + "\n")
    return len(kept)


def label_map(objects: Objects) -> np.ndarray:
    """``(H, W)`` class-index map: 0 = background, ``class index + 1`` where an object is (higher score on top)."""
    ids, kept = objects.painted()
    lut = np.concatenate([[0], objects.classes[kept] + 1]).astype(np.int64)
    return lut[ids]


def write_label_map(png: Path, objects: Objects) -> None:
    """The class-index label PNG of :func:`label_map` (palette colours, indices stored)."""
    from seglab.data.io import write_label
    from seglab.viz import default_palette

    write_label(png, label_map(objects), palette=default_palette(256))


def coco_annotations(objects: Objects, image_id: int, first_id: int) -> list[dict]:
    """COCO annotations (compressed RLE, area, XYWH bbox, score) of the visible part of each object."""
    from seglab.data.rle import encode_mask, rle_area, rle_bbox

    ids, kept = objects.painted()
    out = []
    for k, obj in enumerate(kept, 1):
        rle = encode_mask(ids == k)
        out.append({"id": first_id + k - 1, "image_id": image_id, "category_id": int(objects.classes[obj]) + 1,
                    "segmentation": rle, "area": rle_area(rle), "bbox": rle_bbox(rle), "iscrowd": 0,
                    "score": round(float(objects.scores[obj]), 4)})
    return out


class CocoDocument:
    """A COCO instances document built image by image (``images``, ``annotations``, ``categories``)."""

    def __init__(self, names: Sequence[str]) -> None:
        """Categories ``1..K`` named ``names``."""
        self.names = list(names)
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, file_name: str, objects: Objects) -> None:
        """One image and its objects."""
        h, w = objects.masks.shape[1:]
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": int(w), "height": int(h)})
        self.annotations += coco_annotations(objects, image_id, len(self.annotations) + 1)

    def write(self, path: Path) -> None:
        """Write the document atomically."""
        from seglab.fileio import atomic_write_text

        categories = [{"id": i, "name": n} for i, n in enumerate(self.names, 1)]
        doc = {"images": self.images, "annotations": self.annotations, "categories": categories}
        atomic_write_text(path, json.dumps(doc) + "\n")


def save_review(path: Path, image: np.ndarray, objects: Objects, names: Sequence[str]) -> None:
    """The image with each object in its own colour, labelled with its class and score."""
    import torch

    from seglab.data.instance.dataset import tight_boxes
    from seglab.viz import save_instance_overlay

    ids, kept = objects.painted()
    masks = torch.from_numpy(ids[None] == np.arange(1, len(kept) + 1)[:, None, None])
    inst = {"masks": masks, "boxes": tight_boxes(masks), "labels": torch.as_tensor(objects.classes[kept] + 1),
            "scores": torch.as_tensor(objects.scores[kept])}
    save_instance_overlay(path, image, inst, [BACKGROUND, *names])
