"""The two panoptic layouts at the level of one file: segment-id PNGs, the COCO panoptic JSON checked record by
record, and the segments of the simple layout built from its class-index and instance-id PNGs.

:mod:`seglab.data.panoptic.dataset` (reading), :mod:`seglab.data.panoptic.checks` (the doctor) and the converters
share these, so a file means the same segments everywhere. Problems are ``(problem, fix)`` pairs: the
readers raise the first one, the doctor reports them all.

Segment ids of the simple layout (the ``ids`` map :func:`simple_segments` builds, and the ids
``seglab-to-coco-panoptic`` writes): a thing instance keeps its instance id (1..65535); the stuff segment of
class ``c`` is ``STUFF_BASE + c``; the crowd segment of thing class ``c`` (its pixels with instance id 0) is
``STUFF_BASE + K + c``. Instance ids therefore survive a round trip through the COCO layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seglab.data.coco_images import image_record_problem
from seglab.data.io import is_int, is_number, open_image, show_value
from seglab.data.layout import containment_problem
from seglab.data.problems import Problem
from seglab.errors import DataError
from seglab.fileio import atomic_path

STUFF_BASE = 1 << 16  # above every 16-bit instance id
MAX_SEGMENT_ID = 256**3 - 1  # what three 8-bit channels hold
VOID = 255  # the simple layout's semantic void (and the training targets')
Finding = tuple[str, str]  # (problem, fix)


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids -> (H, W, 3) uint8 with id = R + 256 G + 256^2 B (COCO panoptic PNGs)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int32 segment ids R + 256 G + 256^2 B."""
    rgb = np.asarray(rgb, dtype=np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def read_panoptic_png(path: Path) -> np.ndarray:
    """A COCO panoptic PNG as (H, W) int32 segment ids.

    Raises:
        DataError: the file is missing or unreadable, or not an RGB image (a gray or 16-bit PNG holds no
            R + 256 G + 256^2 B ids).
    """
    try:
        with open_image(path) as im:
            if im.mode not in ("RGB", "RGBA", "P"):
                raise DataError(f"{path}: panoptic PNG has mode {im.mode}; segment ids are stored as RGB "
                                "(id = R + 256 G + 256^2 B). Re-export it as an RGB PNG.")
            rgb = np.asarray(im.convert("RGB"))
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path}: panoptic PNG not found. Add it or remove its annotation from the JSON.") from e
    except Exception as e:  # any decoder failure
        raise DataError(f"{path}: cannot read panoptic PNG ({type(e).__name__}: {e}). Re-export it.") from e
    return rgb_to_ids(rgb)


def write_panoptic_png(path: Path, ids: np.ndarray) -> None:
    """Write segment ids as an RGB PNG (atomically)."""
    with atomic_path(path) as tmp:
        Image.fromarray(ids_to_rgb(ids)).save(tmp, format="PNG")


def map_ids(ids: np.ndarray, keys: list[int], values: list[int], default: int) -> np.ndarray:
    """(H, W) int64: ``values[k]`` where ``ids == keys[k]``, ``default`` elsewhere (one lookup, no loop)."""
    if not keys:
        return np.full(ids.shape, default, np.int64)
    order = np.argsort(np.asarray(keys, np.int64))
    keys_sorted, vals = np.asarray(keys, np.int64)[order], np.asarray(values, np.int64)[order]
    pos = np.clip(np.searchsorted(keys_sorted, ids), 0, len(keys_sorted) - 1)
    return np.where(keys_sorted[pos] == ids, vals[pos], default)


def segment(seg_id: int, category: int, isthing: bool, iscrowd: int = 0) -> dict:
    """One segment as the panoptic contract writes it."""
    return {"id": int(seg_id), "category": int(category), "iscrowd": int(iscrowd), "isthing": bool(isthing)}


