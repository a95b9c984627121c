"""The dataset doctor: scan a semantic folder dataset once and report every problem together.

A user fixing data wants the whole list at once, not one crash per run, so nothing here raises on a
bad file: each one becomes a :class:`~seglab.data.problems.Problem` (file, what is wrong, how to fix it).
Each file is inspected by :mod:`seglab.data.file_checks`; this module pairs, counts and checks values across
files. The fast path (``fast=True``, run when a dataset is opened for training) reads every file's header
(pairing, extensions, modes, sizes, decompression bombs) and decodes an even sample of labels for their
values; the full path also decodes every image and label, which finds truncated files and every bad value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seglab.data.file_checks import FileReport, inspect_image, inspect_label
from seglab.data.io import DEFAULT_MAX_PIXELS, pil_pixel_limit
from seglab.data.layout import (
    CLASSES_FILE,
    PALETTE_FILE,
    list_split,
    pair_by_stem,
    read_classes,
    read_dataset_palette,
    split_folders,
)
from seglab.data.problems import Problem, unsupported_problems
from seglab.errors import DataError

FAST_LABEL_SAMPLE = 128  # labels decoded per split on the fast path (evenly spaced)


@dataclass
class _Scan:
    """Settings and findings of one doctor run."""

    root: Path
    num_classes: int | None
    k_source: str
    ignore_index: int
    max_pixels: int
    fast: bool
    callback: Callable[[int, int], None] | None
    total: int = 0
    done: int = 0
    problems: list[Problem] = field(default_factory=list)
    max_value: tuple[int, Path] | None = None
    map: Callable = map  # an executor's ordered map while scanning

    def add(self, path: Path | str, problem: str, fix: str) -> None:
        self.problems.append(Problem(path, problem, fix))

    def tick(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def check_dataset(
    root: str | os.PathLike,
    splits: list[str] | None = None,
    num_classes: int | None = None,
    ignore_index: int = 255,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fast: bool = False,
    callback: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    classes_from: str = "--num-classes",
) -> list[Problem]:
    """Scan a semantic folder dataset and return every problem found (empty list: clean).

    Args:
        root: folder holding ``images/<split>/`` and ``labels/<split>/``.
        splits: splits to scan; default every folder found under ``images/`` and ``labels/``.
        num_classes: number of classes K; default ``len(classes.txt)``; unknown skips the range check.
        ignore_index: label value that is allowed at any K.
        max_pixels: larger images are reported as decompression bombs.
        fast: headers only, plus the values of at most ``FAST_LABEL_SAMPLE`` labels per split.
        callback: called as ``callback(done, total)`` after each file (in the calling thread).
        workers: threads reading files (default ``min(8, cpu count)``; Pillow decodes outside the GIL).
        classes_from: where ``num_classes`` came from, for messages (``--num-classes``, "the checkpoint x.pt").

    Raises:
        DataError: ``root`` is not a folder (there is nothing to scan).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Pass the folder that holds images/ and labels/.")
    problems: list[Problem] = []
    names = _check_layout_files(root, num_classes, problems, classes_from)
    k, source = (num_classes, classes_from) if num_classes is not None else (
        (len(names), CLASSES_FILE) if names is not None else (None, ""))
    scan = _Scan(root, k, source, ignore_index, max_pixels, fast, callback, problems=problems)
    splits = list(splits) if splits else _find_splits(root, problems)
    plan = [(s, list_split(root / "images" / s), list_split(root / "labels" / s)) for s in splits]
    scan.total = sum(len(images) + len(labels) for _, images, labels in plan)
    # Sizes are checked from headers before decoding, so Pillow's own bomb limit is lifted here.
    with pil_pixel_limit(None), ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        scan.map = pool.map
        for split, images, labels in plan:
            _check_split(scan, split, images, labels)
    if names is not None and num_classes is None and scan.max_value and scan.max_value[0] >= len(names):
        value, where = scan.max_value
        scan.add(root / CLASSES_FILE, f"names {len(names)} classes but labels use value {value} "
                 f"(e.g. {where.name})",
                 f"add one line per class up to class {value} (line i names class i), or fix the labels")
    return scan.problems


def _check_layout_files(root: Path, num_classes: int | None, problems: list[Problem],
                        classes_from: str) -> list[str] | None:
    """Check ``classes.txt`` and ``palette.txt``; return the class names (None when absent or broken)."""
    names = None
    try:
        names = read_classes(root)
    except DataError as e:
        problems.append(Problem(root / CLASSES_FILE, str(e).split(": ", 1)[-1], "one class name a line"))
    if names is not None and num_classes is not None and len(names) != num_classes:
        given = (f"--num-classes is {num_classes}" if classes_from == "--num-classes" else
                 f"{classes_from} was trained for {num_classes}")
        problems.append(Problem(root / CLASSES_FILE, f"names {len(names)} classes but {given}",
                                "make them agree: one line per class, line i = class i"))
    try:
        read_dataset_palette(root)
    except DataError as e:
        problems.append(Problem(root / PALETTE_FILE, str(e).split(": ", 1)[-1], "write 'r g b' per line"))
    return names


def _find_splits(root: Path, problems: list[Problem]) -> list[str]:
    """Split names found under ``images/`` and ``labels/`` (train, val, test first)."""
    layout = "lay files out as images/<split>/<stem>.png and labels/<split>/<stem>.png"
    missing = [d for d in ("images", "labels") if not (root / d).is_dir()]
    for d in missing:
        hint = " (this looks like a COCO instance dataset: add --task instance)" \
            if (root / "annotations").is_dir() else ""
        problems.append(Problem(root / d, f"folder {d}/ is missing{hint}", layout))
    if missing:
        return []
    found = split_folders(root, "images", "labels")
    if not found:
        problems.append(Problem(root / "images", "no split folders (e.g. images/train/)",
                                f"move the files into split folders: {layout}"))
    return found


