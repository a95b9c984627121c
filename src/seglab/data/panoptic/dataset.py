"""Panoptic data: both layouts read into one form, and the training dataset built on it.

:func:`open_panoptic_split` reads seglab's simple layout (``images/``, ``labels/``, ``instances/``,
``classes.txt``, ``panoptic.json``) or the COCO panoptic layout (``annotations/panoptic_<split>.json`` +
PNGs of R + 256 G + 256^2 B segment ids), whichever the split has, into a :class:`PanopticSplit`; its
``load(i)`` gives the same ``(image, ids, segments)`` for either: ``ids`` (H, W) with 0 = void and one value
per segment, ``segments`` ``{"id", "category" (class index), "iscrowd", "isthing"}`` (the panoptic contract
the models, metrics and writers share). :class:`PanopticDataset` turns those into the training targets:
Mask R-CNN's instance targets for the things plus a ``semantic`` class-index map for every pixel.

Class index: the simple layout's label value (category id = index + 1); COCO categories sorted by id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from seglab.data.instance.dataset import tight_boxes
from seglab.data.io import DEFAULT_MAX_PIXELS, read_image, read_label
from seglab.data.layout import list_split, read_classes, read_panoptic_things
from seglab.data.panoptic.format import (
    VOID,
    id_agreement,
    load_coco_panoptic,
    map_ids,
    read_panoptic_png,
    segment,
    simple_segments,
)
from seglab.data.preflight import preflight_panoptic
from seglab.data.transforms import SemanticMask
from seglab.errors import DataError

__all__ = ["PanopticDataset", "PanopticSplit", "collate_panoptic", "open_panoptic_split", "semantic_map"]


@dataclass
class PanopticSplit:
    """One split of a panoptic dataset, either layout; ``load(i)`` reads image ``i`` (sorted by file name).

    ``classes[c]``, ``cat_ids[c]``, ``isthing[c]``: name, COCO category id and kind of class index ``c``;
    ``thing_classes``: the thing class indices, sorted. ``layout`` is ``"simple"`` or ``"coco"``;
    ``annotations`` holds the COCO annotation record of each image (empty for the simple layout).
    """

    root: Path
    split: str
    classes: list[str]
    cat_ids: list[int]
    isthing: list[bool]
    thing_classes: list[int]
    image_paths: list[Path]
    layout: str = "simple"
    annotations: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_paths)

    def stem(self, i: int) -> str:
        """File stem of image ``i`` (what outputs of that image are named after)."""
        return self.image_paths[i].stem

    def label_path(self, i: int) -> Path:
        """Simple layout: the class-index PNG of image ``i``."""
        return self.root / "labels" / self.split / f"{self.stem(i)}.png"

    def instance_path(self, i: int) -> Path:
        """Simple layout: the instance-id PNG of image ``i``."""
        return self.root / "instances" / self.split / f"{self.stem(i)}.png"

    def png_path(self, i: int) -> Path:
        """COCO layout: the segment-id PNG of image ``i``."""
        return self.root / "annotations" / f"panoptic_{self.split}" / self.annotations[i]["file_name"]

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Image ``i`` as ``(image uint8 (H, W, 3) RGB, ids int32 (H, W), segments)``.

        ``ids``: 0 = void, every other value one segment; ``segments``: ``{"id", "category" (class index),
        "iscrowd", "isthing"}`` per segment of the image.

        Raises:
            DataError: a missing or unreadable file, sizes that differ, or annotations that disagree with
                the PNGs (the file and the fix named; ``seglab data check`` lists every problem).
        """
        image = read_image(self.image_paths[i])
        ids, segments, where = self._load_coco(i) if self.layout == "coco" else self._load_simple(i)
        if ids.shape != image.shape[:2]:
            raise DataError(f"{where}: is {ids.shape[1]}x{ids.shape[0]} but its image {self.image_paths[i].name} "
                            f"is {image.shape[1]}x{image.shape[0]}; they must match. Re-export it at the image "
                            f"size (`seglab data check {self.root}`).")
        return image, ids, segments

    def _load_simple(self, i: int) -> tuple[np.ndarray, list[dict], Path]:
        label_path, inst_path = self.label_path(i), self.instance_path(i)
        label, inst = read_label(label_path), read_label(inst_path)
        if label.shape != inst.shape:
            raise DataError(f"{inst_path}: is {inst.shape[1]}x{inst.shape[0]} but {label_path.name} is "
                            f"{label.shape[1]}x{label.shape[0]}. Re-export the instance ids at the label size.")
        built = simple_segments(label, inst, self.isthing, self.classes)
        if built.problems:
            problem, fix = built.problems[0]
            raise DataError(f"{inst_path} (with {label_path}): {problem}. Fix: {fix}. `seglab data check "
                            f"{self.root}` lists every problem.")
        return built.ids, built.segments, label_path

    def _load_coco(self, i: int) -> tuple[np.ndarray, list[dict], Path]:
        path, infos = self.png_path(i), self.annotations[i]["segments_info"]
        ids = read_panoptic_png(path)
        found = id_agreement(np.unique(ids[ids > 0]), infos)
        if found:
            raise DataError(f"{path}: {found[0][0]}. Fix: {found[0][1]}. `seglab data check {self.root}` lists "
                            "every problem.")
        index = {c: k for k, c in enumerate(self.cat_ids)}
        segments = [segment(s["id"], index[s["category_id"]], self.isthing[index[s["category_id"]]],
                            s.get("iscrowd", 0)) for s in infos]
        return ids, segments, path


