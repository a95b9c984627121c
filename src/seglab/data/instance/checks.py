"""Instance annotation files checked before use, and the instance dataset doctor.

Annotation files are untrusted input: :func:`index_coco` checks every record of a COCO instances document
(types, ids, references, claimed sizes, file names inside ``images/<split>/``) before anything reads it;
readers call :func:`load_coco`, which raises the first problem naming the file, the record and the field.
The doctor (:func:`check_instance_dataset`) reports them all, plus what needs the files (missing images,
sizes, EXIF orientation, boxes, empty masks); training's preflight raises the first
(:func:`raise_first_problem`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seglab.data.coco_images import image_record_problem
from seglab.data.file_checks import FileReport, inspect_image
from seglab.data.io import (
    DEFAULT_MAX_PIXELS,
    LABEL_EXTS,
    is_int,
    is_number,
    pil_pixel_limit,
    read_json,
    read_label,
    show_value,
)
from seglab.data.layout import (
    CLASSES_FILE,
    category_names,
    list_split,
    pair_by_stem,
    read_classes,
    read_instance_labels,
    sort_splits,
)
from seglab.data.problems import Problem, unsupported_problems
from seglab.data.rle import rle_area, segmentation_problem, segmentation_to_rle
from seglab.errors import DataError

COCO_LISTS = ("images", "annotations", "categories")
_ANN_FIX = "fix the annotation (COCO instances format) or remove it"


@dataclass
class CocoIndex:
    """A COCO instances document after :func:`index_coco`: the records that passed, and every problem.

    ``images`` maps image id -> record (file order), ``categories`` category id -> name, ``annotations``
    holds ``(position in the file, record)`` of the annotations that passed.
    """

    path: Path
    images: dict[int, dict] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=dict)
    annotations: list[tuple[int, dict]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    image_ids: set[int] = field(default_factory=set)  # every id given, broken records included
    annotation_ids: set[int] = field(default_factory=set)

    def add(self, problem: str, fix: str) -> None:
        self.problems.append(Problem(self.path, problem, fix))

    def per_image(self) -> dict[int, list[dict]]:
        """The non-crowd annotations of each image, in annotation id order."""
        out: dict[int, list[dict]] = {i: [] for i in self.images}
        for _, a in sorted(self.annotations, key=lambda ia: ia[1]["id"]):
            if not a.get("iscrowd", 0):
                out[a["image_id"]].append(a)
        return out

    def crowd(self) -> int:
        """Number of crowd regions (``iscrowd=1``)."""
        return sum(bool(a.get("iscrowd", 0)) for _, a in self.annotations)


def load_coco(path: str | os.PathLike, images_dir: Path | None,
              max_pixels: int = DEFAULT_MAX_PIXELS, data: Any = None) -> CocoIndex:
    """Read a COCO instances JSON whose images lie in ``images_dir`` and check every record.

    ``images_dir=None`` is for readers that never open the images (scoring against ground truth): file
    names are then not checked. ``data``: the document, when the caller has already read ``path``.

    Raises:
        DataError: unreadable or invalid JSON, or the first problem :func:`index_coco` finds (file, record
            and field named).
    """
    index = index_coco(read_json(path) if data is None else data, Path(path), images_dir, max_pixels)
    if index.problems:
        p, more = index.problems[0], len(index.problems) - 1
        also = f" ({more} more problem(s) in this file)" if more else ""
        raise DataError(f"{p.path}: {p.problem}{also}. Fix: {p.fix}. `seglab data check --task instance` "
                        "lists every problem.")
    return index


def index_coco(data: Any, path: Path, images_dir: Path | None, max_pixels: int) -> CocoIndex:
    """Check a parsed COCO instances document record by record (no image file is opened).

    Every image needs an integer ``id``, a ``file_name`` inside ``images_dir`` and positive integer
    ``width`` x ``height`` of at most ``max_pixels``; every category an integer ``id`` > 0; every
    annotation integer ``id``, ``image_id`` and ``category_id`` naming listed records, a ``segmentation``
    that fits its image (:func:`seglab.data.rle.segmentation_problem`) and, when given, a 4-number ``bbox``,
    a number ``area`` and ``iscrowd`` 0 or 1.
    """
    index = CocoIndex(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in COCO_LISTS):
        index.add(f"not a COCO instances file (needs the lists {', '.join(map(repr, COCO_LISTS))}); got "
                  f"{show_value(data if not isinstance(data, dict) else sorted(data))}",
                  "export the annotations in COCO instances format")
        return index
    for i, c in enumerate(data["categories"]):
        _add_category(index, i, c)
    for i, im in enumerate(data["images"]):
        _add_image(index, i, im, images_dir, max_pixels)
    for i, a in enumerate(data["annotations"]):
        _add_annotation(index, i, a)
    return index


def _add_category(index: CocoIndex, i: int, c: Any) -> None:
    fix = 'give each category {"id": <int > 0>, "name": <text>}'
    if not isinstance(c, dict) or not is_int(c.get("id")) or c["id"] <= 0:
        return index.add(f"categories[{i}] must be an object with an integer id > 0 (0 is the background) "
                         f"and a name; got {show_value(c)}", fix)
    name = c.get("name", f"class_{c['id']}")
    if c["id"] in index.categories:
        return index.add(f"categories[{i}]: duplicate category id {c['id']}", "give every category a unique id")
    if not isinstance(name, str):
        return index.add(f"categories[{i}] (id {c['id']}): name must be text; got {show_value(name)}", fix)
    index.categories[c["id"]] = name


def _add_image(index: CocoIndex, i: int, im: Any, images_dir: Path | None, max_pixels: int) -> None:
    problem = image_record_problem(i, im, index.image_ids, images_dir, max_pixels)
    if problem:
        return index.add(*problem)
    index.images[im["id"]] = im


def _annotation_fields(a: dict) -> str | None:
    """What is wrong with the types of an annotation's fields (None: nothing)."""
    for key in ("id", "image_id", "category_id"):
        if not is_int(a.get(key)):
            return f"{key} must be an integer; got {show_value(a.get(key))}"
    if a.get("iscrowd", 0) not in (0, 1):
        return f"iscrowd must be 0 or 1; got {show_value(a['iscrowd'])}"
    box = a.get("bbox")
    if box is not None and (not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box)):
        return f"bbox must be 4 numbers [x, y, width, height]; got {show_value(box)}"
    if "area" in a and not is_number(a["area"]):
        return f"area must be a number; got {show_value(a['area'])}"
    return None


