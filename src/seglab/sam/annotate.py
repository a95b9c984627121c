"""``seglab annotate``: bootstrap a training dataset from images, SAM and a source of objects.

The output is a new folder in seglab's layouts, ready for ``seglab data check`` and ``seglab train``::

    OUT/images/<split>/<file>        the input images, copied (inputs are never modified)
    OUT/masks/<split>/<stem>.png     instance ids (layout "instance", the default) + <stem>.json {"labels": ...}
    OUT/labels/<split>/<stem>.png    class indices, 0 = background (layout "semantic")
    OUT/classes.txt                  background, then the category names (category id i = line i)
    OUT/review/<split>/<stem>.png    each image with its masks, classes and scores: look before you train
    OUT/annotate.json                how it was made (source, options, counts)

The folder is built beside ``OUT`` under a hidden name and renamed at the end, so ``OUT`` is either
complete or absent. ``val_fraction`` puts every ``1 / val_fraction``-th image into ``val`` (training needs
a validation split), and at least one image whenever there are two or more.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seglab.errors import ConfigError, DataError, OutputError
from seglab.sam.formats import BACKGROUND, Objects, save_review, write_instances, write_label_map
from seglab.sam.session import SamSession
from seglab.sam.sources import Source

LAYOUTS = ("instance", "semantic")
Progress = Callable[[int, int], None]


@dataclass
class AnnotateResult:
    """What :func:`annotate` wrote: images and objects per split, objects per class, empty images."""

    out: Path
    layout: str
    images: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, int] = field(default_factory=dict)
    empty: int = 0
    embeddings: int = 0

    def record(self) -> dict[str, Any]:
        """The counts as plain values (``annotate.json``)."""
        return {"layout": self.layout, "images": self.images, "objects": self.objects,
                "per_class": self.per_class, "empty_images": self.empty, "image_embeddings": self.embeddings}


def val_images(n: int, fraction: float) -> list[bool]:
    """Which of ``n`` images go to ``val``: evenly spread, ``floor(n * fraction)`` of them, and at least one
    whenever ``fraction > 0`` and there are two or more images (3 images at 0.2 would give none, and training
    needs a validation split); one image stays in train."""
    chosen = [int((i + 1) * fraction) > int(i * fraction) for i in range(n)]
    if fraction > 0 and n >= 2 and not any(chosen):
        chosen[-1] = True
    return chosen


def plan_inputs(inputs: Sequence[str | Path], out: Path) -> list[Path]:
    """The input images (files, folders, globs), checked: all found, no two with one stem.

    Raises:
        DataError: an input naming nothing, or two images sharing a stem (their masks would collide).
    """
    from seglab.inference.source import find_images

    found = find_images(inputs, skip=out)
    if found.failures:
        raise DataError("; ".join(f"{p}: {why}" for p, why in found.failures) + ". Pass image files or folders.")
    stems: dict[str, Path] = {}
    for p in found.paths:
        if p.stem in stems:
            raise DataError(f"{p} and {stems[p.stem]} share the stem {p.stem!r}; their masks would have one name. "
                            "Rename one of them.")
        stems[p.stem] = p
    return found.paths


def check_out(out: Path, images: list[Path]) -> None:
    """``out`` must be new (or an empty folder) and hold no input.

    Raises:
        OutputError: ``out`` holds files, is a file, or is not writable.
    """
    from seglab.fileio import check_output_path, refuse_overwrite

    check_output_path(out, directory=True)
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(f"--out {out}: exists and is not empty; annotate writes a new dataset. Pass a new "
                          "folder (seglab never mixes a new dataset into an old one).")
    refuse_overwrite([out / "images"], images)


def annotate(inputs: Sequence[str | Path], out: str | Path, sam: nn.Module | SamSession, source: Source, *,
             split: str = "train", val_fraction: float = 0.0, layout: str = "instance", review: bool = True,
             about: dict[str, Any] | None = None, callback: Progress | None = None) -> AnnotateResult:
    """Write a dataset of ``inputs`` with the objects ``source`` finds (boundaries from SAM) to ``out``.

    Args:
        inputs: image files, folders or glob patterns.
        out: the new dataset folder (must not exist, or be empty).
        sam: a SAM model (``load_sam``) or a session on one.
        source: a :class:`~seglab.sam.sources.PromptSource`, ``ModelSource`` or ``AutoSource``.
        split: the split the images go to; ``val_fraction`` of them go to ``val`` instead.
        layout: ``instance`` (``masks/``) or ``semantic`` (``labels/``).
        review: also write a review picture per image.
        about: extra provenance for ``annotate.json`` (the SAM file and type).
        callback: ``callback(done, total)`` after each image.

    Raises:
        ConfigError: a bad layout, split or fraction. DataError: inputs naming nothing, clashing stems,
        unreadable images. OutputError: ``out`` not new, or not writable.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r}: use one of {', '.join(LAYOUTS)}.")
    if not 0.0 <= val_fraction < 1.0 or (split == "val" and val_fraction > 0):
        raise ConfigError(f"--val-fraction {val_fraction}: must be in [0, 1), and 0 when --split is val.")
    if not split or "/" in split or split.startswith("."):
        raise ConfigError(f"--split {split!r}: a plain folder name such as train.")
    out = Path(out)
    images = plan_inputs(inputs, out)
    check_out(out, images)
    session = sam if isinstance(sam, SamSession) else SamSession(sam)
    tmp = out.parent / f".{out.name}.annotate-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        result = _write(images, tmp, session, source, split, val_images(len(images), val_fraction), layout,
                        review, callback)
        result.out = out
        _finish(tmp, source, result, about)
        if out.is_dir():
            out.rmdir()  # empty (checked): the complete folder takes its place
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _write(images: list[Path], root: Path, session: SamSession, source: Source, split: str, val: list[bool],
           layout: str, review: bool, callback: Progress | None) -> AnnotateResult:
    """Every image's copy, masks and review picture under ``root``."""
    from seglab.data.io import read_image

    result = AnnotateResult(root, layout, per_class={n: 0 for n in source.names})
    for done, (path, to_val) in enumerate(zip(images, val, strict=True), 1):
        part = "val" if to_val else split
        image = read_image(path, channels=3)
        objects = source.find(session, path, image)
        n = _write_one(root, part, path, image, objects, source.names, layout, review)
        result.images[part] = result.images.get(part, 0) + 1
        result.objects[part] = result.objects.get(part, 0) + n
        result.empty += n == 0
        for c in _visible_classes(objects):
            result.per_class[source.names[c]] += 1
        if callback is not None:
            callback(done, len(images))
    result.embeddings = session.embeddings
    return result