def open_panoptic_split(root: str | os.PathLike, split: str,
                        max_pixels: int = DEFAULT_MAX_PIXELS) -> PanopticSplit:
    """The split ``split`` of the panoptic dataset ``root``: COCO when ``annotations/panoptic_<split>.json``
    exists, else the simple layout. Nothing is decoded; every record of a COCO JSON is checked.

    Raises:
        DataError: no such split, a broken ``classes.txt`` / ``panoptic.json`` / JSON record, an image
            without its PNGs, a thing class that ``classes.txt`` does not name.
    """
    root = Path(root)
    if (root / "annotations" / f"panoptic_{split}.json").is_file():
        return _open_coco(root, split, max_pixels)
    return _open_simple(root, split)


def _open_simple(root: Path, split: str) -> PanopticSplit:
    images = list_split(root / "images" / split)
    if not images:
        raise DataError(f"{root / 'images' / split}: no images. A panoptic split is images/{split}/ with "
                        f"labels/{split}/ and instances/{split}/ (simple layout) or annotations/panoptic_{split}.json "
                        "(COCO).")
    classes = read_classes(root)
    if classes is None:
        raise DataError(f"{root / 'classes.txt'}: missing. Write one class name a line (line i = class i).")
    if len(classes) > VOID:
        raise DataError(f"{root / 'classes.txt'}: {len(classes)} classes, but 8-bit labels hold classes 0..254 "
                        f"({VOID} is void). Use the COCO panoptic layout for more classes.")
    things = read_panoptic_things(root, classes)
    for sub in ("labels", "instances"):
        missing = [p for p in images if not (root / sub / split / f"{p.stem}.png").is_file()]
        if missing:
            raise DataError(f"{root / sub / split / (missing[0].stem + '.png')}: missing ({len(missing)} image(s) "
                            f"of {split} have no {sub} PNG). Add {sub}/{split}/<stem>.png for every image or "
                            "remove the image.")
    return PanopticSplit(root, split, classes, [c + 1 for c in range(len(classes))],
                         [c in things for c in range(len(classes))], things, images)