@dataclass
class SimpleSegments:
    """What :func:`simple_segments` makes of one image: the id map, its segments and every finding."""

    ids: np.ndarray
    segments: list[dict]
    problems: list[Finding] = field(default_factory=list)


def simple_segments(label: np.ndarray, inst: np.ndarray, isthing: list[bool],
                    names: list[str] | None = None) -> SimpleSegments:
    """Segments of the simple layout from a class-index ``label`` (255 void) and instance ids ``inst``.

    One stuff segment per stuff class present, one segment per instance id of a thing class, one crowd
    segment per thing class for its pixels with instance id 0. Problems: label values that are no class,
    instance ids on stuff or void pixels, an instance id spanning several classes (the id map then leaves
    that instance's pixels void).
    """
    k = len(isthing)
    names = names or [f"class {c}" for c in range(k)]
    lab, ins = label.astype(np.int64), inst.astype(np.int64)
    out = SimpleSegments(np.zeros(label.shape, np.int32), [])
    bad = (lab != VOID) & ((lab >= k) | (lab < 0))
    if bad.any():
        out.problems.append((f"label values {np.unique(lab[bad])[:8].tolist()} are not classes 0..{k - 1} (nor "
                             f"void {VOID})", "fix the label or add the classes to classes.txt"))
    known = (lab != VOID) & ~bad
    thing_lut = np.array([*isthing, False], dtype=bool)
    thing = known & thing_lut[np.where(known, lab, k)]
    stray = (ins > 0) & ~thing
    if stray.any():
        where = sorted({names[c] if c < k else "void" for c in np.unique(np.where(known, lab, k)[stray])})
        out.problems.append((f"instance ids {np.unique(ins[stray])[:8].tolist()} lie on stuff or void pixels "
                             f"({', '.join(where)}); instance ids belong on thing pixels only",
                             "set the instance PNG to 0 there (or list the class as a thing in panoptic.json)"))
    pairs = np.unique(ins[thing & (ins > 0)] * (k + 1) + lab[thing & (ins > 0)])
    inst_ids, inst_cls = pairs // (k + 1), pairs % (k + 1)
    uniq, counts = np.unique(inst_ids, return_counts=True)
    for i in uniq[counts > 1][:8]:
        classes = ", ".join(names[c] for c in inst_cls[inst_ids == i])
        out.problems.append((f"instance id {int(i)} spans several classes ({classes}); a segment has one "
                             "category", "give each object its own instance id, or fix the label"))
    split_ids = set(uniq[counts > 1].tolist())
    stuff = known & ~thing
    out.ids[stuff] = STUFF_BASE + lab[stuff]
    crowd = thing & (ins == 0)
    out.ids[crowd] = STUFF_BASE + k + lab[crowd]
    single = thing & (ins > 0) & ~np.isin(ins, list(split_ids))
    out.ids[single] = ins[single]
    for c in np.unique(lab[stuff]):
        out.segments.append(segment(STUFF_BASE + c, c, False))
    for i, c in zip(inst_ids.tolist(), inst_cls.tolist(), strict=True):
        if i not in split_ids:
            out.segments.append(segment(i, c, True))
    for c in np.unique(lab[crowd]):
        out.segments.append(segment(STUFF_BASE + k + c, c, True, iscrowd=1))
    out.segments.sort(key=lambda s: s["id"])
    return out


@dataclass
class PanopticIndex:
    """A COCO panoptic JSON after :func:`index_coco_panoptic`: the records that passed, and every problem.

    ``categories``: the category records sorted by id (their position is the class index); ``images``:
    image id -> record; ``annotations``: image id -> annotation record.
    """

    path: Path
    categories: list[dict] = field(default_factory=list)
    images: dict[int, dict] = field(default_factory=dict)
    annotations: dict[int, dict] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: str, fix: str) -> None:
        self.problems.append(Problem(self.path, problem, fix))


