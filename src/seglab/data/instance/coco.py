"""COCO instance data: ``annotations/instances_<split>.json`` + ``images/<split>/<file_name>``.

Segmentations may be polygons, uncompressed or compressed RLE (decoded by :mod:`seglab.data.rle`). The
other instance layout, the mask folder, is :mod:`seglab.data.instance.masks`; :func:`open_instance_split` picks
whichever a split has. The doctor is :mod:`seglab.data.instance.checks`, the converters between the two
layouts :mod:`seglab.data.instance.convert`.

Both datasets return torchvision detection targets so the v2 joint transforms move image, boxes and masks
together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from seglab.data.instance.checks import load_coco
from seglab.data.instance.dataset import InstanceDataset
from seglab.data.instance.masks import InstanceMaskFolder
from seglab.data.io import read_image, read_json
from seglab.data.preflight import preflight_instances
from seglab.data.rle import decode_masks, segmentation_to_rle
from seglab.errors import ConfigError

# read_json and InstanceMaskFolder live in io.py / masks.py; other areas import them from here too.
__all__ = ["CocoInstances", "InstanceMaskFolder", "collate_instances", "open_instance_split", "read_json"]


class CocoInstances(InstanceDataset):
    """COCO instances (``annotations/instances_<split>.json`` + ``images/<split>/``) as detection targets.

    Item: ``(image, target)``; image (3, H, W) float32 in [0, 1]; target ``boxes`` (N, 4) XYXY
    ``BoundingBoxes`` (tight box of each mask), ``labels`` (N,) int64 contiguous 1..K (``cat_ids[label]`` is
    the COCO category id, ``classes[label]`` its name; 0 = background), ``masks`` (N, H, W) uint8 ``Mask``,
    ``image_id`` int, ``iscrowd`` (N,) int64 zeros, ``area`` (N,) float32 mask pixel counts.

    Crowd annotations (``iscrowd=1``) are kept out of the targets: they mark regions of many objects that
    should neither be learnt as one instance nor punished as background; evaluation against the original
    JSON still honours them. ``check=True`` runs the instance doctor on the split first (image files
    included); without it every record of the JSON is still checked before use
    (:func:`seglab.data.instance.checks.load_coco`: types, references, sizes, file names inside
    ``images/<split>/``).

    Raises:
        DataError: (with ``check``) the first problem the doctor finds; an unreadable JSON or a bad record.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms: Callable | None = None,
                 check: bool = True) -> None:
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.ann_file = self.root / "annotations" / f"instances_{split}.json"
        if check:  # the instance doctor with every image decoded, remembered for unchanged files
            preflight_instances(self.root, split)
        index = load_coco(self.ann_file, self.root / "images" / split)
        self.images = sorted(index.images.values(), key=lambda im: im["id"])
        self.set_categories(index.categories)
        self._anns: dict[int, list[dict]] = index.per_image()

    def __len__(self) -> int:
        return len(self.images)

    def image_categories(self) -> list[set[int]]:
        """Category ids present in each image (non-crowd), without decoding anything (repeat-factor sampling)."""
        return [{a["category_id"] for a in self._anns[im["id"]]} for im in self.images]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        info = self.images[i]
        image = read_image(self.root / "images" / self.split / info["file_name"])
        h, w = image.shape[:2]
        anns = self._anns[info["id"]]
        masks = decode_masks([segmentation_to_rle(a["segmentation"], h, w, checked=True) for a in anns], h, w)
        return self.make_sample(image, masks, [a["category_id"] for a in anns], info["id"])


def collate_instances(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images and targets as lists: detection models take images of different sizes."""
    return [b[0] for b in batch], [b[1] for b in batch]


def open_instance_split(root: str | os.PathLike, split: str,
                        transforms: Callable | None = None) -> CocoInstances | InstanceMaskFolder:
    """COCO (``annotations/instances_<split>.json``) when present, else the instance-mask folder.

    Raises:
        ConfigError: the split has neither layout (``--data`` points at the wrong folder).
    """
    if (Path(root) / "annotations" / f"instances_{split}.json").is_file():
        return CocoInstances(root, split, transforms=transforms)
    if not (Path(root) / "masks" / split).is_dir():
        raise ConfigError(f"{root}: split {split!r} has no annotations/instances_{split}.json and no "
                          f"masks/{split}/. Point --data at an instance dataset (see `seglab data check "
                          f"--task instance {root}`).")
    preflight_instances(root, split)
    return InstanceMaskFolder(root, split, transforms=transforms)
