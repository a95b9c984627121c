"""Semantic data -> seglab's simple panoptic layout: the thing pixels of a class map split into instances.

Instances come from an instance dataset of the same images (COCO or ``masks/``, matched by file stem and
category name) or, without one, from the connected components of each thing class: then objects of one
class that touch (8-connected: a shared corner is enough) merge into one instance. Pixels of a thing class
that no instance covers are the class's crowd segment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seglab.data.io import DEFAULT_MAX_PIXELS, image_size, read_label, write_label
from seglab.data.layout import (
    CLASSES_FILE,
    PALETTE_FILE,
    PANOPTIC_FILE,
    list_split,
    pair_by_stem,
    read_classes,
    split_folders,
)
from seglab.data.panoptic.convert import place_image, staged_output
from seglab.data.panoptic.format import VOID
from seglab.errors import ConfigError, DataError
from seglab.fileio import atomic_write_text, refuse_overwrite

__all__ = ["connected_components", "semantic_to_panoptic"]
Callback = Callable[[int, int], None]


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean (H, W) mask: ``(labels int32, n)``, components numbered 1..n in
    raster order of their first pixel, 0 off the mask.

    Runs of each row are joined to the runs of the row above they touch (a union-find over runs), so the
    cost follows the number of runs, not of pixels.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rows, starts = np.nonzero(d == 1)
    ends = np.nonzero(d == -1)[1]  # exclusive; row-major order pairs them with the starts
    parent = list(range(len(rows)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first = np.searchsorted(rows, np.arange(h + 1))
    for r in range(1, h):
        i, i_end, j, j_end = first[r - 1], first[r], first[r], first[r + 1]
        while i < i_end and j < j_end:
            if starts[j] <= ends[i] and starts[i] <= ends[j]:  # touching, corners included
                a, b = find(i), find(j)
                parent[max(a, b)] = min(a, b)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    roots = [find(k) for k in range(len(rows))]
    number: dict[int, int] = {}
    comp = np.array([number.setdefault(root, len(number) + 1) for root in roots], np.int32)
    out = np.zeros(h * w, np.int32)
    lengths = ends - starts
    if len(lengths):
        offsets = np.repeat(rows * w + starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        out[offsets + np.arange(lengths.sum())] = np.repeat(comp, lengths)
    return out.reshape(h, w), len(number)


def _components(label: np.ndarray, things: list[int], where: Path, min_area: int = 0) -> np.ndarray:
    """Instance ids 1..n: the connected components of each thing class, class after class. Components under
    ``min_area`` pixels keep id 0: a crowd region of their class (scored by nothing, missed by nobody)."""
    inst = np.zeros(label.shape, np.int32)
    for c in things:
        comps, n = connected_components(label == c)
        if min_area > 1 and n:
            keep = np.bincount(comps.ravel(), minlength=n + 1) >= min_area
            keep[0] = False
            number = np.zeros(n + 1, np.int32)
            number[keep] = np.arange(1, int(keep.sum()) + 1)
            comps = number[comps]
        inst[comps > 0] = comps[comps > 0] + inst.max()
    if inst.max() > 65535:
        raise DataError(f"{where}: {inst.max()} objects do not fit a 16-bit instance PNG. Clean the label "
                        "(specks of thing classes each become an object) or pass --instances.")
    return inst


class _InstanceSource:
    """Instances of an instance dataset by image stem, with category names mapped onto thing classes."""

    def __init__(self, root: Path, split: str, classes: list[str], things: list[int]) -> None:
        from seglab.data.instance.coco import open_instance_split

        self.ds = open_instance_split(root, split)
        paths = [Path(im["file_name"]) for im in self.ds.images] if hasattr(self.ds, "images") \
            else self.ds.image_paths
        self.index = {p.stem: i for i, p in enumerate(paths)}
        by_name = {classes[c].lower(): c for c in things}
        self.thing_of = {k: by_name.get(n.lower()) for k, n in enumerate(self.ds.classes)}
        if not any(v is not None for k, v in self.thing_of.items() if k):
            raise DataError(f"{root}: none of its categories {self.ds.classes[1:]} is a thing class "
                            f"({[classes[c] for c in things]}). Name the categories as classes.txt does.")

    def instances(self, stem: str, label: np.ndarray, where: Path) -> np.ndarray:
        """Instance ids of one image: each instance on the pixels of its class (later ones on top), 1..n."""
        if stem not in self.index:
            raise DataError(f"{where}: no image of stem {stem!r} in the instance data {self.ds.root}. Give every "
                            "image its instances, or convert without --instances.")
        _, target = self.ds[self.index[stem]]
        masks, labels = target["masks"].numpy().astype(bool), target["labels"].tolist()
        if masks.shape[1:] != label.shape:
            raise DataError(f"{where}: instance masks of {stem!r} are {masks.shape[2]}x{masks.shape[1]}, the label "
                            f"is {label.shape[1]}x{label.shape[0]}. Use instance data of the same images.")
        inst = np.zeros(label.shape, np.int32)
        for k, (m, lab) in enumerate(zip(masks, labels, strict=True), 1):
            c = self.thing_of.get(lab)
            if c is not None:
                inst[m & (label == c)] = k
        present = np.unique(inst[inst > 0])  # renumber 1..n: hidden or off-class instances leave no gap
        remap = np.zeros(len(masks) + 1, np.int32)
        remap[present] = np.arange(1, len(present) + 1)
        return remap[inst]


def _thing_indices(root: Path, things: Sequence[str]) -> tuple[list[str], list[int]]:
    classes = read_classes(root)
    if classes is None:
        raise DataError(f"{root / CLASSES_FILE}: missing. Thing classes are named by classes.txt (line i = class i).")
    unknown = [t for t in things if t not in classes]
    if not things or unknown:
        raise ConfigError(f"--things: {unknown or 'no names'}; give thing class names from {root / CLASSES_FILE}: "
                          f"{', '.join(classes)}.")
    return classes, sorted({classes.index(t) for t in things})


def _read_pair(image: Path, label_path: Path, k: int) -> np.ndarray:
    label = read_label(label_path)
    bad = (label != VOID) & (label >= k)
    if bad.any():
        raise DataError(f"{label_path}: values {np.unique(label[bad])[:8].tolist()} are not classes 0..{k - 1} nor "
                        f"void {VOID}. Fix the label (`seglab data check`).")
    size, why = image_size(image, DEFAULT_MAX_PIXELS)
    if why or size != (label.shape[1], label.shape[0]):
        raise DataError(f"{image}: {why or f'size {size} differs from its label {label_path.name}'}. Run "
                        "`seglab data check` on the dataset.")
    return label


def _convert_image(root: Path, split: str, image: Path, label_path: Path, k: int, things: list[int],
                   source: _InstanceSource | None, min_area: int = 0) -> int:
    """Write one image's image, label and instance PNG under ``root``; returns its number of instances."""
    label = _read_pair(image, label_path, k)
    inst = source.instances(image.stem, label, label_path) if source else \
        _components(label, things, label_path, min_area)
    place_image(image, root / "images" / split / image.name)
    write_label(root / "labels" / split / f"{image.stem}.png", label)
    write_label(root / "instances" / split / f"{image.stem}.png", inst)
    return len(np.unique(inst[inst > 0]))


