"""The dataset layout, read one way everywhere: ``classes.txt``, ``palette.txt``, splits, pairing by stem,
the instance-mask ``<stem>.json`` and file names read from annotation files (which must stay inside the
dataset: :func:`contained`).

The semantic dataset, its doctor, the statistics and the instance datasets all import these helpers, so they
agree on which files make a sample and on what each class is called.

``classes.txt``: line ``i`` names class ``i``. The file is UTF-8, with or without a byte-order mark (editors
on Windows write one); names are stripped; trailing blank lines and the final newline are fine, but a blank
line *between* names is an error: dropping it would silently shift every later class to another index.

Instance data reads the same file through :func:`category_names`: a first line that names the background
(``background``, ``bg``, ...) means line ``i`` names category id ``i`` (the semantic convention, as the
synthetic datasets write it); otherwise line ``i`` names category id ``i + 1``, because COCO category ids
start at 1 (``pennfudan/classes.txt`` is the single line ``pedestrian``, category id 1).

Panoptic data in seglab's simple layout names its thing classes in ``panoptic.json``
(:func:`read_panoptic_things`); :func:`detect_task` tells the panoptic layouts from the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from seglab.data.io import IMAGE_EXTS, LABEL_EXTS, is_int, read_json, show_value
from seglab.errors import DataError

CLASSES_FILE = "classes.txt"
PALETTE_FILE = "palette.txt"
PANOPTIC_FILE = "panoptic.json"  # the simple panoptic layout's {"things": [names of the thing classes]}
BACKGROUND_NAMES = ("background", "_background_", "__background__", "bg")
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


# Everything a dataset folder holds that seglab reads (every layout): outputs never replace these.
DATASET_PARTS = ("images", "labels", "masks", "annotations", "instances", CLASSES_FILE, PALETTE_FILE, PANOPTIC_FILE)


def read_classes(root: str | os.PathLike) -> list[str] | None:
    """Class names from ``root/classes.txt`` (line i = class i), or None when the file is absent.

    Raises:
        DataError: the file is unreadable or not UTF-8, holds no name, or has a blank line between names
            (the message starts ``<file>:<line>:``).
    """
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read class names ({e}). Save it as UTF-8 text.") from e
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise DataError(f"{path}: no class names. Write one name a line (line i names class i) or delete "
                        "the file.")
    if "" in names:
        n = names.index("") + 1
        # "file:line" first for editors; the rest after ": " for the doctor, which drops the path.
        raise DataError(f"{path}:{n}: line {n} is blank; line i must hold the name of class i. "
                        "Write a name on every line (or delete the blank line if it is a typo).")
    return names


def category_names(names: list[str] | None) -> dict[int, str]:
    """Category id -> name for instance data, from :func:`read_classes`' list (module docstring: offsets).

    The background is not a category: with a background first line, line 0 is left out. ``None`` (no
    ``classes.txt``) gives an empty dict: the categories are then whatever the annotations use.
    """
    if not names:
        return {}
    offset = 0 if names[0].lower() in BACKGROUND_NAMES else 1
    return {i + offset: name for i, name in enumerate(names) if i + offset > 0}


def read_palette(path: str | os.PathLike) -> np.ndarray:
    """Read a palette file as a ``(K, 3)`` uint8 array; line ``i`` is the color of class ``i``.

    Lines are ``r g b`` or ``name r g b`` (names may contain spaces; commas also separate); blank
    lines and ``#`` comments are skipped.

    Raises:
        DataError: unreadable file, a line without three integers 0-255 (naming file and line), or no
            colors at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the palette ({e}). Pass a readable UTF-8 palette.txt.") from e
    colors = []
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split("#", 1)[0].replace(",", " ").split()
        if not parts:
            continue
        try:
            rgb = [int(v) for v in parts[-3:]]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            # "file:line" first for editors; the line again after ": " for the doctor, which drops the path.
            raise DataError(f"{path}:{n}: line {n} is {raw.strip()!r}; expected 'r g b' or 'name r g b' "
                            "with three integers 0-255. Fix or delete that line.")
        colors.append(rgb)
    if not colors:
        raise DataError(f"{path}: palette has no colors. Write one 'r g b' line per class.")
    return np.asarray(colors, dtype=np.uint8)


