"""Converters between the two instance layouts: instance-mask PNGs <-> COCO instances JSON (RLE).

``seglab data convert masks-to-coco`` / ``coco-to-masks`` call these; a round trip PNG -> COCO -> PNG is the
identity (tests/data/test_coco.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import faster_coco_eval.core.mask as mask_utils
import numpy as np

from seglab.data.coco_checks import _image_size
from seglab.data.io import DEFAULT_MAX_PIXELS, read_label, write_label
from seglab.errors import DataError
from seglab.fileio import atomic_write_text

Track = Callable[[Sequence[Any]], Iterable[Any]]


def _identity(items: Sequence[Any]) -> Iterable[Any]:
    return items


def masks_to_coco(root: str | os.PathLike, split: str, out_json: str | os.PathLike, overwrite: bool = False,
                  track: Track = _identity) -> dict[str, int]:
    """Write the mask folder ``masks/<split>/`` of ``root`` as a COCO instances JSON (compressed RLE).

    Image ids are 1-based positions in the sorted image list (as :class:`InstanceMaskFolder`); instance k of
    an image becomes its k-th annotation. ``track`` wraps the image loop (a progress bar in the CLI).

    Returns:
        ``{"images": ..., "instances": ...}`` counts written.
    """
    from seglab.data.coco import InstanceMaskFolder, encode_mask  # coco.py re-exports this module

    out_json = Path(out_json)
    if out_json.exists() and not overwrite:
        raise DataError(f"{out_json}: already exists. Choose another output path or pass overwrite=True "
                        "(--force) to replace it.")
    ds = InstanceMaskFolder(root, split)
    if out_json.resolve().parent == (ds.root / "masks" / split).resolve():
        raise DataError(f"{out_json}: inside the input folder masks/{split}/; write the JSON elsewhere "
                        f"(default annotations/instances_{split}.json).")
    images, anns = [], []
    for i, path in enumerate(track(ds.image_paths)):
        ids = read_label(ds.root / "masks" / split / f"{path.stem}.png")
        wh, why = _image_size(path, DEFAULT_MAX_PIXELS)
        if why or wh != (ids.shape[1], ids.shape[0]):
            raise DataError(f"{path}: {why or 'image and mask sizes differ'}. Run "
                            f"`seglab data check --task instance {ds.root}` first.")
        n = int(ids.max(initial=0))
        labels = ds._labels(path, n)
        if len(labels) != n:
            raise DataError(f"{path.stem}.json: {len(labels)} labels for {n} instances. One id per instance.")
        images.append({"id": i + 1, "file_name": path.name, "width": wh[0], "height": wh[1]})
        for k in range(1, n + 1):
            m = ids == k
            if m.any():
                rle = encode_mask(m)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": labels[k - 1],
                             "segmentation": rle, "area": float(m.sum()), "iscrowd": 0,
                             "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
    cats = [{"id": c, "name": ds.classes[j]} for j, c in enumerate(ds.cat_ids) if j > 0]
    atomic_write_text(out_json, json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return {"images": len(images), "instances": len(anns)}


def coco_to_masks(root: str | os.PathLike, split: str, out_dir: str | os.PathLike, overwrite: bool = False,
                  track: Track = _identity) -> dict[str, int]:
    """Write ``annotations/instances_<split>.json`` of ``root`` as ``<out_dir>/<stem>.png`` + ``<stem>.json``.

    Annotations of an image, in id order, become instance ids 1..n (a later one wins where masks overlap;
    one hidden entirely is left out). Crowd regions have no place in the layout and are skipped.

    Returns:
        ``{"images": ..., "instances": ..., "skipped_crowd": ..., "hidden": ...}``.
    """
    from seglab.data.coco import read_json, segmentation_to_rle  # coco.py re-exports this module

    root, out_dir = Path(root), Path(out_dir)
    if not overwrite and out_dir.is_dir() and any(out_dir.glob("*.png")):
        raise DataError(f"{out_dir}: already holds PNG masks. Choose an empty output folder or pass "
                        "overwrite=True (--force) to replace them.")
    path = root / "annotations" / f"instances_{split}.json"
    data = read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise DataError(f"{path}: not a COCO instances file (needs lists 'images' and 'annotations').")
    per_image: dict[Any, list[dict]] = {im["id"]: [] for im in data["images"]}
    crowd = 0
    for a in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
        crowd += bool(a.get("iscrowd", 0))
        if not a.get("iscrowd", 0) and a["image_id"] in per_image:
            per_image[a["image_id"]].append(a)
    stems = [Path(im["file_name"]).stem for im in data["images"]]
    if len(set(stems)) != len(stems):
        raise DataError(f"{path}: several images share a file stem; mask files are named by stem.")
    total = hidden = 0
    for im in track(data["images"]):
        h, w = im["height"], im["width"]
        ids = np.zeros((h, w), np.int32)
        cats = []
        for a in per_image[im["id"]]:
            ids[mask_utils.decode(segmentation_to_rle(a["segmentation"], h, w)) > 0] = len(cats) + 1
            cats.append(a["category_id"])
        present = np.unique(ids[ids > 0])
        if len(present) != len(cats):  # renumber so instance ids stay 1..n
            remap = np.zeros(len(cats) + 1, np.int32)
            remap[present] = np.arange(1, len(present) + 1)
            hidden += len(cats) - len(present)
            ids, cats = remap[ids], [cats[k - 1] for k in present]
        stem = Path(im["file_name"]).stem
        write_label(out_dir / f"{stem}.png", ids)
        atomic_write_text(out_dir / f"{stem}.json", json.dumps({"labels": cats}))
        total += len(cats)
    return {"images": len(data["images"]), "instances": total, "skipped_crowd": crowd, "hidden": hidden}