def load_coco_panoptic(path: Path, images_dir: Path, png_dir: Path, max_pixels: int) -> PanopticIndex:
    """Read a COCO panoptic JSON and check every record (:func:`index_coco_panoptic`).

    Raises:
        DataError: unreadable JSON or the first problem, naming the file, the record and the fix.
    """
    from seglab.data.io import read_json

    index = index_coco_panoptic(read_json(path), path, images_dir, png_dir, max_pixels)
    if index.problems:
        p, more = index.problems[0], len(index.problems) - 1
        also = f" ({more} more problem(s) in this file)" if more else ""
        raise DataError(f"{p.path}: {p.problem}{also}. Fix: {p.fix}. `seglab data check` lists every problem.")
    return index


def index_coco_panoptic(data: Any, path: Path, images_dir: Path, png_dir: Path, max_pixels: int) -> PanopticIndex:
    """Check a parsed COCO panoptic document record by record (no image or PNG is opened)."""
    index = PanopticIndex(path)
    lists = ("images", "annotations", "categories")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in lists):
        index.add(f"not a COCO panoptic file (needs the lists 'images', 'annotations', 'categories'); got "
                  f"{show_value(data if not isinstance(data, dict) else sorted(data))}",
                  "export the annotations in COCO panoptic format")
        return index
    cats: dict[int, dict] = {}
    for i, c in enumerate(data["categories"]):
        _add_category(index, cats, i, c)
    index.categories = [cats[c] for c in sorted(cats)]
    seen: set[int] = set()
    for i, im in enumerate(data["images"]):
        problem = image_record_problem(i, im, seen, images_dir, max_pixels)
        if problem:
            index.add(*problem)
        else:
            index.images[im["id"]] = im
    for i, a in enumerate(data["annotations"]):
        _add_annotation(index, i, a, png_dir, cats)
    for iid, im in index.images.items():
        if iid not in index.annotations:
            index.add(f"image id {iid} ({im['file_name']}) has no entry in 'annotations'",
                      "add its annotation (file_name of its PNG, segments_info) or remove the image")
    return index


def _add_category(index: PanopticIndex, cats: dict[int, dict], i: int, c: Any) -> None:
    fix = 'give each category {"id": <int > 0>, "name": <text>, "isthing": 0 or 1}'
    if not isinstance(c, dict) or not is_int(c.get("id")) or c["id"] <= 0:
        return index.add(f"categories[{i}] must be an object with an integer id > 0; got {show_value(c)}", fix)
    if c["id"] in cats:
        return index.add(f"categories[{i}]: duplicate category id {c['id']}", "give every category a unique id")
    if not isinstance(c.get("name"), str) or not c["name"].strip() or "\n" in c["name"]:
        return index.add(f"categories[{i}] (id {c['id']}): name must be one line of text; got "
                         f"{show_value(c.get('name'))}", fix)
    if c.get("isthing") not in (0, 1):  # True/False compare equal to 1/0
        return index.add(f"categories[{i}] (id {c['id']}, {c['name']}): isthing must be 0 or 1; got "
                         f"{show_value(c.get('isthing'))}", "mark things (countable objects) 1 and stuff 0")
    cats[c["id"]] = {"id": c["id"], "name": c["name"].strip(), "isthing": bool(c["isthing"])}