def _add_annotation(index: CocoIndex, i: int, a: Any) -> None:
    if not isinstance(a, dict):
        return index.add(f"annotations[{i}] must be an object with id, image_id, category_id, segmentation; "
                         f"got {show_value(a)}", _ANN_FIX)
    where = f"annotations[{i}] (id {show_value(a.get('id'))}, image id {show_value(a.get('image_id'))})"
    problem = _annotation_fields(a)
    if problem:
        return index.add(f"{where}: {problem}", _ANN_FIX)
    if a["id"] in index.annotation_ids:
        return index.add(f"{where}: duplicate annotation id {a['id']}", "give every annotation a unique id")
    index.annotation_ids.add(a["id"])
    if a["image_id"] not in index.image_ids:
        return index.add(f"{where}: image id {a['image_id']} is not in 'images'",
                         "fix image_id or remove the annotation")
    if a["category_id"] not in index.categories:
        return index.add(f"{where}: category id {a['category_id']} is not in 'categories' "
                         f"({sorted(index.categories)})", "fix category_id or add the category")
    im = index.images.get(a["image_id"])
    if im is None:  # the image record itself is broken, and reported
        return None
    problem = segmentation_problem(a.get("segmentation"), im["height"], im["width"])
    if problem:
        return index.add(f"{where}: {problem}", "give polygons or an RLE mask of the image size")
    index.annotations.append((i, a))
    return None


