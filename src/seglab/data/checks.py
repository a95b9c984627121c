"""The dataset doctor: scan a semantic folder dataset once and report every problem together.

A user fixing data wants the whole list at once, not one crash per run, so nothing here raises on a
bad file: each one becomes a :class:`Problem` (file, what is wrong, how to fix it). The fast path
(``fast=True``, run when a dataset is opened for training) reads every file's header (pairing,
extensions, modes, sizes, decompression bombs) and decodes an even sample of labels for their values;
the full path also decodes every image and label, which finds truncated files and every bad value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seglab.data.folder import (
    CLASSES_FILE,
    PALETTE_FILE,
    group_by_stem,
    list_split,
    pick_label,
    pil_pixel_limit,
    read_classes,
    read_palette,
)
from seglab.data.io import DEFAULT_MAX_PIXELS, LABEL_EXTS
from seglab.errors import DataError

FAST_LABEL_SAMPLE = 128  # labels decoded per split on the fast path (evenly spaced)
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
_INDEX_MODES = {"L": 8, "P": 8, "1": 8, "I;16": 16, "I;16L": 16, "I;16B": 16, "I": 32}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: which file, what is wrong, how to fix it."""

    path: Path | str
    problem: str
    fix: str


@dataclass
class _Scan:
    """Settings and findings of one doctor run."""

    root: Path
    num_classes: int | None
    k_source: str
    ignore_index: int
    max_pixels: int
    fast: bool
    progress: Callable[[int, int], None] | None
    total: int = 0
    done: int = 0
    problems: list[Problem] = field(default_factory=list)
    max_value: tuple[int, Path] | None = None
    map: Callable = map  # an executor's ordered map while scanning

    def add(self, path: Path | str, problem: str, fix: str) -> None:
        self.problems.append(Problem(path, problem, fix))

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def check_dataset(
    root: str | os.PathLike,
    splits: list[str] | None = None,
    num_classes: int | None = None,
    ignore_index: int = 255,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> list[Problem]:
    """Scan a semantic folder dataset and return every problem found (empty list: clean).

    Args:
        root: folder holding ``images/<split>/`` and ``labels/<split>/``.
        splits: splits to scan; default every folder found under ``images/`` and ``labels/``.
        num_classes: number of classes K; default ``len(classes.txt)``; unknown skips the range check.
        ignore_index: label value that is allowed at any K.
        max_pixels: larger images are reported as decompression bombs.
        fast: headers only, plus the values of at most ``FAST_LABEL_SAMPLE`` labels per split.
        progress: called as ``progress(done, total)`` after each file (in the calling thread).
        workers: threads reading files (default ``min(8, cpu count)``; Pillow decodes outside the GIL).

    Raises:
        DataError: ``root`` is not a folder (there is nothing to scan).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Pass the folder that holds images/ and labels/.")
    problems: list[Problem] = []
    names = _check_layout_files(root, num_classes, problems)
    k, source = (num_classes, "--num-classes") if num_classes is not None else (
        (len(names), CLASSES_FILE) if names is not None else (None, ""))
    scan = _Scan(root, k, source, ignore_index, max_pixels, fast, progress, problems=problems)
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


def _check_layout_files(root: Path, num_classes: int | None, problems: list[Problem]) -> list[str] | None:
    """Check ``classes.txt`` and ``palette.txt``; return the class names (None when absent or broken)."""
    names = None
    try:
        names = read_classes(root)
    except DataError as e:
        problems.append(Problem(root / CLASSES_FILE, str(e).split(": ", 1)[-1], "one class name a line"))
    if names is not None and num_classes is not None and len(names) != num_classes:
        problems.append(Problem(root / CLASSES_FILE, f"names {len(names)} classes but --num-classes is "
                                f"{num_classes}", "make them agree: one line per class, line i = class i"))
    try:
        read_palette(root)
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
    found = {p.name for d in ("images", "labels") for p in (root / d).iterdir()
             if p.is_dir() and not p.name.startswith(".")}
    if not found:
        problems.append(Problem(root / "images", "no split folders (e.g. images/train/)",
                                f"move the files into split folders: {layout}"))
    return sorted(found, key=lambda s: (_SPLIT_ORDER.get(s, 3), s))


def _check_split(scan: _Scan, split: str, images: list[Path], labels: list[Path]) -> None:
    """Check one split: folders, pairing by stem, then every file's header (and content)."""
    image_dir, label_dir = scan.root / "images" / split, scan.root / "labels" / split
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            scan.add(folder, f"split folder {folder.parent.name}/{split}/ is missing",
                     f"create it with one file per sample, or drop --split {split}")
    if not image_dir.is_dir() or not label_dir.is_dir():
        return
    if not images:
        scan.add(image_dir, "empty split: no image files (png, jpg, tif, bmp)",
                 "add images or remove the split")
        return
    if not labels:
        scan.add(label_dir, f"no label files for the {len(images)} images",
                 f"add one PNG label per image: labels/{split}/<stem>.png")
        return
    image_groups, label_groups = group_by_stem(images), group_by_stem(labels)
    for groups in (image_groups, label_groups):
        for stem, paths in groups.items():
            if len(paths) > 1:
                scan.add(paths[0], f"duplicated stem '{stem}': {', '.join(p.name for p in paths)}",
                         "keep one file per stem (remove or rename the others)")
    for stem in sorted(image_groups.keys() - label_groups.keys()):
        scan.add(image_groups[stem][0], "image has no label",
                 f"add labels/{split}/{stem}.png or remove the image")
    for stem in sorted(label_groups.keys() - image_groups.keys()):
        scan.add(label_groups[stem][0], "label has no image", f"add images/{split}/{stem}.png (or .jpg/.tif) "
                 "or remove the label")
    decode = _labels_to_decode(labels, scan.fast)
    jobs = [(_inspect_image, p, not scan.fast) for p in images] + [(_inspect_label, p, p in decode) for p in labels]
    sizes: dict[Path, tuple[int, int] | None] = {}
    seen: set[int] = set()
    for found in scan.map(lambda job: job[0](job[1], job[2], scan.max_pixels), jobs):  # results in order
        scan.problems.extend(found.problems)
        sizes[found.path] = found.size
        if found.values is not None:
            seen.update(found.values.tolist())
            _check_values(scan, found.path, found.values, found.wide)
        scan.tick()
    for stem in sorted(image_groups.keys() & label_groups.keys()):
        image, label = image_groups[stem][0], pick_label(label_groups[stem])
        if sizes[image] and sizes[label] and sizes[image] != sizes[label]:
            (iw, ih), (lw, lh) = sizes[image], sizes[label]
            scan.add(label, f"size mismatch: label is {lw}x{lh}, image {image.name} is {iw}x{ih}",
                     "re-export the label at the image size (nearest-neighbour if resized)")
    if scan.ignore_index == 255 and seen == {0, 255}:
        scan.add(label_dir, "labels hold only 0 and 255, and 255 is the ignore index: no pixel is foreground",
                 "if 255 marks the object, convert the masks to 0/1 with `seglab data convert` "
                 "(see `seglab data convert --help`)")


def _labels_to_decode(labels: list[Path], fast: bool) -> set[Path]:
    if not fast or len(labels) <= FAST_LABEL_SAMPLE:
        return set(labels)
    picks = np.linspace(0, len(labels) - 1, FAST_LABEL_SAMPLE).round().astype(int)
    return {labels[i] for i in picks}


@dataclass
class _Found:
    """What inspecting one file found (built in a worker thread, merged in order by the caller)."""

    path: Path
    size: tuple[int, int] | None = None  # (width, height) as the dataset will see it
    values: np.ndarray | None = None  # label values present, when decoded
    wide: bool = False  # a 16/32-bit label
    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: str, fix: str) -> _Found:
        self.problems.append(Problem(self.path, problem, fix))
        return self


