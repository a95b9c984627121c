"""The panoptic dataset doctor: both layouts scanned once, every problem reported together.

Rows are :class:`~seglab.data.problems.Problem` (file, what is wrong, how to fix it), as the semantic and
instance doctors report them. Errors stop training (:func:`seglab.data.preflight.preflight_panoptic`);
warnings (a segments_info ``area`` / ``bbox`` that disagrees with the PNG, extra files nothing reads, a
stuff category split into several segments, a thing class that never has an instance) are shown but do not.

Simple layout: classes.txt and panoptic.json; images, labels and instance PNGs paired by stem and of one
size; label values; instance ids only on thing pixels, and each within one class. COCO layout: every JSON
record (:func:`seglab.data.panoptic.format.index_coco_panoptic`); images and PNGs present and of the
annotated size; PNG ids and segments_info agree both ways.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seglab.data.file_checks import inspect_image
from seglab.data.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTS,
    LABEL_EXTS,
    pil_pixel_limit,
    read_json,
    read_label,
    unsupported_files,
    unsupported_finding,
)
from seglab.data.layout import (
    CLASSES_FILE,
    PANOPTIC_FILE,
    list_split,
    pair_by_stem,
    panoptic_splits,
    read_classes,
    read_panoptic_things,
)
from seglab.data.panoptic.format import (
    Finding,
    PanopticIndex,
    id_agreement,
    index_coco_panoptic,
    read_panoptic_png,
    segment_stats,
    simple_segments,
)
from seglab.data.problems import Problem
from seglab.errors import DataError


@dataclass
class PanopticReport:
    """What the doctor found: ``errors`` (the data cannot be used as it is), ``warnings``, images scanned."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    images: int = 0


@dataclass
class _Scan:
    root: Path
    max_pixels: int
    decode: bool
    callback: Callable[[int, int], None] | None
    report: PanopticReport = field(default_factory=PanopticReport)
    total: int = 0

    def error(self, path: Path | str, problem: str, fix: str) -> None:
        self.report.errors.append(Problem(path, problem, fix))

    def warn(self, path: Path | str, problem: str, fix: str) -> None:
        self.report.warnings.append(Problem(path, problem, fix))

    def tick(self) -> None:
        self.report.images += 1
        if self.callback is not None:
            self.callback(self.report.images, self.total)