def check_instance_dataset(root: str | os.PathLike, splits: list[str] | None = None,
                           max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = False) -> list[Problem]:
    """Scan an instance dataset (COCO JSON and/or mask folders) and return every problem found.

    ``splits=None`` checks every split that has ``annotations/instances_<split>.json`` or ``masks/<split>/``.
    ``decode`` also decodes every image (finds truncated files; headers only otherwise). An empty list means
    the dataset loads cleanly.
    """
    root = Path(root)
    if splits is None:
        found = {p.stem[len("instances_"):] for p in (root / "annotations").glob("instances_*.json")}
        if (root / "masks").is_dir():
            found |= {d.name for d in (root / "masks").iterdir() if d.is_dir()}
        splits = sort_splits(found)
        if not splits:
            return [Problem(root, "no instance annotations found", "add annotations/instances_<split>.json "
                            "(COCO) or masks/<split>/<stem>.png + .json")]
    problems: list[Problem] = []
    # Sizes are checked from headers before decoding, so Pillow's own bomb limit is lifted here.
    with pil_pixel_limit(None):
        for split in splits:
            coco = (root / "annotations" / f"instances_{split}.json").is_file()
            masks = (root / "masks" / split).is_dir()
            if not coco and not masks:
                problems.append(Problem(root, f"split {split!r} has neither annotations/instances_{split}.json "
                                        f"nor masks/{split}/", "add one of them or drop the split"))
            if coco:
                problems += check_coco_split(root, split, max_pixels, decode)
            if masks:
                problems += _check_mask_folder(root, split, max_pixels, decode)
    return problems


def raise_first_problem(problems: list[Problem], root: Path) -> None:
    """Raise the first of ``problems`` as one DataError (nothing when empty), pointing at the full report."""
    if problems:
        p = problems[0]
        raise DataError(f"{root}: {len(problems)} problem(s) in the instance dataset; first: {p.path}: "
                        f"{p.problem} (fix: {p.fix}). `seglab data check --task instance {root}` lists all.")


def check_coco_split(root: Path, split: str, max_pixels: int, decode: bool = False) -> list[Problem]:
    """Every problem of ``annotations/instances_<split>.json`` and the images it lists."""
    path, images_dir = root / "annotations" / f"instances_{split}.json", root / "images" / split
    try:
        data = read_json(path)
    except DataError as e:
        return [Problem(path, str(e).removeprefix(f"{path}: "), "fix the file at that spot or re-export it")]
    index = index_coco(data, path, images_dir, max_pixels)
    out = list(index.problems)
    with pil_pixel_limit(None):
        for iid, im in index.images.items():
            out += _check_coco_image(path, images_dir / im["file_name"], iid, im, max_pixels, decode)
    for i, a in index.annotations:
        out += _check_annotation(path, i, a, index.images[a["image_id"]])
    return out


def _check_coco_image(path: Path, file: Path, iid: int, im: dict, max_pixels: int,
                      decode: bool) -> list[Problem]:
    if not file.is_file():
        return [Problem(file, f"image listed in {path.name} (id {iid}) is missing on disk",
                        f"add the file under {file.parent} or remove its entry")]
    report = inspect_image(file, decode, max_pixels)
    out = [Problem(file, problem, fix) for problem, fix in report.findings]
    size = (im["width"], im["height"])
    if report.size and report.size != size:
        out.append(Problem(file, f"JSON says {size[0]}x{size[1]}, file is {report.size[0]}x{report.size[1]}",
                           _size_fix(report, size, "fix width/height in the JSON (or the image)")))
    return out


def _size_fix(image: FileReport, other: tuple[int, int], fix: str) -> str:
    """``fix``, or rotating the image file when ``other`` (w, h) is the EXIF-turned view of the image."""
    if image.orientation in (5, 6, 7, 8) and image.size == other[::-1]:
        return "the annotations fit the EXIF-turned view of the image: rotate the image file itself"
    return fix