def semantic_to_panoptic(root: str | os.PathLike, out: str | os.PathLike, things: Sequence[str],
                         instances: str | os.PathLike | None = None, splits: Sequence[str] | None = None,
                         callback: Callback | None = None, min_area: int = 0) -> dict[str, int]:
    """Write the semantic dataset ``root`` (``images/``, ``labels/``, ``classes.txt``) as seglab's simple
    panoptic layout in the new folder ``out``, the classes named in ``things`` being things.

    ``instances``: an instance dataset (COCO or ``masks/``) of the same images, matched by file stem; its
    categories are matched to the thing classes by name (case-insensitive), and an instance only claims the
    pixels of its own class. Without it every connected component (8-connected) of a thing class becomes
    one instance, so touching objects of one class merge; components under ``min_area`` pixels (specks, the
    fragments of occluded objects) become a crowd region of their class instead. Only images with a label are
    converted.

    Returns:
        ``{"images": ..., "instances": ...}`` written.

    Raises:
        ConfigError: ``things`` empty or not in ``classes.txt``; ``min_area`` negative.
        DataError: no classes.txt, a label value that is no class, sizes that differ, an image missing from
            ``instances``, an ``out`` that is not new or inside ``root``.
    """
    root = Path(root)
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 0:
        raise ConfigError(f"Expected `min_area` (--min-area) to be a pixel count >= 0, but got {min_area!r}.")
    classes, thing_idx = _thing_indices(root, things)
    names = list(splits) if splits else split_folders(root, "images", "labels")
    plan = {s: pair_by_stem(list_split(root / "images" / s), list_split(root / "labels" / s)).pairs for s in names}
    if not any(plan.values()):
        raise DataError(f"{root}: no image with a label (images/<split>/ + labels/<split>/<stem>.png).")
    refuse_overwrite([Path(out) / "images" / s / im.name for s, pairs in plan.items() for im, _ in pairs], [root])
    counts, total = {"images": 0, "instances": 0}, sum(len(p) for p in plan.values())
    with staged_output(out, root) as tmp:
        for split, pairs in plan.items():
            source = _InstanceSource(Path(instances), split, classes, thing_idx) if instances is not None else None
            for image, label_path in pairs:
                counts["instances"] += _convert_image(tmp, split, image, label_path, len(classes), thing_idx, source,
                                                      min_area)
                counts["images"] += 1
                if callback is not None:
                    callback(counts["images"], total)
        atomic_write_text(tmp / CLASSES_FILE, "\n".join(classes) + "\n")
        atomic_write_text(tmp / PANOPTIC_FILE, json.dumps({"things": [classes[c] for c in thing_idx]}) + "\n")
        if (root / PALETTE_FILE).is_file():
            atomic_write_text(tmp / PALETTE_FILE, (root / PALETTE_FILE).read_text(encoding="utf-8-sig"))
    return counts