def _inspect_image(path: Path, decode: bool, max_pixels: int) -> _Found:
    """Read an image's header (and with ``decode`` its pixels); never raises."""
    found = _Found(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                return _bomb(found, w, h, max_pixels)
            if decode:
                im.load()  # decoding is the only way to find a truncated file
            if _orientation(im, loaded=decode) in (5, 6, 7, 8):  # EXIF 90-degree turn, as read_image does
                w, h = h, w
    except Exception as e:  # any decoder failure is a finding about the file, never a crash
        return _unreadable(found, e, "image")
    found.size = (w, h)
    return found


def _orientation(im: Image.Image, loaded: bool) -> int:
    """EXIF orientation without decoding: a PNG's eXIf chunk may follow the pixels, and Pillow's
    ``getexif`` then decodes the whole image, so an unloaded PNG only looks at chunks already read."""
    if im.format == "PNG" and "exif" not in im.info and not loaded:
        return 1
    return int(im.getexif().get(_EXIF_ORIENTATION, 1))


def _inspect_label(path: Path, decode: bool, max_pixels: int) -> _Found:
    """Check a label's extension, format, mode and size (and with ``decode`` its values); never raises."""
    found = _Found(path)
    jpeg_fix = "labels must be lossless: re-export the original class-index mask as PNG"
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return found.add("JPEG label: compression changes class indices at edges", jpeg_fix)
    if path.suffix.lower() not in LABEL_EXTS:
        return found.add(f"label is {path.suffix} (labels must be PNG)", "save it as a single-channel PNG")
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                return found.add("JPEG data with a .png name: compression changed class indices", jpeg_fix)
            if im.mode in ("RGB", "RGBA"):
                return _color_label(found, im.mode)
            if im.mode not in _INDEX_MODES:
                return found.add(f"label mode {im.mode} ({len(im.getbands())} band(s)) is not class indices",
                                 "save a single-channel 8-bit PNG (or 16-bit for more than 255 classes)")
            w, h = im.size
            if w * h > max_pixels:
                return _bomb(found, w, h, max_pixels)
            found.wide = _INDEX_MODES[im.mode] > 8
            found.values = _present_values(np.asarray(im)) if decode else None
    except Exception as e:  # any decoder failure is a finding about the file, never a crash
        return _unreadable(found, e, "label")
    found.size = (w, h)
    return found


def _present_values(label: np.ndarray) -> np.ndarray:
    if label.dtype in (np.uint8, np.uint16, np.bool_):
        return np.flatnonzero(np.bincount(label.ravel().astype(np.int64, copy=False)))
    return np.unique(label)


def _check_values(scan: _Scan, path: Path, values: np.ndarray, wide: bool) -> None:
    real = values[values != scan.ignore_index]
    if real.size:
        top = int(real.max())
        if scan.max_value is None or top > scan.max_value[0]:
            scan.max_value = (top, path)
    k = scan.num_classes
    if wide and real.size and real.max() > 255 and (k is None or k <= 255):
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


def _color_label(found: _Found, mode: str) -> _Found:
    root = found.path.parent.parent.parent  # labels/<split>/<file> -> the dataset root
    palette = root / PALETTE_FILE if (root / PALETTE_FILE).is_file() else Path(PALETTE_FILE)
    return found.add(f"{mode} color label: labels must be single-channel class indices",
                     f"seglab data convert rgb-to-index {root} --palette {palette} --out {root}_index")


def _bomb(found: _Found, w: int, h: int, max_pixels: int) -> _Found:
    return found.add(f"{w}x{h} = {w * h:,} pixels is above the {max_pixels:,} limit (decompression-bomb "
                     "guard)", f"if the file is trusted, pass --max-pixels {w * h}")


def _unreadable(found: _Found, error: Exception, kind: str) -> _Found:
    path, remove = found.path, f"re-export the {kind} or remove it"
    if path.is_symlink() and not path.exists():
        return found.add(f"broken symbolic link to {os.readlink(path)}", f"point the link at the file or {remove}")
    if isinstance(error, PermissionError):
        return found.add("cannot be read: permission denied", f"make it readable (chmod a+r {path})")
    if isinstance(error, UnidentifiedImageError):
        return found.add("not an image file Pillow can read (empty, corrupt or another format)", remove)
    return found.add(f"corrupt or truncated {kind} ({type(error).__name__}: {error})", remove)


def summarize_problems(problems: list[Problem], limit: int = 10) -> str:
    """The first ``limit`` problems as ``- file: problem`` lines (for one-message errors)."""
    lines = [f"  - {p.path}: {p.problem}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def render_problems(problems: list[Problem], console: Console, root: str | os.PathLike | None = None) -> None:
    """Print every problem as one rich table (file, problem, fix); paths relative to ``root`` if given."""
    table = Table(show_lines=False, header_style="bold")
    table.add_column("file", no_wrap=True, style="cyan")
    table.add_column("problem", overflow="fold")
    table.add_column("fix", style="green", overflow="fold")  # fold, never cut: fixes are commands to copy
    for p in problems:
        # Text cells: file names and messages may hold '[...]', which rich would read as markup.
        table.add_row(Text(_display_path(p.path, root)), Text(p.problem), Text(p.fix))
    console.print(table)


def _display_path(path: Path | str, root: str | os.PathLike | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