def _open_coco(root: Path, split: str, max_pixels: int) -> PanopticSplit:
    path = root / "annotations" / f"panoptic_{split}.json"
    index = load_coco_panoptic(path, root / "images" / split, root / "annotations" / f"panoptic_{split}",
                               max_pixels)
    if not index.images:
        raise DataError(f"{path}: lists no images. Add images and their annotations.")
    order = sorted(index.images.values(), key=lambda im: (str(im["file_name"]), im["id"]))
    cats = index.categories
    return PanopticSplit(root, split, [c["name"] for c in cats], [c["id"] for c in cats],
                         [c["isthing"] for c in cats], [k for k, c in enumerate(cats) if c["isthing"]],
                         [root / "images" / split / im["file_name"] for im in order], "coco",
                         [index.annotations[im["id"]] for im in order])


def semantic_map(ids: np.ndarray, segments: Sequence[dict], void: int = VOID) -> np.ndarray:
    """(H, W) int64 class index of every pixel of a segment-id map (void, and ids without a segment: ``void``)."""
    return map_ids(ids, [s["id"] for s in segments], [s["category"] for s in segments], void)


class PanopticDataset(Dataset):
    """Training items of a :class:`PanopticSplit` (the panoptic contract's training targets).

    Item: ``(image float (3, H, W) in [0, 1], target)`` with ``boxes`` (N, 4) XYXY ``BoundingBoxes`` (tight
    box of each mask), ``labels`` (N,) int64 = position in ``thing_classes`` + 1, ``masks`` (N, H, W) uint8
    ``Mask``, ``semantic`` (H, W) int64 class indices with 255 = void, ``image_id`` = i + 1, plus
    ``area`` and ``iscrowd`` as the instance datasets give them. Crowd segments give no instance but keep
    their class in ``semantic``. ``transforms`` get ``(Image, target)`` with ``semantic`` as a
    :class:`~seglab.data.transforms.SemanticMask` (see ``build_panoptic_train_transforms``).

    ``check=True`` runs the panoptic doctor on the split first (every file decoded, remembered for unchanged
    files), so training never starts on data the doctor would refuse.
    """

    def __init__(self, split: PanopticSplit, transforms: Callable | None = None, check: bool = True) -> None:
        self.split, self.transforms = split, transforms
        if check:
            preflight_panoptic(split)
        self._label_of = {c: j + 1 for j, c in enumerate(split.thing_classes)}

    @property
    def classes(self) -> list[str]:
        """Name of each class index."""
        return self.split.classes

    @property
    def thing_classes(self) -> list[int]:
        """The thing class indices (detector label ``j + 1`` is ``thing_classes[j]``)."""
        return self.split.thing_classes

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, ids, segments = self.split.load(i)
        h, w = ids.shape
        things = [s for s in segments if s["isthing"] and not s["iscrowd"]]
        masks = torch.from_numpy((ids[None] == np.array([s["id"] for s in things], np.int64).reshape(-1, 1, 1))
                                 .astype(np.uint8))
        img = tv_tensors.Image(torch.tensor(image).permute(2, 0, 1).float().div_(255.0))
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(tight_boxes(masks), format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self._label_of[s["category"]] for s in things], dtype=torch.int64),
            "masks": tv_tensors.Mask(masks),
            "semantic": SemanticMask(torch.from_numpy(semantic_map(ids, segments))),
            "image_id": i + 1,
        }
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        return torch.as_tensor(img).float(), _finish_target(target)


def _finish_target(target: dict[str, Any]) -> dict[str, Any]:
    """Re-derive tight boxes from the (transformed) masks and drop instances left without a pixel."""
    m = target["masks"]
    keep = m.flatten(1).bool().any(1) if m.shape[0] else torch.zeros(0, dtype=torch.bool)
    m = tv_tensors.Mask(m.as_subclass(torch.Tensor)[keep])
    target["masks"] = m
    target["labels"] = target["labels"][keep]
    target["boxes"] = tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=tuple(m.shape[-2:]))
    target["area"] = m.flatten(1).sum(1).float()
    target["iscrowd"] = torch.zeros(int(keep.sum()), dtype=torch.int64)
    target["semantic"] = target["semantic"].as_subclass(torch.Tensor).long()
    return target


def collate_panoptic(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images and targets as lists (as ``collate_instances``): images may differ in size."""
    return [b[0] for b in batch], [b[1] for b in batch]