def _check_annotation(path: Path, i: int, a: dict, im: dict) -> list[Problem]:
    """What needs the geometry of an annotation that passed :func:`index_coco`: its box and its mask."""
    where = f"annotations[{i}] (id {a['id']}, image id {a['image_id']})"
    w, h = im["width"], im["height"]
    out = []
    box = a.get("bbox")
    if box is not None and (box[2] <= 0 or box[3] <= 0):
        out.append(Problem(path, f"{where}: zero-area bbox {box}", "use [x, y, width, height] > 0"))
    elif box is not None and (box[0] < -1e-3 or box[1] < -1e-3 or box[0] + box[2] > w + 1e-3
                              or box[1] + box[3] > h + 1e-3):
        out.append(Problem(path, f"{where}: bbox {box} lies outside the {w}x{h} image", "clip the box to the image"))
    try:
        if rle_area(segmentation_to_rle(a["segmentation"], h, w)) == 0:
            out.append(Problem(path, f"{where}: segmentation covers no pixels", "fix or remove the annotation"))
    except DataError as e:
        out.append(Problem(path, f"{where}: {e.__cause__ or e}", "re-encode the mask"))
    return out


def _check_mask_folder(root: Path, split: str, max_pixels: int, decode: bool) -> list[Problem]:
    images = list_split(root / "images" / split)
    found = pair_by_stem(images, list_split(root / "masks" / split, LABEL_EXTS))
    out = [Problem(p, "two images share this stem", "keep one file per stem")
           for group in found.duplicates for p in group[1:] if p in images]
    try:
        names: dict[int, str] | None = category_names(read_classes(root))
    except DataError as e:
        out.append(Problem(root / CLASSES_FILE, str(e).split(": ", 1)[-1], "one class name a line"))
        names = None
    odd = unsupported_problems(root / "images" / split)  # a .webp: its mask is not "a mask without an image"
    out += odd + [Problem(p, "image has no instance mask", f"add masks/{split}/{p.stem}.png or remove the image")
                  for p in found.unlabelled]
    out += [Problem(m, "mask has no image", f"add images/{split}/{m.stem}.<ext> or remove the mask")
            for m in found.orphans if m.stem not in {Path(p.path).stem for p in odd}]
    for image, m in found.pairs:
        report = inspect_image(image, decode, max_pixels)
        out += [Problem(image, problem, fix) for problem, fix in report.findings]
        try:
            ids = read_label(m)
        except DataError as e:
            out.append(Problem(m, str(e), "re-export the mask as a single-channel PNG of instance ids"))
            continue
        (mw, mh), size = (ids.shape[1], ids.shape[0]), report.size
        if size and (mw, mh) != size:
            out.append(Problem(m, f"mask is {mw}x{mh}, image is {size[0]}x{size[1]}",
                               _size_fix(report, (mw, mh), "re-export the mask at the image size")))
        if names is not None:
            out += _check_mask_labels(m, int(ids.max(initial=0)), names)
    return out


def _check_mask_labels(mask: Path, n: int, names: dict[int, str]) -> list[Problem]:
    js = mask.with_suffix(".json")
    if not js.is_file():
        return [] if len(names) == 1 else [Problem(mask, f"no {js.name} with the category of each instance",
                                                   f'write {js.name} = {{"labels": [...]}} ({n} ids)')]
    try:
        labels = read_instance_labels(js)
    except DataError as e:
        return [Problem(js, str(e).removeprefix(f"{js}: "), "list one integer category id per instance")]
    out = []
    if len(labels) != n:
        out.append(Problem(js, f"{len(labels)} labels but the PNG has instance ids up to {n}",
                           "give exactly one category id per instance id 1..n"))
    unknown = sorted({c for c in labels if names and c not in names})
    if unknown:
        out.append(Problem(js, f"category ids {unknown} are not in classes.txt ({sorted(names)})",
                           "fix the ids or add the category names to classes.txt"))
    return out
