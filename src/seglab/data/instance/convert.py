"""Converters between the two instance layouts: instance-mask PNGs <-> COCO instances JSON (RLE).

``seglab data convert masks-to-coco`` / ``coco-to-masks`` call these; a round trip PNG -> COCO -> PNG is the
identity (tests/data/instance/test_convert.py). Progress goes to ``callback(done, total)`` after each image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seglab.data.instance.checks import CocoIndex, load_coco
from seglab.data.instance.masks import InstanceMaskFolder
from seglab.data.io import DEFAULT_MAX_PIXELS, image_size, read_label, write_label
from seglab.data.rle import decode_masks, encode_mask, rle_bbox, segmentation_to_rle
from seglab.errors import DataError
from seglab.fileio import atomic_write_text, check_output_path, refuse_overwrite

Callback = Callable[[int, int], None]


def masks_to_coco(root: str | os.PathLike, split: str, out_json: str | os.PathLike, overwrite: bool = False,
                  callback: Callback | None = None) -> dict[str, int]:
    """Write the mask folder ``masks/<split>/`` of ``root`` as a COCO instances JSON (compressed RLE).

    Image ids are 1-based positions in the sorted image list (as :class:`InstanceMaskFolder`); instance k of
    an image becomes its k-th annotation.

    Returns:
        ``{"images": ..., "instances": ...}`` counts written.

    Raises:
        DataError: the output exists (without ``overwrite``) or lies in the input folder; a mask that does
            not fit its image or its label list.
        OutputError: ``out_json`` is a folder, not writable, or an input file (even with ``overwrite``).
    """
    out_json = Path(out_json)
    check_output_path(out_json)
    refuse_overwrite([out_json], [Path(root) / "images" / split, Path(root) / "masks" / split])
    if out_json.exists() and not overwrite:
        raise DataError(f"{out_json}: already exists. Choose another output path or pass overwrite=True "
                        "(--force) to replace it.")
    ds = InstanceMaskFolder(root, split)
    if out_json.resolve().parent == (ds.root / "masks" / split).resolve():
        raise DataError(f"{out_json}: inside the input folder masks/{split}/; write the JSON elsewhere "
                        f"(default annotations/instances_{split}.json).")
    images, anns = [], []
    for i, path in enumerate(ds.image_paths):
        ids = read_label(ds.mask_path(path))
        wh, why = image_size(path, DEFAULT_MAX_PIXELS)
        if why or wh != (ids.shape[1], ids.shape[0]):
            raise DataError(f"{path}: {why or 'image and mask sizes differ'}. Run "
                            f"`seglab data check --task instance {ds.root}` first.")
        n = int(ids.max(initial=0))
        labels = ds.checked_labels(path, n)
        images.append({"id": i + 1, "file_name": path.name, "width": wh[0], "height": wh[1]})
        for k in range(1, n + 1):
            m = ids == k
            if m.any():
                rle = encode_mask(m)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": labels[k - 1],
                             "segmentation": rle, "area": float(m.sum()), "iscrowd": 0, "bbox": rle_bbox(rle)})
        if callback is not None:
            callback(i + 1, len(ds.image_paths))
    cats = [{"id": c, "name": ds.classes[j]} for j, c in enumerate(ds.cat_ids) if j > 0]
    atomic_write_text(out_json, json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return {"images": len(images), "instances": len(anns)}


def _read_coco(root: Path, split: str) -> tuple[CocoIndex, dict[int, list[dict]]]:
    """The checked JSON (:func:`~seglab.data.instance.checks.load_coco`) and its non-crowd annotations per
    image id (in id order)."""
    path = root / "annotations" / f"instances_{split}.json"
    index = load_coco(path, root / "images" / split)
    stems = [Path(im["file_name"]).stem for im in index.images.values()]
    if len(set(stems)) != len(stems):
        raise DataError(f"{path}: several images share a file stem; mask files are named by stem.")
    return index, index.per_image()


def _instance_ids(anns: list[dict], h: int, w: int) -> tuple[np.ndarray, list[int], int]:
    """Paint annotations in order as ids 1..n (later wins), renumbered so hidden ones leave no gap."""
    ids = np.zeros((h, w), np.int32)
    cats = []
    for a in anns:
        ids[decode_masks([segmentation_to_rle(a["segmentation"], h, w)], h, w)[0] > 0] = len(cats) + 1
        cats.append(a["category_id"])
    present = np.unique(ids[ids > 0])
    if len(present) == len(cats):
        return ids, cats, 0
    remap = np.zeros(len(cats) + 1, np.int32)
    remap[present] = np.arange(1, len(present) + 1)
    return remap[ids], [cats[k - 1] for k in present], len(cats) - len(present)


def coco_to_masks(root: str | os.PathLike, split: str, out_dir: str | os.PathLike, overwrite: bool = False,
                  callback: Callback | None = None) -> dict[str, int]:
    """Write ``annotations/instances_<split>.json`` of ``root`` as ``<out_dir>/<stem>.png`` + ``<stem>.json``.

    Annotations of an image, in id order, become instance ids 1..n (a later one wins where masks overlap;
    one hidden entirely is left out). Crowd regions have no place in the layout and are skipped.

    Returns:
        ``{"images": ..., "instances": ..., "skipped_crowd": ..., "hidden": ...}``.

    Raises:
        DataError: ``out_dir`` already holds masks (without ``overwrite``); a JSON that is not a valid COCO
            instances file (every record is checked before anything is allocated or written, image sizes
            against the decompression-bomb limit, file names inside ``images/<split>/``); shared stems.
        OutputError: ``out_dir`` is a file or not writable, or a mask would replace an input (even with
            ``overwrite``).
    """
    root, out_dir = Path(root), Path(out_dir)
    check_output_path(out_dir, directory=True)
    images = root / "images" / split
    # Mask files take the images' stems: writing them into the images folder would replace PNG images.
    stems = [p.stem for p in images.iterdir()] if images.is_dir() else []
    refuse_overwrite([out_dir / f"{s}{ext}" for s in stems for ext in (".png", ".json")],
                     [images, root / "annotations" / f"instances_{split}.json"])
    if not overwrite and out_dir.is_dir() and any(out_dir.glob("*.png")):
        raise DataError(f"{out_dir}: already holds PNG masks. Choose an empty output folder or pass "
                        "overwrite=True (--force) to replace them.")
    index, per_image = _read_coco(root, split)
    total = hidden = 0
    for done, im in enumerate(index.images.values(), 1):
        ids, cats, gone = _instance_ids(per_image[im["id"]], im["height"], im["width"])
        stem = Path(im["file_name"]).stem
        write_label(out_dir / f"{stem}.png", ids)
        atomic_write_text(out_dir / f"{stem}.json", json.dumps({"labels": cats}))
        total, hidden = total + len(cats), hidden + gone
        if callback is not None:
            callback(done, len(index.images))
    return {"images": len(index.images), "instances": total, "skipped_crowd": index.crowd(), "hidden": hidden}