def _visible_classes(objects: Objects) -> list[int]:
    """The class of each object left with pixels once overlaps are painted."""
    _, kept = objects.painted()
    return objects.classes[kept].tolist()


def _write_one(root: Path, split: str, path: Path, image: np.ndarray, objects: Objects, names: list[str],
               layout: str, review: bool) -> int:
    """One image's files; returns the number of objects written."""
    from seglab.fileio import atomic_path

    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / path.name) as tmp:
        shutil.copyfile(path, tmp)
    if layout == "instance":
        n = write_instances(root / "masks" / split / f"{path.stem}.png", objects, names)
    else:
        write_label_map(root / "labels" / split / f"{path.stem}.png", objects)
        n = len(_visible_classes(objects))
    if review:
        save_review(root / "review" / split / f"{path.stem}.png", image, objects, names)
    return n


def _finish(root: Path, source: Source, result: AnnotateResult, about: dict[str, Any] | None) -> None:
    """``classes.txt`` and ``annotate.json``."""
    from seglab import __version__
    from seglab.fileio import atomic_write_text

    first = source.background if result.layout == "semantic" else BACKGROUND
    atomic_write_text(root / "classes.txt", "\n".join([first, *source.names]) + "\n")
    record = {"seglab_version": __version__, **(about or {}), **source.describe(), **result.record()}
    atomic_write_text(root / "annotate.json", json.dumps(record, indent=2) + "\n")
