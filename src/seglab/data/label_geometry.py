"""The geometry of the truth: how wide each class is and how large its objects are, relative to the image.

What the plan needs to choose a training scale (``data.resize``) and a crop: the large objects (90th percentile
of their connected components' bounding-box side) must fit inside the crop and the network's receptive field,
and the thinnest class must stay a few pixels wide. Measured per class on label maps:

- ``boundary``: the share of a class's pixels that have a 4-neighbour of another value (a 1-px line: 1.0).
- ``width``: ``2 / boundary`` px, the width of a band whose two edges are the boundary pixels (a band ``w`` px
  wide and ``L`` long has ``w L`` pixels, ``2 L`` of them on an edge; 1-px lines read 2).
- per connected component (8-connectivity, ``scipy.ndimage.label``): the longer side of its bounding box in
  px and as a fraction of the image's longer side; per image, the share of the image its largest component
  covers. Percentiles over every component of the sample.

Labels are read one at a time and processed in row bands of small dtypes, so memory stays a small multiple of
one label map; a label map over ``MAX_SIDE`` px is measured at a whole stride (nearest), sides scaled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from seglab.data.io import read_label

SAMPLE = 100  # label maps read for the geometry of a split (evenly spread)
MAX_SIDE = 2048  # longer label maps are measured at a stride (component extents only)
BAND = 1 << 20  # pixels per row band of the boundary count
EIGHT = np.ones((3, 3), bool)  # 8-connectivity: a diagonal line is one object


@dataclass
class ClassScale:
    """One class's objects: bounding-box sides (px and fraction of the image's longer side), percentiles."""

    components: int = 0
    side_p50: float = 0.0
    side_p90: float = 0.0
    frac_p50: float = 0.0
    frac_p90: float = 0.0
    largest_share: float = 0.0  # median over the images holding the class: image share of its largest component


@dataclass
class Geometry:
    """The label geometry of a sample of a split (see the module docstring)."""

    boundary: list[float] = field(default_factory=list)
    scale: list[ClassScale] = field(default_factory=list)

    @property
    def width(self) -> list[float]:
        return [2.0 / b if b > 0 else float("inf") for b in self.boundary]


def edge_counts(label: np.ndarray, num_classes: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: pixels with a 4-neighbour of another value, and all pixels (ignore and out-of-range left out);
    computed in row bands so no full-size int64 or bool copy is made."""
    on_edge, total = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    h, w = label.shape
    rows = max(1, BAND // max(1, w))
    for top in range(0, h, rows):
        lo, hi = max(0, top - 1), min(h, top + rows + 1)  # one row of context above and below the band
        band = label[lo:hi]
        edge = np.zeros(band.shape, bool)
        vertical, horizontal = band[1:] != band[:-1], band[:, 1:] != band[:, :-1]
        edge[1:] |= vertical
        edge[:-1] |= vertical
        edge[:, 1:] |= horizontal
        edge[:, :-1] |= horizontal
        inner = slice(top - lo, top - lo + min(rows, h - top))
        band, edge = band[inner], edge[inner]
        ok = (band != ignore_index) & (band < num_classes) & (band >= 0)
        on_edge += np.bincount(band[ok & edge], minlength=num_classes)[:num_classes]
        total += np.bincount(band[ok], minlength=num_classes)[:num_classes]
    return on_edge, total


def components(label: np.ndarray, num_classes: int, ignore_index: int) -> dict[int, tuple[list[int], float]]:
    """Per class present: the longer bounding-box side of each connected component (px) and the share of the
    image its largest component covers."""
    h, w = label.shape
    step = -(-max(h, w) // MAX_SIDE)
    small = label[::step, ::step] if step > 1 else label
    out: dict[int, tuple[list[int], float]] = {}
    present: set[int] = set()
    for band in _bands(small):
        present |= set(np.unique(band).tolist())
    for c in sorted(v for v in present if v != ignore_index and 0 <= v < num_classes):
        ids, n = ndimage.label(small == c, structure=EIGHT)
        if n == 0:
            continue
        boxes = ndimage.find_objects(ids)
        sides = [max(b[0].stop - b[0].start, b[1].stop - b[1].start) * step for b in boxes if b is not None]
        areas = np.zeros(n + 1, np.int64)
        for band in _bands(ids):
            areas += np.bincount(band.ravel(), minlength=n + 1)
        out[int(c)] = (sides, min(1.0, int(areas[1:].max()) * step * step / (h * w)))
        del ids
    return out


def _bands(array: np.ndarray) -> Iterator[np.ndarray]:
    rows = max(1, BAND // max(1, array.shape[1]))
    for top in range(0, array.shape[0], rows):
        yield array[top:top + rows]


def spread(items: list, n: int = SAMPLE) -> list:
    """At most ``n`` of ``items``, evenly spread (first and last included): the sample the geometry reads."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def geometry_json(geometry: Geometry) -> dict:
    """The geometry as JSON-safe numbers (an absent class's width is null)."""
    return {"boundary": geometry.boundary, "width": [w if np.isfinite(w) else None for w in geometry.width],
            "scale": [asdict(s) for s in geometry.scale]}


def label_geometry(labels: list[Path], num_classes: int, ignore_index: int = 255) -> Geometry:
    """:class:`Geometry` of ``labels`` (read one at a time)."""
    on_edge, total = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    sides: list[list[int]] = [[] for _ in range(num_classes)]
    fracs: list[list[float]] = [[] for _ in range(num_classes)]
    shares: list[list[float]] = [[] for _ in range(num_classes)]
    for path in labels:
        label = read_label(path)
        e, t = edge_counts(label, num_classes, ignore_index)
        on_edge += e
        total += t
        long_side = max(label.shape)
        for c, (s, share) in components(label, num_classes, ignore_index).items():
            sides[c] += s
            fracs[c] += [v / long_side for v in s]
            shares[c].append(share)
        del label
    scale = [ClassScale(len(s), *_p(s), *_p(f), float(np.median(sh)) if sh else 0.0)
             for s, f, sh in zip(sides, fracs, shares, strict=True)]
    return Geometry((on_edge / np.maximum(total, 1)).tolist(), scale)


def _p(values: list[float]) -> tuple[float, float]:
    """Median and 90th percentile (0, 0 when empty)."""
    if not values:
        return 0.0, 0.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 90))


def geometry_table(classes: list[str], geometry: Geometry) -> list[list[str]]:
    """Rows for printing (a header first): per class its width and its objects' extents."""
    rows = [["class", "width px", "objects", "side p50 px", "side p90 px", "p90 / image side", "largest share"]]
    for name, width, s in zip(classes, geometry.width, geometry.scale, strict=True):
        rows.append([name, f"{width:.1f}" if width != float("inf") else "-", str(s.components),
                     f"{s.side_p50:.0f}", f"{s.side_p90:.0f}", f"{s.frac_p90:.0%}", f"{s.largest_share:.0%}"])
    return rows