def _check_split(scan: _Scan, split: str, images: list[Path], labels: list[Path]) -> None:
    """Check one split: folders, pairing by stem, then every file's header (and content)."""
    image_dir, label_dir = scan.root / "images" / split, scan.root / "labels" / split
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            scan.add(folder, f"split folder {folder.parent.name}/{split}/ is missing",
                     f"create it with one file per sample, or drop --split {split}")
    if not image_dir.is_dir() or not label_dir.is_dir():
        return
    odd = unsupported_problems(image_dir) + unsupported_problems(label_dir, "labels")
    scan.problems.extend(odd)
    unsupported = [Path(p.path) for p in odd]
    if not images and unsupported:
        return
    if not images:
        scan.add(image_dir, "empty split: no image files (png, jpg, tif, bmp)",
                 "add images or remove the split")
        return
    if not labels:
        if not unsupported:
            scan.add(label_dir, f"no label files for the {len(images)} images",
                     f"add one PNG label per image: labels/{split}/<stem>.png")
        return
    pairing = pair_by_stem(images, labels)
    named = {p.stem for p in unsupported}  # already reported as a format seglab does not read
    for paths in pairing.duplicates:
        scan.add(paths[0], f"duplicated stem '{paths[0].stem}': {', '.join(p.name for p in paths)}",
                 "keep one file per stem (remove or rename the others)")
    for image in (p for p in pairing.unlabelled if p.stem not in named):
        scan.add(image, "image has no label", f"add labels/{split}/{image.stem}.png or remove the image")
    for label in (p for p in pairing.orphans if p.stem not in named):
        scan.add(label, "label has no image", f"add images/{split}/{label.stem}.png (or .jpg/.tif) "
                 "or remove the label")
    reports, seen = _inspect_files(scan, images, labels)
    for image, label in pairing.pairs:
        _check_sizes(scan, reports[image], reports[label])
    if scan.ignore_index == 255 and seen == {0, 255}:
        scan.add(label_dir, "labels hold only 0 and 255, and 255 is the ignore index: no pixel is foreground",
                 "if 255 marks the object, convert the masks to 0/1 with `seglab data convert` "
                 "(see `seglab data convert --help`)")


def _check_sizes(scan: _Scan, image: FileReport, label: FileReport) -> None:
    """Image and label must have the same stored size (seglab never applies an EXIF turn)."""
    if not image.size or not label.size or image.size == label.size:
        return
    (iw, ih), (lw, lh) = image.size, label.size
    fix = "re-export the label at the image size (nearest-neighbour if resized)"
    if image.orientation in (5, 6, 7, 8) and (lh, lw) == image.size:
        fix = ("the label fits the EXIF-turned view of the image: rotate the image file itself (see its EXIF "
               "orientation problem)")
    scan.add(label.path, f"size mismatch: label is {lw}x{lh}, image {image.path.name} is {iw}x{ih}", fix)


def _inspect_files(scan: _Scan, images: list[Path],
                   labels: list[Path]) -> tuple[dict[Path, FileReport], set[int]]:
    """Inspect every file in the worker threads; return each one's report and the label values seen."""
    decode = _labels_to_decode(labels, scan.fast)
    jobs = [(inspect_image, p, not scan.fast) for p in images] + [(inspect_label, p, p in decode) for p in labels]
    reports: dict[Path, FileReport] = {}
    seen: set[int] = set()
    for report in scan.map(lambda job: job[0](job[1], job[2], scan.max_pixels), jobs):  # results in order
        scan.problems.extend(Problem(report.path, problem, fix) for problem, fix in report.findings)
        reports[report.path] = report
        if report.values is not None:
            seen.update(report.values.tolist())
            _check_values(scan, report)
        scan.tick()
    return reports, seen


def _labels_to_decode(labels: list[Path], fast: bool) -> set[Path]:
    if not fast or len(labels) <= FAST_LABEL_SAMPLE:
        return set(labels)
    picks = np.linspace(0, len(labels) - 1, FAST_LABEL_SAMPLE).round().astype(int)
    return {labels[i] for i in picks}


def _check_values(scan: _Scan, report: FileReport) -> None:
    path, values = report.path, report.values
    real = values[values != scan.ignore_index]
    if real.size:
        top = int(real.max())
        if scan.max_value is None or top > scan.max_value[0]:
            scan.max_value = (top, path)
    k = scan.num_classes
    if report.wide and real.size and real.max() > 255 and (k is None or k <= 255):
        scan.add(path, f"16-bit label with values up to {int(real.max())} for "
                 f"{k if k is not None else 'an unknown number of'} classes (scaled mask or instance ids?)",
                 "re-export as 8-bit class indices 0..K-1; for more than 255 classes pass --num-classes")
        return
    if k is None:
        return
    bad = real[(real >= k) | (real < 0)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (", ..." if bad.size > 8 else "")
        scan.add(path, f"label values {shown} are >= {k} classes ({scan.k_source}) and not the ignore "
                 f"index {scan.ignore_index}",
                 "fix the label; if they are real classes raise --num-classes / add names to classes.txt; "
                 f"if they mean 'ignore' relabel them {scan.ignore_index} or pass --ignore-index")
