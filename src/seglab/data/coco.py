"""Instance segmentation data: COCO JSON, instance-mask folders, their doctor and converters.

Two layouts carry the same information (DESIGN.md):

- COCO: ``annotations/instances_<split>.json`` + ``images/<split>/<file_name>``; segmentations as polygons,
  uncompressed or compressed RLE.
- Mask folder: ``masks/<split>/<stem>.png`` (0 = background, k = instance k) + ``masks/<split>/<stem>.json``
  = ``{"labels": [c_1, ..., c_n]}`` (category id of each instance); names from ``classes.txt``.

Both datasets return torchvision detection targets so the v2 joint transforms move image, boxes and masks
together. RLE encoding, decoding and polygon rasterisation go through faster-coco-eval's mask API, the same
code that scores the predictions, so a mask means the same pixels everywhere.

The doctor lives in :mod:`seglab.data.coco_checks` and the converters in :mod:`seglab.data.coco_convert`;
their public names are re-exported here (``from seglab.data.coco import masks_to_coco`` works).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faster_coco_eval.core.mask as mask_utils
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from seglab.data.coco_checks import BACKGROUND_NAMES, _check_coco, _raise_problems, check_instance_dataset, read_classes
from seglab.data.coco_convert import coco_to_masks, masks_to_coco
from seglab.data.io import DEFAULT_MAX_PIXELS, IMAGE_EXTS, list_files, read_image, read_label
from seglab.errors import DataError

__all__ = ["BACKGROUND_NAMES", "CocoInstances", "InstanceMaskFolder", "check_instance_dataset", "coco_to_masks",
           "collate_instances", "encode_mask", "masks_to_coco", "read_classes", "read_json", "segmentation_to_rle",
           "tight_boxes"]


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a syntax error names the line and column so the user can find it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found. Check the dataset root and split name.") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}. "
                        "Fix the file (a JSON linter shows the spot) or re-export it.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read JSON ({e}). Re-export the file.") from e


def segmentation_to_rle(segm: Any, height: int, width: int) -> dict:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) -> compressed RLE."""
    try:
        return mask_utils.segmToRle(segm, width, height)
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"segmentation does not decode at {width}x{height}: {e}. Run "
                        "`seglab data check --task instance` on the dataset.") from e


def encode_mask(mask: np.ndarray) -> dict:
    """Binary HxW mask -> JSON-ready compressed RLE ``{"size": [h, w], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]], "counts": counts.decode() if isinstance(counts, bytes)
            else counts}


def tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) masks -> (N, 4) float XYXY boxes on pixel edges (x2 = last column + 1), as COCO's bbox."""
    if masks.numel() == 0:
        return torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    m = masks.bool()
    cols, rows = m.any(1), m.any(2)
    ar_w = torch.arange(m.shape[2], device=m.device)
    ar_h = torch.arange(m.shape[1], device=m.device)
    x1 = torch.where(cols, ar_w, m.shape[2]).amin(1)
    x2 = torch.where(cols, ar_w, -1).amax(1) + 1
    y1 = torch.where(rows, ar_h, m.shape[1]).amin(1)
    y2 = torch.where(rows, ar_h, -1).amax(1) + 1
    return torch.stack([x1, y1, x2, y2], 1).float()


class _InstanceDataset(Dataset):
    """Shared tail of both layouts: build tv_tensors, transform, re-derive boxes from masks, drop empties."""

    classes: list[str]
    cat_ids: list[int]
    transforms: Callable | None

    def _set_categories(self, names: dict[int, str]) -> None:
        self.cat_ids = [0, *sorted(names)]  # index = contiguous training label; 0 = background
        self.classes = ["background", *(names[c] for c in self.cat_ids[1:])]
        self._label_of = {c: i for i, c in enumerate(self.cat_ids) if i > 0}

    @property
    def num_classes(self) -> int:
        """Number of model outputs, background included (what Mask R-CNN builders take)."""
        return len(self.classes)

    def _sample(self, image: np.ndarray, masks: np.ndarray, cat_ids: Sequence[int],
                image_id: int) -> tuple[torch.Tensor, dict[str, Any]]:
        h, w = image.shape[:2]
        img = tv_tensors.Image(torch.tensor(image).permute(2, 0, 1).float().div_(255.0))
        m = torch.from_numpy(masks.reshape(-1, h, w).astype(np.uint8))
        target = {
            "boxes": tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self._label_of[c] for c in cat_ids], dtype=torch.int64),
            "masks": tv_tensors.Mask(m),
            "image_id": int(image_id),
        }
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        # Boxes are re-derived from the (transformed) masks: a rotated or cropped box is looser than the
        # object, and an instance cropped away entirely must not reach the loss as an empty target.
        m = target["masks"]
        keep = m.flatten(1).bool().any(1) if m.shape[0] else torch.zeros(0, dtype=torch.bool)
        m = tv_tensors.wrap(m[keep], like=m) if isinstance(m, tv_tensors.Mask) else tv_tensors.Mask(m[keep])
        canvas = tuple(m.shape[-2:])
        target["masks"] = m
        target["labels"] = target["labels"][keep]
        target["boxes"] = tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=canvas)
        target["area"] = m.flatten(1).sum(1).float()
        target["iscrowd"] = torch.zeros(int(keep.sum()), dtype=torch.int64)
        return torch.as_tensor(img).float(), target


