"""Training reads only what the doctor accepted: every file of a split decoded once, remembered after that.

The doctor's fast path reads headers, so a truncated image used to pass it and crash epoch 1 (inside a
DataLoader worker). :func:`preflight` runs the doctor's full path instead (every image and label decoded,
in threads) and refuses a split whose labels hold no pixel to learn from or score. A clean result is
remembered in a small cache file keyed by the split's file names, sizes and modification times (and the
settings that change the verdict), so the next run on unchanged data skips the scan. The cache lives in
``$SEGLAB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/seglab`` or ``~/.cache/seglab``), never in the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from seglab import __version__
from seglab.data.instance.checks import check_instance_dataset, raise_first_problem
from seglab.data.io import DEFAULT_MAX_PIXELS, read_label
from seglab.data.layout import CLASSES_FILE, PALETTE_FILE, PANOPTIC_FILE, list_split
from seglab.data.panoptic.checks import check_panoptic_dataset, raise_first_panoptic_problem
from seglab.data.problems import summarize_problems
from seglab.data.semantic.checks import check_dataset
from seglab.errors import DataError


def cache_dir() -> Path:
    """Where seglab remembers clean scans (``$SEGLAB_CACHE_DIR``, else the XDG cache folder)."""
    if os.environ.get("SEGLAB_CACHE_DIR"):
        return Path(os.environ["SEGLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seglab"


def _listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _fingerprint(root: Path, split: str, settings: list, extra: tuple[Path, ...] = ()) -> str:
    files = [*list_split(root / "images" / split), *list_split(root / "labels" / split),
             *_listing(root / "masks" / split), root / "annotations" / f"instances_{split}.json",
             root / CLASSES_FILE, root / PALETTE_FILE, *extra]
    stats = []
    for f in files:
        try:
            st = f.stat()
            stats.append((str(f.relative_to(root)), st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((str(f.relative_to(root)), None, None))
    text = json.dumps([str(root.resolve()), split, settings, stats])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def labelled_pixels(labels: list[Path], ignore_index: int, workers: int | None = None) -> int:
    """Pixels of ``labels`` that are not ``ignore_index`` (what the loss and the metrics can use)."""
    def count(path: Path) -> int:
        return int(np.count_nonzero(read_label(path) != ignore_index))

    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        return sum(pool.map(count, labels))


def _remembered(root: Path, split: str, settings: list, scan: Callable[[], None],
                extra: tuple[Path, ...] = ()) -> None:
    """Run ``scan`` (which raises on a problem) unless it passed before on the same files and settings."""
    stamp = cache_dir() / "preflight" / f"{_fingerprint(root, split, settings, extra)}.ok"
    if stamp.is_file():
        return
    scan()
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{root} {split}\n")
    except OSError:
        pass  # no cache (read-only home): the next run scans again


def preflight(root: str | os.PathLike, split: str, num_classes: int | None, ignore_index: int,
              max_pixels: int, classes_from: str = "--num-classes") -> None:
    """Refuse a split the doctor finds a problem in (every file decoded) or whose labels are all ignore.

    Raises:
        DataError: the problems (first ten) and the ``seglab data check`` command for the full report.
    """
    root = Path(root)
    _remembered(root, split, [__version__, "semantic", num_classes, ignore_index, max_pixels],
                lambda: _scan_semantic(root, split, num_classes, ignore_index, max_pixels, classes_from))


def preflight_instances(root: str | os.PathLike, split: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The instance doctor on one split with every image decoded (COCO or mask folder), remembered like
    :func:`preflight`.

    Raises:
        DataError: the first problem and the ``seglab data check --task instance`` command.
    """
    root = Path(root)

    def scan() -> None:
        raise_first_problem(check_instance_dataset(root, [split], max_pixels, decode=True), root)

    _remembered(root, split, [__version__, "instance", max_pixels], scan)  # a new seglab checks again


def preflight_panoptic(split: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The panoptic doctor on one split with every image decoded, remembered like :func:`preflight`.

    ``split``: a :class:`seglab.data.panoptic.PanopticSplit` (or anything with its ``root`` and ``split``).
    Warnings do not stop it.

    Raises:
        DataError: the first error and the ``seglab data check`` command.
    """
    root, name = Path(split.root), str(split.split)
    ann = root / "annotations"
    extra = (*_listing(root / "instances" / name), ann / f"panoptic_{name}.json", *_listing(ann / f"panoptic_{name}"),
             root / PANOPTIC_FILE)

    def scan() -> None:
        raise_first_panoptic_problem(check_panoptic_dataset(root, [name], max_pixels, decode=True), root)

    _remembered(root, name, [__version__, "panoptic", max_pixels], scan, extra)


def _scan_semantic(root: Path, split: str, num_classes: int | None, ignore_index: int, max_pixels: int,
                   classes_from: str) -> None:
    problems = check_dataset(root, splits=[split], num_classes=num_classes, ignore_index=ignore_index,
                             max_pixels=max_pixels, fast=False, classes_from=classes_from)
    if problems:
        flags = f" --split {split}" + (f" --num-classes {num_classes}" if num_classes else "")
        raise DataError(f"{root} (split '{split}') has {len(problems)} problem(s):\n"
                        f"{summarize_problems(problems, limit=10)}\n"
                        f"Run `seglab data check {root}{flags}` for the full report with fixes.")
    labels = list_split(root / "labels" / split)
    if labels and labelled_pixels(labels, ignore_index) == 0:
        raise DataError(f"{root / 'labels' / split}: every pixel of every label is the ignore value {ignore_index}, "
                        "so there is nothing to learn from or score. Check the labels (or --ignore-index: the "
                        "value that marks unlabelled pixels).")