def read_dataset_palette(root: str | os.PathLike) -> np.ndarray | None:
    """Colors of ``root/palette.txt`` (see :func:`read_palette`), or None when the file is absent."""
    path = Path(root) / PALETTE_FILE
    return read_palette(path) if path.is_file() else None


def containment_problem(base: Path, name: object) -> str | None:
    """Why the file name ``name`` read from a dataset file (a COCO ``file_name``) does not name a file
    inside the folder ``base``; None when it does.

    The name must be a relative path that stays inside ``base`` as written (no absolute path, no ``..``
    leading out) and once resolved (no symbolic link pointing out of ``base``): an annotation file must
    not make seglab read, or report on, files elsewhere on the machine.
    """
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        return f"file_name must be a non-empty path relative to {base}; got {show_value(name)}"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:  # /x, C:/x, //server/share
        return f"file_name {name!r} is an absolute path; it must be relative to {base}"
    if os.path.normpath(name).replace("\\", "/").split("/")[0] == "..":
        return f"file_name {name!r} leads out of {base} (through '..')"
    try:
        real, real_base = (base / name).resolve(), base.resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symbolic-link loop, an unreadable folder
        return f"file_name {name!r} cannot be resolved inside {base} ({e})"
    if not real.is_relative_to(real_base):
        return (f"file_name {name!r} is (or lies under) a symbolic link that resolves to {real}, outside "
                f"{base}; seglab reads only files inside the dataset")
    return None


def contained(base: Path, name: object, where: str) -> Path:
    """``base / name`` when ``name`` stays inside ``base`` (see :func:`containment_problem`).

    Raises:
        DataError: naming ``where`` (the file and record the name comes from) and the name.
    """
    problem = containment_problem(base, name)
    if problem:
        raise DataError(f"{where}: {problem}. Give the path of the image relative to {base} and keep the "
                        "file inside it (copy it in instead of linking to it).")
    return base / str(name)


def instance_labels_problem(data: Any) -> str | None:
    """What is wrong with a mask folder's ``<stem>.json`` document (None: nothing)."""
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not all(is_int(c) and c > 0 for c in labels):
        return f'must be {{"labels": [category ids]}}, one integer > 0 per instance; got {show_value(data)}'
    return None


def read_instance_labels(path: Path) -> list[int]:
    """The category id of each instance from a mask folder's ``<stem>.json``.

    Raises:
        DataError: unreadable or invalid JSON, or not ``{"labels": [ints > 0]}`` (the file named).
    """
    data = read_json(path)
    problem = instance_labels_problem(data)
    if problem:
        raise DataError(f"{path}: {problem}. List one category id per instance id 1..n.")
    return list(data["labels"])


def detect_task(root: str | os.PathLike) -> str:
    """The task a dataset folder holds, from its layout alone (nothing is decoded).

    ``"panoptic"``: ``annotations/panoptic_<split>.json`` (COCO panoptic) or ``panoptic.json`` beside
    ``instances/`` (seglab's simple panoptic layout, which also has ``labels/``, hence checked first);
    ``"instance"``: COCO instance annotations or ``masks/`` and no ``labels/``; else ``"semantic"`` (a folder
    with neither is reported by the semantic doctor).
    """
    root = Path(root)
    if is_panoptic(root):
        return "panoptic"
    if (root / "labels").is_dir():
        return "semantic"
    coco = (root / "annotations").is_dir() and any((root / "annotations").glob("instances_*.json"))
    return "instance" if coco or (root / "masks").is_dir() else "semantic"


def is_panoptic(root: Path) -> bool:
    """Whether ``root`` holds COCO panoptic annotations or seglab's simple panoptic layout."""
    coco = (root / "annotations").is_dir() and any((root / "annotations").glob("panoptic_*.json"))
    return coco or ((root / PANOPTIC_FILE).is_file() and (root / "instances").is_dir())


