"""Converters from panoptic data: COCO panoptic <-> seglab's simple layout, and panoptic -> semantic / instance.

Each converter reads every split of a dataset root (or the ``splits`` given) and writes a new dataset folder
``out``: it is built in a hidden folder beside ``out`` and renamed into place when complete, so ``out`` is
either absent or whole; ``out`` must be new or empty and outside the input (inputs are never modified).
Images are hard-linked where the file system allows (free, and still files inside the dataset, which
COCO file names must be), else copied. Progress goes to ``callback(done, total)`` after each image.

Round trips: simple -> COCO -> simple gives back the same label and instance PNGs (segment ids keep the
instance ids, see :mod:`seglab.data.panoptic.format`); COCO -> simple -> COCO keeps images, masks, categories
(names, kinds, order) and instance ids up to 65535, while category ids become class index + 1 and stuff ids
seglab's. Two stuff segments of one category in one image become one (the simple layout holds one).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from seglab.data.io import write_label
from seglab.data.layout import CLASSES_FILE, PALETTE_FILE, PANOPTIC_FILE, panoptic_splits
from seglab.data.panoptic.dataset import PanopticSplit, open_panoptic_split, semantic_map
from seglab.data.panoptic.format import VOID, map_ids, segment_stats, write_panoptic_png
from seglab.data.rle import encode_mask, rle_bbox
from seglab.errors import DataError
from seglab.fileio import atomic_path, atomic_write_text, check_output_path, refuse_overwrite

__all__ = ["coco_panoptic_to_seglab", "panoptic_to_instance", "panoptic_to_semantic", "place_image",
           "seglab_to_coco_panoptic", "staged_output"]
Callback = Callable[[int, int], None]
MAX_INSTANCE_ID = 65535  # what a 16-bit instance PNG holds


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, root: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder beside ``out`` to write a converted dataset into; renamed to ``out`` on success,
    removed on failure.

    Raises:
        DataError: ``out`` holds files, or is (or lies inside) the input folder ``root``.
        OutputError: ``out`` cannot be written.
    """
    out, root = Path(out), Path(root)
    check_output_path(out, directory=True)
    real_out, real_root = out.resolve(), root.resolve()
    if real_out == real_root or real_out.is_relative_to(real_root):
        raise DataError(f"{out}: inside the input dataset {root}; converters write a new dataset folder and never "
                        "touch their input. Pass an --out outside it.")
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out}: already exists and is not empty. Pass a new or empty --out folder.")
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def place_image(src: Path, dst: Path) -> None:
    """Put the image ``src`` at ``dst``: a hard link where possible, else an atomic copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)


def _open_splits(root: Path, splits: Sequence[str] | None, layout: str | None) -> list[PanopticSplit]:
    """The splits to convert (every split found, or ``splits``), of ``layout`` when given; all must share
    one set of classes."""
    names = list(splits) if splits else panoptic_splits(root)
    opened = [open_panoptic_split(root, s) for s in names]
    if layout is not None:
        wrong = [s.split for s in opened if s.layout != layout]
        if wrong and splits:
            raise DataError(f"{root}: split(s) {wrong} are not in the {layout} panoptic layout. Convert them with "
                            "the other converter, or leave them out.")
        opened = [s for s in opened if s.layout == layout]
    if not opened:
        want = "annotations/panoptic_<split>.json" if layout == "coco" else (
            "images/, labels/, instances/ split folders with classes.txt and panoptic.json")
        raise DataError(f"{root}: no panoptic split to convert. Expected {want}.")
    for s in opened[1:]:
        if (s.classes, s.cat_ids, s.isthing) != (opened[0].classes, opened[0].cat_ids, opened[0].isthing):
            raise DataError(f"{root}: splits {opened[0].split} and {s.split} have different categories; one "
                            "dataset folder has one set of classes. Convert them separately (--split).")
    return opened


def _image_names(split: PanopticSplit) -> list[str]:
    """The flat file name each image gets in the output (COCO file names may have folders)."""
    names = [p.name for p in split.image_paths]
    stems = [Path(n).stem for n in names]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise DataError(f"{split.root / 'images' / split.split}: several images have the stem {dup!r}; outputs are "
                        "named by stem. Rename them apart.")
    return names


Writer = Callable[[Path, PanopticSplit, int, str], tuple[dict, int]]


def _convert(root: str | os.PathLike, out: str | os.PathLike, opened: list[PanopticSplit], write: Writer,
             finish: Callable[[Path, PanopticSplit, list[dict]], None] | None, top: dict[str, str],
             callback: Callback | None) -> dict[str, int]:
    """Shared loop: stage ``out``, place each image and call ``write`` (-> a record and its segment count),
    ``finish`` per split with the records, and write the ``top`` files (name -> text) last."""
    names = {s.split: _image_names(s) for s in opened}
    planned = [Path(out) / "images" / s.split / n for s in opened for n in names[s.split]]
    refuse_overwrite(planned, [Path(root)])
    counts = {"images": 0, "segments": 0}
    total = sum(len(s) for s in opened)
    with staged_output(out, root) as tmp:
        for split in opened:
            records = []
            for i, name in enumerate(names[split.split]):
                place_image(split.image_paths[i], tmp / "images" / split.split / name)
                record, n = write(tmp, split, i, name)
                records.append(record)
                counts["images"] += 1
                counts["segments"] += n
                if callback is not None:
                    callback(counts["images"], total)
            if finish is not None:
                finish(tmp, split, records)
        for name, text in top.items():
            atomic_write_text(tmp / name, text)
        if (Path(root) / PALETTE_FILE).is_file() and CLASSES_FILE in top:
            shutil.copy2(Path(root) / PALETTE_FILE, tmp / PALETTE_FILE)
    return counts


def _classes_file(split: PanopticSplit) -> dict[str, str]:
    return {CLASSES_FILE: "\n".join(split.classes) + "\n"}


def _check_classes(split: PanopticSplit) -> None:
    """A class-index PNG with void 255 holds at most 255 classes, each named once."""
    if len(split.classes) > VOID:
        raise DataError(f"{split.root}: {len(split.classes)} categories, but class-index PNGs hold 0..254 (255 is "
                        "void). Keep the COCO panoptic layout for this dataset.")
    if len(set(split.classes)) != len(split.classes):
        dup = next(c for c in split.classes if split.classes.count(c) > 1)
        raise DataError(f"{split.root}: two categories are named {dup!r}; classes.txt and panoptic.json name "
                        "classes. Rename one in the JSON.")


def instance_ids(ids: np.ndarray, segments: list[dict]) -> tuple[np.ndarray, int]:
    """Instance-id map of the simple layout from segments: each non-crowd thing segment keeps its id when all
    of them fit in 16 bits, else they are numbered 1..n in segment order. Returns the map and n."""
    things = [s["id"] for s in segments if s["isthing"] and not s["iscrowd"]]
    new = things if all(0 < t <= MAX_INSTANCE_ID for t in things) else list(range(1, len(things) + 1))
    return map_ids(ids, things, new, 0), len(things)


def coco_panoptic_to_seglab(root: str | os.PathLike, out: str | os.PathLike, splits: Sequence[str] | None = None,
                            callback: Callback | None = None) -> dict[str, int]:
    """Write COCO panoptic splits of ``root`` as seglab's simple panoptic layout in the new folder ``out``.

    Returns:
        ``{"images": ..., "segments": ...}`` written.

    Raises:
        DataError: no COCO split, a problem in the annotations (``seglab data check``), more than 255
            categories, duplicate category names or image stems, an ``out`` that is not new.
    """
    def write(tmp: Path, split: PanopticSplit, i: int, name: str) -> tuple[dict, int]:
        _, ids, segments = split.load(i)
        stem = Path(name).stem
        write_label(tmp / "labels" / split.split / f"{stem}.png", semantic_map(ids, segments))
        write_label(tmp / "instances" / split.split / f"{stem}.png", instance_ids(ids, segments)[0])
        return {}, len(segments)

    opened = _open_splits(Path(root), splits, "coco")
    _check_classes(opened[0])
    things = json.dumps({"things": [opened[0].classes[c] for c in opened[0].thing_classes]}) + "\n"
    return _convert(root, out, opened, write, None, {**_classes_file(opened[0]), PANOPTIC_FILE: things}, callback)


def seglab_to_coco_panoptic(root: str | os.PathLike, out: str | os.PathLike, splits: Sequence[str] | None = None,
                            callback: Callback | None = None) -> dict[str, int]:
    """Write seglab's simple panoptic layout of ``root`` as COCO panoptic in the new folder ``out``:
    ``annotations/panoptic_<split>.json`` + ``annotations/panoptic_<split>/<stem>.png`` + ``images/``.

    Image ids are positions + 1 in file-name order; category ids class index + 1; segment ids as
    :mod:`seglab.data.panoptic.format` gives them (instance ids kept).

    Raises:
        DataError: no simple split, a problem in the data (``seglab data check``), an ``out`` that is not new.
    """
    def write(tmp: Path, split: PanopticSplit, i: int, name: str) -> tuple[dict, int]:
        _, ids, segments = split.load(i)
        png = f"{Path(name).stem}.png"
        write_panoptic_png(tmp / "annotations" / f"panoptic_{split.split}" / png, ids)
        stats = segment_stats(ids)
        infos = [{"id": s["id"], "category_id": split.cat_ids[s["category"]], "iscrowd": s["iscrowd"],
                  "area": stats[s["id"]][0], "bbox": stats[s["id"]][1]} for s in segments]
        return {"image": {"id": i + 1, "file_name": name, "width": ids.shape[1], "height": ids.shape[0]},
                "annotation": {"image_id": i + 1, "file_name": png, "segments_info": infos}}, len(segments)

    def finish(tmp: Path, split: PanopticSplit, records: list[dict]) -> None:
        cats = [{"id": c, "name": n, "isthing": int(t), "supercategory": "thing" if t else "stuff"}
                for c, n, t in zip(split.cat_ids, split.classes, split.isthing, strict=True)]
        doc = {"info": {"description": f"converted by seglab from {split.root}"},
               "images": [r["image"] for r in records], "annotations": [r["annotation"] for r in records],
               "categories": cats}
        atomic_write_text(tmp / "annotations" / f"panoptic_{split.split}.json", json.dumps(doc) + "\n")

    return _convert(root, out, _open_splits(Path(root), splits, "simple"), write, finish, {}, callback)


def panoptic_to_semantic(root: str | os.PathLike, out: str | os.PathLike, splits: Sequence[str] | None = None,
                         callback: Callback | None = None) -> dict[str, int]:
    """Write a panoptic dataset (either layout) as a semantic one in the new folder ``out``: ``images/``,
    ``labels/<split>/<stem>.png`` (class indices, 255 void; crowd pixels keep their class), ``classes.txt``.

    Raises:
        DataError: a problem in the data, more than 255 classes, an ``out`` that is not new.
    """
    def write(tmp: Path, split: PanopticSplit, i: int, name: str) -> tuple[dict, int]:
        _, ids, segments = split.load(i)
        write_label(tmp / "labels" / split.split / f"{Path(name).stem}.png", semantic_map(ids, segments))
        return {}, len(segments)

    opened = _open_splits(Path(root), splits, None)
    _check_classes(opened[0])
    return _convert(root, out, opened, write, None, _classes_file(opened[0]), callback)


def panoptic_to_instance(root: str | os.PathLike, out: str | os.PathLike, splits: Sequence[str] | None = None,
                         callback: Callback | None = None) -> dict[str, int]:
    """Write the things of a panoptic dataset (either layout) as COCO instances in the new folder ``out``:
    ``annotations/instances_<split>.json`` (compressed RLE, category ids as in the panoptic data, names from
    its classes; crowd segments as ``iscrowd`` 1) + ``images/<split>/``. Stuff is left out.

    Raises:
        DataError: a problem in the data, an ``out`` that is not new.
    """
    def write(tmp: Path, split: PanopticSplit, i: int, name: str) -> tuple[dict, int]:
        _, ids, segments = split.load(i)
        anns = []
        for s in (s for s in segments if s["isthing"]):
            rle = encode_mask(ids == s["id"])
            anns.append({"image_id": i + 1, "category_id": split.cat_ids[s["category"]], "segmentation": rle,
                         "area": float((ids == s["id"]).sum()), "bbox": rle_bbox(rle), "iscrowd": s["iscrowd"]})
        return {"image": {"id": i + 1, "file_name": name, "width": ids.shape[1], "height": ids.shape[0]},
                "annotations": anns}, len(anns)

    def finish(tmp: Path, split: PanopticSplit, records: list[dict]) -> None:
        anns = [dict(a, id=k) for k, a in enumerate((a for r in records for a in r["annotations"]), 1)]
        cats = [{"id": split.cat_ids[c], "name": split.classes[c]} for c in split.thing_classes]
        doc = {"images": [r["image"] for r in records], "annotations": anns, "categories": cats}
        atomic_write_text(tmp / "annotations" / f"instances_{split.split}.json", json.dumps(doc) + "\n")

    # No classes.txt: instance data names its categories in the JSON (a classes.txt would be read with the
    # instance layout's background rule, seglab.data.layout.category_names, and could disagree).
    return _convert(root, out, _open_splits(Path(root), splits, None), write, finish, {}, callback)