class CocoInstances(_InstanceDataset):
    """COCO instances (``annotations/instances_<split>.json`` + ``images/<split>/``) as detection targets.

    Item: ``(image, target)``; image (3, H, W) float32 in [0, 1]; target ``boxes`` (N, 4) XYXY
    ``BoundingBoxes`` (tight box of each mask), ``labels`` (N,) int64 contiguous 1..K (``cat_ids[label]`` is
    the COCO category id, ``classes[label]`` its name; 0 = background), ``masks`` (N, H, W) uint8 ``Mask``,
    ``image_id`` int, ``iscrowd`` (N,) int64 zeros, ``area`` (N,) float32 mask pixel counts.

    Crowd annotations (``iscrowd=1``) are kept out of the targets: they mark regions of many objects that
    should neither be learnt as one instance nor punished as background; evaluation against the original
    JSON still honours them. ``check=True`` runs the instance doctor on the split first.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms: Callable | None = None,
                 check: bool = True) -> None:
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.ann_file = self.root / "annotations" / f"instances_{split}.json"
        if check:
            _raise_problems(_check_coco(self.root, split, DEFAULT_MAX_PIXELS), self.root)
        data = read_json(self.ann_file)
        self.images = sorted(data["images"], key=lambda im: im["id"])
        self._set_categories({c["id"]: c.get("name", f"class_{c['id']}") for c in data["categories"]})
        self._anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for a in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
            if not a.get("iscrowd", 0) and a["image_id"] in self._anns:
                self._anns[a["image_id"]].append(a)

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
        rles = [segmentation_to_rle(a["segmentation"], h, w) for a in anns]
        masks = mask_utils.decode(rles).transpose(2, 0, 1) if rles else np.zeros((0, h, w), np.uint8)
        return self._sample(image, masks, [a["category_id"] for a in anns], info["id"])


class InstanceMaskFolder(_InstanceDataset):
    """Instance-mask folder (``masks/<split>/<stem>.png`` + ``<stem>.json``) with CocoInstances' output.

    Image ids are 1-based positions in the sorted image list, the ids :func:`masks_to_coco` writes. A PNG
    without its JSON is accepted only when ``classes.txt`` names a single category (all instances get it).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transforms: Callable | None = None) -> None:
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.image_paths = list_files(self.root / "images" / split, IMAGE_EXTS)
        if not self.image_paths:
            raise DataError(f"{self.root / 'images' / split}: no images. Expected images/{split}/<stem>.png "
                            f"with masks/{split}/<stem>.png beside it.")
        names = read_classes(self.root)
        if not names:  # no classes.txt: categories are whatever the JSON files use
            used = {c for p in self.image_paths for c in self._labels(p, None) or []}
            names = {c: f"class_{c}" for c in sorted(used)}
        self._set_categories(names)

    def _labels(self, image_path: Path, n: int | None) -> list[int] | None:
        js = self.root / "masks" / self.split / f"{image_path.stem}.json"
        if js.is_file():
            return [int(c) for c in read_json(js)["labels"]]
        if n is not None and len(self.cat_ids) == 2:
            return [self.cat_ids[1]] * n
        if n is None:
            return None
        raise DataError(f"{js}: missing; it lists the category of each instance ({{\"labels\": [...]}}). "
                        "Write it, or keep a single category in classes.txt.")

    def __len__(self) -> int:
        return len(self.image_paths)

    def image_categories(self) -> list[set[int]]:
        """Category ids listed for each image (from its JSON; the single category when there is none)."""
        out = []
        for path in self.image_paths:
            labels = self._labels(path, None)
            out.append(set(labels) if labels is not None else {self.cat_ids[1]})
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        path = self.image_paths[i]
        image = read_image(path)
        ids = read_label(self.root / "masks" / self.split / f"{path.stem}.png")
        if ids.shape != image.shape[:2]:
            raise DataError(f"{path.stem}: mask is {ids.shape[1]}x{ids.shape[0]}, image "
                            f"{image.shape[1]}x{image.shape[0]}. Run `seglab data check --task instance`.")
        n = int(ids.max(initial=0))
        labels = self._labels(path, n)
        if len(labels) != n:
            raise DataError(f"{path.stem}.json: {len(labels)} labels for {n} instances in the PNG. "
                            "Give one category id per instance id 1..n.")
        masks = ids[None] == np.arange(1, n + 1)[:, None, None]
        return self._sample(image, masks, labels, i + 1)


def collate_instances(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images and targets as lists: detection models take images of different sizes."""
    return [b[0] for b in batch], [b[1] for b in batch]