def panoptic_splits(root: Path) -> list[str]:
    """Splits of a panoptic folder: ``annotations/panoptic_<split>.json`` plus the simple layout's split
    folders under ``images/``, ``labels/`` and ``instances/`` (in split order)."""
    coco = [p.stem[len("panoptic_"):] for p in (root / "annotations").glob("panoptic_*.json")] \
        if (root / "annotations").is_dir() else []
    simple = split_folders(root, "images", "labels", "instances") if (root / PANOPTIC_FILE).is_file() else []
    return sort_splits([*coco, *simple])


def read_panoptic_things(root: str | os.PathLike, classes: list[str]) -> list[int]:
    """Class indices of the thing classes named in ``root/panoptic.json`` (sorted), checked against the
    class names of ``classes.txt``.

    Raises:
        DataError: the file is missing, not ``{"things": [names]}``, or names a class ``classes.txt`` lacks.
    """
    path = Path(root) / PANOPTIC_FILE
    if not path.is_file():
        raise DataError(f'{path}: missing. The simple panoptic layout needs it: write {{"things": [names of '
                        f"the thing classes]}} (names as in {CLASSES_FILE}).")
    data = read_json(path)
    things = data.get("things") if isinstance(data, dict) else None
    if not isinstance(things, list) or not all(isinstance(t, str) for t in things):
        raise DataError(f'{path}: must be {{"things": [class names]}}; got {show_value(data)}. List the names '
                        f"of the thing classes as {CLASSES_FILE} spells them.")
    unknown = [t for t in things if t not in classes]
    if unknown:
        raise DataError(f"{path}: thing classes {unknown} are not in {CLASSES_FILE} ({classes}). Spell them as "
                        f"{CLASSES_FILE} does or add them there.")
    return sorted({classes.index(t) for t in things})


def list_split(folder: Path, exts: tuple[str, ...] = IMAGE_EXTS) -> list[Path]:
    """Files in ``folder`` whose suffix is in ``exts`` (hidden files skipped), sorted by name.

    Broken symbolic links are kept (unlike ``Path.is_file``) so the doctors can report them.
    """
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and p.suffix.lower() in exts and not p.is_dir())


def sort_splits(names: Iterable[str]) -> list[str]:
    """Split names in reading order: train, val, test, then the others by name."""
    return sorted(set(names), key=lambda s: (SPLIT_ORDER.get(s, 3), s))


def split_folders(root: Path, *parents: str) -> list[str]:
    """Names of the (non-hidden) split folders under ``root/<parent>/`` for each parent, in split order."""
    return sort_splits(p.name for d in parents if (root / d).is_dir() for p in (root / d).iterdir()
                       if p.is_dir() and not p.name.startswith("."))


def group_by_stem(files: list[Path]) -> dict[str, list[Path]]:
    """Map each stem to its files; more than one file per stem is a duplicate the doctors report."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.stem, []).append(path)
    return groups


def pick_label(paths: list[Path]) -> Path:
    """Choose the label among same-stem files: a PNG if there is one (labels must be PNG)."""
    pngs = [p for p in paths if p.suffix.lower() in LABEL_EXTS]
    return (pngs or paths)[0]


@dataclass
class StemPairs:
    """Images and labels of one split matched by stem (all lists sorted by stem)."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # (first image, picked label)
    unlabelled: list[Path] = field(default_factory=list)  # images without a label
    orphans: list[Path] = field(default_factory=list)  # labels without an image
    duplicates: list[list[Path]] = field(default_factory=list)  # files sharing a stem, images then labels


def pair_by_stem(images: list[Path], labels: list[Path]) -> StemPairs:
    """Pair image and label files by stem, as the dataset reads them and the doctor checks them."""
    image_groups, label_groups = group_by_stem(images), group_by_stem(labels)
    out = StemPairs()
    for groups in (image_groups, label_groups):
        out.duplicates += [paths for paths in groups.values() if len(paths) > 1]
    for stem in sorted(image_groups.keys() | label_groups.keys()):
        if stem not in label_groups:
            out.unlabelled.append(image_groups[stem][0])
        elif stem not in image_groups:
            out.orphans.append(label_groups[stem][0])
        else:
            out.pairs.append((image_groups[stem][0], pick_label(label_groups[stem])))
    return out
