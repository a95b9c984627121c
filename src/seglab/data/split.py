"""``seglab data split``: the layout users have -> the layout seglab trains on, originals untouched.

Most user data arrives as two flat folders, ``images/`` and ``labels/`` with one label per image under the
same stem, and seglab reads ``images/{train,val}/`` + ``labels/{train,val}/``. This writes a new dataset
folder with the pairs divided at random (deterministic by ``seed``: the stems are sorted, then permuted by
NumPy's seeded generator) into train and val, each file copied or linked, ``classes.txt`` and
``palette.txt`` copied over, and ``split.json`` recording what went where. A dataset that has only
``images/train/`` + ``labels/train/`` (no val) is split the same way.

The new folder is built under a hidden name beside ``out`` and renamed at the end, so ``out`` is complete
or absent; the input folder is never written to.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglab.data.io import IMAGE_EXTS, unsupported_files
from seglab.data.layout import CLASSES_FILE, PALETTE_FILE, list_split, pair_by_stem
from seglab.data.panoptic.convert import staged_output
from seglab.errors import ConfigError, DataError

LAYOUT = "images/<stem>.<ext> and labels/<stem>.png (one label per image, the same stem)"


@dataclass(frozen=True)
class SplitResult:
    """What ``split_dataset`` wrote: the new folder, the stems of each split, and whether files are links."""

    out: Path
    source: tuple[Path, Path]
    train: list[str]
    val: list[str]
    link: bool


def val_count(n: int, fraction: float) -> int:
    """Pairs that go to val: ``round(n * fraction)``, at least one and at most ``n - 1`` (both splits exist)."""
    return min(n - 1, max(1, round(n * fraction)))


def split_dataset(root: str | os.PathLike, out: str | os.PathLike, val: float = 0.2, seed: int = 0,
                  link: bool = False, callback: Callable[[int, int], None] | None = None) -> SplitResult:
    """Divide the image/label pairs of ``root`` into ``out/images/{train,val}`` and ``out/labels/{train,val}``.

    Args:
        root: a folder with flat ``images/`` and ``labels/`` (or only ``images/train/`` + ``labels/train/``).
        out: the new dataset folder (new or empty, outside ``root``).
        val: share of the pairs that go to val (0 < val < 1; at least one pair goes to each split).
        seed: the permutation's seed: the same seed and files give the same split.
        link: symbolic links to the originals instead of copies (saves space; the originals must stay).
        callback: ``callback(done, total)`` after each pair.

    Raises:
        ConfigError: ``val`` outside (0, 1).
        DataError: no images, a missing ``labels/``, images without labels or labels without images (named),
            two files with one stem, an image format seglab does not read, fewer than two pairs, or an
            ``out`` that holds files or lies inside ``root``.
    """
    root = Path(root)
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0.0 < val < 1.0:
        raise ConfigError(f"Expected --val to be a fraction between 0 and 1 (e.g. 0.2), but got {val!r}.")
    images_dir, labels_dir = _source(root)
    pairs = _pairs(root, images_dir, labels_dir)
    stems = sorted(pairs)
    order = np.random.default_rng(seed).permutation(len(stems))
    val_stems = {stems[i] for i in order[: val_count(len(stems), val)]}
    with staged_output(out, root) as tmp:
        for i, stem in enumerate(stems):
            split = "val" if stem in val_stems else "train"
            for src, part in zip(pairs[stem], ("images", "labels"), strict=True):
                _place(src, tmp / part / split / src.name, link)
            if callback is not None:
                callback(i + 1, len(stems))
        for name in (CLASSES_FILE, PALETTE_FILE):
            if (root / name).is_file():
                shutil.copyfile(root / name, tmp / name)
        result = SplitResult(Path(out), (images_dir, labels_dir), [s for s in stems if s not in val_stems],
                             [s for s in stems if s in val_stems], link)
        source = {"images": str(images_dir.resolve()), "labels": str(labels_dir.resolve())}
        (tmp / "split.json").write_text(json.dumps(
            {"source": source, "val_fraction": val, "seed": seed, "files": "links" if link else "copies",
             "train": result.train, "val": result.val}, indent=1) + "\n")
    return result


def _source(root: Path) -> tuple[Path, Path]:
    """The folders the pairs come from: flat ``images/`` + ``labels/``, else ``images/train/`` + ``labels/train/``
    when there is no val split yet."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Pass the folder that holds {LAYOUT}.")
    images, labels = root / "images", root / "labels"
    if not images.is_dir():
        raise DataError(f"{root}: no images/ folder. Lay the files out as {LAYOUT}.")
    if not list_split(images) and (images / "train").is_dir():
        if (images / "val").is_dir():
            raise DataError(f"{root}: already split (images/train/ and images/val/); seglab can train on it as it is.")
        images, labels = images / "train", labels / "train"
    if not labels.is_dir():
        raise DataError(f"{root}: no {labels.relative_to(root)}/ folder beside {images.relative_to(root)}/. Put one "
                        f"PNG label per image there, with the image's stem ({LAYOUT}).")
    return images, labels


def _pairs(root: Path, images_dir: Path, labels_dir: Path) -> dict[str, tuple[Path, Path]]:
    """The (image, label) pair of every stem; every file must have its partner."""
    odd = unsupported_files(images_dir, IMAGE_EXTS)
    if odd:
        raise DataError(f"{odd[0]}: format {odd[0].suffix} is not supported ({len(odd)} such file(s); seglab reads "
                        f"{', '.join(e[1:] for e in IMAGE_EXTS)}). Convert them to PNG first.")
    images, labels = list_split(images_dir), list_split(labels_dir)
    if not images:
        raise DataError(f"{images_dir}: no image files ({', '.join(e[1:] for e in IMAGE_EXTS)}). Lay the files out "
                        f"as {LAYOUT}.")
    pairing = pair_by_stem(images, labels)
    for found, what, fix in ((pairing.unlabelled, "images have no label", f"add {labels_dir}/<stem>.png"),
                             (pairing.orphans, "labels have no image", f"add the image to {images_dir}/")):
        if found:
            shown = ", ".join(p.name for p in found[:5]) + (", ..." if len(found) > 5 else "")
            raise DataError(f"{root}: {len(found)} {what} (stems must match): {shown}. Fix: {fix} or move the "
                            "unmatched files out of the folder, then split again.")
    if pairing.duplicates:
        paths = pairing.duplicates[0]
        raise DataError(f"{paths[0].parent}: stem {paths[0].stem!r} has {len(paths)} files "
                        f"({', '.join(p.name for p in paths)}). Keep one file per stem.")
    if len(pairing.pairs) < 2:
        raise DataError(f"{root}: {len(pairing.pairs)} image/label pair(s); a train and a val split need at least 2.")
    return {image.stem: (image, label) for image, label in pairing.pairs}


def _place(src: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        os.symlink(src.resolve(), dst)
    else:
        shutil.copy2(src, dst)