def _add_annotation(index: PanopticIndex, i: int, a: Any, png_dir: Path, cats: dict[int, dict]) -> None:
    if not isinstance(a, dict) or not is_int(a.get("image_id")):
        return index.add(f"annotations[{i}] must be an object with image_id, file_name, segments_info; got "
                         f"{show_value(a)}", "write one annotation per image in COCO panoptic format")
    iid = a["image_id"]
    where = f"annotations[{i}] (image id {iid})"
    if iid not in index.images:
        return index.add(f"{where}: image id {iid} is not in 'images' (or its record is broken)",
                         "fix image_id or remove the annotation")
    if iid in index.annotations:
        return index.add(f"{where}: a second annotation of image id {iid}", "keep one annotation per image")
    problem = containment_problem(png_dir, a.get("file_name"))
    if problem:
        return index.add(f"{where}: {problem}", f"give the PNG's file_name relative to {png_dir}")
    infos = a.get("segments_info")
    if not isinstance(infos, list):
        return index.add(f"{where}: segments_info must be a list; got {show_value(infos)}",
                         "list one {id, category_id, iscrowd, area, bbox} per segment")
    seen: set[int] = set()
    for j, s in enumerate(infos):
        problem = _segment_info_problem(s, cats, seen)
        if problem:
            return index.add(f"{where}, segments_info[{j}]: {problem[0]}", problem[1])
    index.annotations[iid] = a


def _segment_info_problem(s: Any, cats: dict[int, dict], seen: set[int]) -> Finding | None:
    fix = "give each segment {id, category_id, iscrowd, area, bbox} as COCO panoptic does"
    if not isinstance(s, dict) or not is_int(s.get("id")) or not is_int(s.get("category_id")):
        return f"must be an object with integer id and category_id; got {show_value(s)}", fix
    if s["id"] == 0:
        return "segment id 0 is void (unlabelled pixels) and cannot be a segment", "renumber the segment"
    if not 0 < s["id"] <= MAX_SEGMENT_ID:
        return f"segment id {s['id']} does not fit in an RGB PNG (1..{MAX_SEGMENT_ID})", "renumber the segment"
    if s["id"] in seen:
        return (f"segment id {s['id']} is listed twice (two segments would overlap)",
                "give every segment of the image its own id")
    seen.add(s["id"])
    if s["category_id"] not in cats:
        return f"category id {s['category_id']} is not in 'categories' ({sorted(cats)})", "fix the category id"
    if s.get("iscrowd", 0) not in (0, 1):
        return f"iscrowd must be 0 or 1; got {show_value(s.get('iscrowd'))}", fix
    box = s.get("bbox")
    if box is not None and (not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box)):
        return f"bbox must be 4 numbers [x, y, width, height]; got {show_value(box)}", fix
    if "area" in s and not is_number(s["area"]):
        return f"area must be a number; got {show_value(s['area'])}", fix
    return None


def segment_stats(ids: np.ndarray) -> dict[int, tuple[int, list[int]]]:
    """Area and COCO ``[x, y, width, height]`` box of every segment id of an id map (void 0 included)."""
    uniq, inv, counts = np.unique(ids.ravel(), return_inverse=True, return_counts=True)
    h, w = ids.shape
    rows, cols = np.divmod(np.arange(ids.size), w)
    x0, y0 = np.full(len(uniq), w), np.full(len(uniq), h)
    x1, y1 = np.full(len(uniq), -1), np.full(len(uniq), -1)
    np.minimum.at(x0, inv, cols)
    np.minimum.at(y0, inv, rows)
    np.maximum.at(x1, inv, cols)
    np.maximum.at(y1, inv, rows)
    return {int(i): (int(n), [int(a), int(b), int(c - a + 1), int(d - b + 1)])
            for i, n, a, b, c, d in zip(uniq, counts, x0, y0, x1, y1, strict=True)}


def id_agreement(present: np.ndarray, infos: list[dict]) -> list[Finding]:
    """Whether the ids of a PNG (``present``, void 0 excluded) and its segments_info agree, both ways."""
    listed = {s["id"] for s in infos}
    out = []
    unlisted = [int(i) for i in present if int(i) not in listed]
    if unlisted:
        out.append((f"segment ids {unlisted[:8]} are in the PNG but not in segments_info",
                    "list them in segments_info, or set their pixels to 0 (void)"))
    absent = sorted(listed - {int(i) for i in present})
    if absent:
        out.append((f"segments_info lists ids {absent[:8]} that the PNG does not hold",
                    "remove those entries or fix the PNG"))
    return out