def check_panoptic_dataset(root: str | os.PathLike, splits: list[str] | None = None,
                           max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = False,
                           callback: Callable[[int, int], None] | None = None) -> PanopticReport:
    """Scan a panoptic dataset (either layout, per split) and report every problem.

    ``splits=None`` checks every split found (:func:`seglab.data.layout.panoptic_splits`). PNGs are always
    decoded; images only with ``decode`` (finds truncated files; headers otherwise). ``callback(done,
    total)`` follows each image. No errors means :func:`seglab.data.panoptic.open_panoptic_split` reads
    every image of the checked splits.

    Raises:
        DataError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Pass the folder of the panoptic dataset.")
    scan = _Scan(root, max_pixels, decode, callback)
    splits = list(splits) if splits else panoptic_splits(root)
    if not splits:
        scan.error(root, "no panoptic annotations found", "add annotations/panoptic_<split>.json (COCO) or "
                   "images/, labels/, instances/ split folders with classes.txt and panoptic.json")
    coco = {s: (root / "annotations" / f"panoptic_{s}.json").is_file() for s in splits}
    scan.total = sum(len(list_split(root / "images" / s)) for s in splits)
    classes = _simple_classes(scan) if not all(coco.values()) else None
    with pil_pixel_limit(None):  # sizes are checked from headers before anything is decoded
        for split in splits:
            if coco[split]:
                _check_coco_split(scan, split)
            else:
                _check_simple_split(scan, split, classes)
    return scan.report


def raise_first_panoptic_problem(report: PanopticReport, root: Path) -> None:
    """Raise the first error of ``report`` as one DataError (nothing when there is none)."""
    if report.errors:
        p = report.errors[0]
        raise DataError(f"{root}: {len(report.errors)} problem(s) in the panoptic dataset; first: {p.path}: "
                        f"{p.problem} (fix: {p.fix}). `seglab data check {root}` lists all.")


# --- the simple layout ------------------------------------------------------------------------------------


def _simple_classes(scan: _Scan) -> tuple[list[str], list[bool]] | None:
    """Class names and thing flags of the simple layout (None when classes.txt or panoptic.json is broken)."""
    try:
        names = read_classes(scan.root)
    except DataError as e:
        scan.error(scan.root / CLASSES_FILE, str(e).split(": ", 1)[-1], "one class name a line")
        return None
    if names is None:
        scan.error(scan.root / CLASSES_FILE, "missing", "write one class name a line (line i names class i)")
        return None
    try:
        things = read_panoptic_things(scan.root, names)
    except DataError as e:
        fix = 'write {"things": [names of the thing classes as classes.txt spells them]}'
        scan.error(scan.root / PANOPTIC_FILE, str(e).split(": ", 1)[-1].split(". ")[0], fix)
        return None
    return names, [c in things for c in range(len(names))]


def _check_simple_split(scan: _Scan, split: str, classes: tuple[list[str], list[bool]] | None) -> None:
    dirs = {d: scan.root / d / split for d in ("images", "labels", "instances")}
    missing = [d for d, path in dirs.items() if not path.is_dir()]
    for d in missing:
        scan.error(dirs[d], f"split folder {d}/{split}/ is missing", f"create it with one file per image of {split}")
    if missing:
        return
    images = list_split(dirs["images"])
    odd = unsupported_files(dirs["images"], IMAGE_EXTS)
    for path in odd:
        scan.error(path, *unsupported_finding(path, IMAGE_EXTS))
    if not images:
        if not odd:
            scan.error(dirs["images"], "empty split: no image files", "add images or remove the split")
        return
    pngs = {d: list_split(dirs[d], LABEL_EXTS) for d in ("labels", "instances")}
    paired = {d: pair_by_stem(images, pngs[d]) for d in pngs}
    for d, found in paired.items():
        for paths in found.duplicates:
            scan.error(paths[0], f"duplicated stem '{paths[0].stem}': {', '.join(p.name for p in paths)}",
                       "keep one file per stem")
        for image in found.unlabelled:
            scan.error(image, f"image has no {d} PNG", f"add {d}/{split}/{image.stem}.png or remove the image")
        for orphan in (p for p in found.orphans if p.stem not in {o.stem for o in odd}):
            scan.error(orphan, f"{d} PNG has no image", f"add images/{split}/{orphan.stem}.<ext> or remove it")
    with_instances = {image for image, _ in paired["instances"].pairs}
    seen = np.zeros((len(classes[0]) if classes else 0, 2), np.int64)  # instances, crowd segments per class
    for image, label in paired["labels"].pairs:
        if image in with_instances:
            _check_simple_image(scan, image, label, dirs["instances"] / f"{image.stem}.png", classes, seen)
        scan.tick()
    if classes is not None and paired["labels"].pairs:
        _warn_thing_never_instance(scan, split, classes, seen)


def _check_simple_image(scan: _Scan, image: Path, label_path: Path, inst_path: Path,
                        classes: tuple[list[str], list[bool]] | None, seen: np.ndarray) -> None:
    size = _image_size(scan, image)
    arrays = []
    for path, what in ((label_path, "class indices"), (inst_path, "instance ids")):
        try:
            arrays.append(read_label(path))
        except DataError as e:
            scan.error(path, str(e).removeprefix(f"{path}: "), f"re-export it as a single-channel PNG of {what}")
    if len(arrays) < 2:
        return
    label, inst = arrays
    for path, arr in ((label_path, label), (inst_path, inst)):
        if size and (arr.shape[1], arr.shape[0]) != size:
            scan.error(path, f"is {arr.shape[1]}x{arr.shape[0]}, its image {image.name} is {size[0]}x{size[1]}",
                       "re-export it at the image size (nearest-neighbour if resized)")
            return
    if classes is None:
        return
    built = simple_segments(label, inst, classes[1], classes[0])
    for problem, fix in built.problems:
        scan.error(inst_path, problem, fix)
    for s in built.segments:
        if s["isthing"]:
            seen[s["category"], s["iscrowd"]] += 1


def _warn_thing_never_instance(scan: _Scan, split: str, classes: tuple[list[str], list[bool]],
                               seen: np.ndarray) -> None:
    for c, (name, thing) in enumerate(zip(*classes, strict=True)):
        if thing and seen[c, 0] == 0 and seen[c, 1] > 0:
            scan.warn(scan.root / "instances" / split, f"thing class {name!r} has no instance id in any image of "
                      f"{split}: all its pixels are crowd (no instance to learn from)",
                      f"give its objects instance ids, or drop {name!r} from the things of {PANOPTIC_FILE}")


def _image_size(scan: _Scan, image: Path) -> tuple[int, int] | None:
    report = inspect_image(image, scan.decode, scan.max_pixels)
    for problem, fix in report.findings:
        scan.error(image, problem, fix)
    return report.size


# --- the COCO layout --------------------------------------------------------------------------------------


def _check_coco_split(scan: _Scan, split: str) -> None:
    path = scan.root / "annotations" / f"panoptic_{split}.json"
    images_dir, png_dir = scan.root / "images" / split, scan.root / "annotations" / f"panoptic_{split}"
    try:
        data = read_json(path)
    except DataError as e:
        scan.error(path, str(e).removeprefix(f"{path}: "), "fix the file at that spot or re-export it")
        return
    index = index_coco_panoptic(data, path, images_dir, png_dir, scan.max_pixels)
    scan.report.errors += index.problems
    for iid, im in index.images.items():
        if iid in index.annotations:
            png = png_dir / index.annotations[iid]["file_name"]
            _check_coco_image(scan, index, images_dir / im["file_name"], im, png)
        scan.tick()
    listed = {(images_dir / im["file_name"]).resolve() for im in index.images.values()}
    for extra in list_split(images_dir, IMAGE_EXTS):
        if extra.resolve() not in listed:
            scan.warn(extra, f"image not listed in {path.name}: nothing reads it", "add it to the JSON or remove it")
    used = {(png_dir / a["file_name"]).resolve() for a in index.annotations.values()}
    for extra in list_split(png_dir, LABEL_EXTS):
        if extra.resolve() not in used:
            scan.warn(extra, f"PNG not referenced by {path.name}: nothing reads it", "add its annotation or remove it")


def _check_coco_image(scan: _Scan, index: PanopticIndex, image: Path, im: dict, png: Path) -> None:
    size = None
    if not image.is_file():
        scan.error(image, f"image listed in {index.path.name} (id {im['id']}) is missing on disk",
                   f"add the file under {image.parent} or remove its entry")
    else:
        size = _image_size(scan, image)
    try:
        ids = read_panoptic_png(png)
    except DataError as e:
        scan.error(png, str(e).removeprefix(f"{png}: "), "re-export the PNG (RGB, id = R + 256 G + 256^2 B)")
        return
    claimed = (im["width"], im["height"])
    for what, wh in (("the JSON", claimed), (image.name, size)):
        if wh and (ids.shape[1], ids.shape[0]) != wh:
            scan.error(png, f"PNG is {ids.shape[1]}x{ids.shape[0]}, {what} says {wh[0]}x{wh[1]}",
                       "re-export the PNG at the image size")
            return
    if size and size != claimed:
        scan.error(image, f"JSON says {claimed[0]}x{claimed[1]}, file is {size[0]}x{size[1]}", "fix width/height")
    infos = index.annotations[im["id"]]["segments_info"]
    stats = segment_stats(ids)
    for problem, fix in id_agreement(np.array([i for i in stats if i]), infos):
        scan.error(png, problem, fix)
    for problem, fix in _segment_warnings(index, infos, stats):
        scan.warn(png, problem, fix)


def _segment_warnings(index: PanopticIndex, infos: list[dict], stats: dict) -> list[Finding]:
    """Stuff split into several segments, crowd stuff, and area / bbox that disagree with the PNG."""
    cats = {c["id"]: c for c in index.categories}
    out: list[Finding] = []
    stuff = [s["category_id"] for s in infos if not cats[s["category_id"]]["isthing"]]
    for cat in sorted({c for c in stuff if stuff.count(c) > 1}):
        out.append((f"stuff category {cats[cat]['name']!r} has {stuff.count(cat)} segments in one image",
                    "merge them (seglab's simple layout holds one segment per stuff class and merges them)"))
    for s in infos:
        sid, (area, box) = s["id"], stats.get(s["id"], (0, [0, 0, 0, 0]))
        if not cats[s["category_id"]]["isthing"] and s.get("iscrowd", 0):
            out.append((f"segment {sid}: iscrowd 1 on stuff category {cats[s['category_id']]['name']!r}",
                        "crowd marks groups of things; set iscrowd 0"))
        if sid in stats and "area" in s and s["area"] != area:
            out.append((f"segment {sid}: area {s['area']} in segments_info, {area} pixels in the PNG",
                        f"write area {area}"))
        if sid in stats and s.get("bbox") and any(abs(a - b) > 1 for a, b in zip(s["bbox"], box, strict=True)):
            out.append((f"segment {sid}: bbox {s['bbox']} in segments_info, {box} in the PNG", f"write bbox {box}"))
    return out
