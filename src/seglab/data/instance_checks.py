"""The instance dataset doctor: every problem of a COCO JSON or an instance-mask folder, in one report.

``seglab data check --task instance`` prints what :func:`check_instance_dataset` returns;
:class:`seglab.data.coco.CocoInstances` runs :func:`check_coco_split` before loading and raises the first
problem (:func:`raise_first_problem`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from seglab.data.checks import Problem
from seglab.data.io import DEFAULT_MAX_PIXELS, LABEL_EXTS, image_size, read_label
from seglab.data.layout import CLASSES_FILE, category_names, list_split, pair_by_stem, read_classes, sort_splits
from seglab.data.rle import rle_area, segmentation_to_rle
from seglab.errors import DataError


def check_instance_dataset(root: str | os.PathLike, splits: list[str] | None = None,
                           max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Problem]:
    """Scan an instance dataset (COCO JSON and/or mask folders) and return every problem found.

    ``splits=None`` checks every split that has ``annotations/instances_<split>.json`` or ``masks/<split>/``.
    An empty list means the dataset loads cleanly.
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
    for split in splits:
        coco = (root / "annotations" / f"instances_{split}.json").is_file()
        masks = (root / "masks" / split).is_dir()
        if not coco and not masks:
            problems.append(Problem(root, f"split {split!r} has neither annotations/instances_{split}.json "
                                    f"nor masks/{split}/", "add one of them or drop the split"))
        if coco:
            problems += check_coco_split(root, split, max_pixels)
        if masks:
            problems += _check_mask_folder(root, split, max_pixels)
    return problems


def raise_first_problem(problems: list[Problem], root: Path) -> None:
    """Raise the first of ``problems`` as one DataError (nothing when empty), pointing at the full report."""
    if problems:
        p = problems[0]
        raise DataError(f"{root}: {len(problems)} problem(s) in the instance dataset; first: {p.path}: "
                        f"{p.problem} (fix: {p.fix}). `seglab data check --task instance {root}` lists all.")


def _json_or_problem(path: Path) -> tuple[Any, Problem | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except json.JSONDecodeError as e:
        return None, Problem(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                             "fix the syntax at that spot or re-export the file")
    except (OSError, UnicodeDecodeError) as e:
        return None, Problem(path, f"cannot read file ({e})", "re-export the file")


def check_coco_split(root: Path, split: str, max_pixels: int) -> list[Problem]:
    """Every problem of ``annotations/instances_<split>.json`` and the images it lists."""
    path = root / "annotations" / f"instances_{split}.json"
    data, bad = _json_or_problem(path)
    if bad:
        return [bad]
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        return [Problem(path, "not a COCO instances file (needs lists 'images', 'annotations', 'categories')",
                        "export the annotations in COCO instances format")]
    out: list[Problem] = []
    cats = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    sizes: dict[Any, tuple[int, int]] = {}
    for im in data["images"]:
        iid, name = im.get("id"), im.get("file_name", "")
        if iid in sizes:
            out.append(Problem(path, f"duplicate image id {iid} ({name})", "give every image a unique id"))
            continue
        sizes[iid] = (im.get("width", 0), im.get("height", 0))
        file = root / "images" / split / name
        if not file.is_file():
            out.append(Problem(file, f"image listed in {path.name} (id {iid}) is missing on disk",
                               f"add the file under images/{split}/ or remove its entry"))
            continue
        wh, why = image_size(file, max_pixels)
        if why:
            out.append(Problem(file, why, "re-export the image or remove it"))
        elif wh != sizes[iid]:
            out.append(Problem(file, f"JSON says {sizes[iid][0]}x{sizes[iid][1]}, file is {wh[0]}x{wh[1]}",
                               "fix width/height in the JSON (or the image)"))
    for a in data["annotations"]:
        out += _check_annotation(path, a, sizes, cats)
    return out


def _check_annotation(path: Path, a: dict, sizes: dict, cats: set) -> list[Problem]:
    where = f"{path} (annotation id {a.get('id')}, image id {a.get('image_id')})"
    if a.get("image_id") not in sizes:
        return [Problem(where, "annotation refers to an image id not in 'images'",
                        "fix image_id or remove the annotation")]
    w, h = sizes[a["image_id"]]
    out = []
    if a.get("category_id") not in cats:
        out.append(Problem(where, f"category id {a.get('category_id')} is not in 'categories' "
                           f"({sorted(cats)})", "fix category_id or add the category"))
    box = a.get("bbox")
    if box is not None and (len(box) != 4 or box[2] <= 0 or box[3] <= 0):
        out.append(Problem(where, f"zero-area or malformed bbox {box}", "use [x, y, width, height] > 0"))
    elif box is not None and (box[0] < -1e-3 or box[1] < -1e-3 or box[0] + box[2] > w + 1e-3
                              or box[1] + box[3] > h + 1e-3):
        out.append(Problem(where, f"bbox {box} lies outside the {w}x{h} image", "clip the box to the image"))
    segm = a.get("segmentation")
    if isinstance(segm, list):
        short = [len(p) // 2 for p in segm if not isinstance(p, list) or len(p) < 6 or len(p) % 2]
        if short or not segm:
            out.append(Problem(where, f"polygon(s) with fewer than 3 points ({short or 'none given'})",
                               "give each polygon >= 3 (x, y) points or drop it"))
            return out
    elif isinstance(segm, dict):
        if list(segm.get("size", [])) != [h, w]:
            out.append(Problem(where, f"mask size {segm.get('size')} (h, w) but the image is {h}x{w} (h x w)",
                               "re-encode the mask at the image size"))
            return out
    else:
        return [*out, Problem(where, "missing or unknown segmentation", "give polygons or an RLE mask")]
    try:
        if rle_area(segmentation_to_rle(segm, h, w)) == 0:
            out.append(Problem(where, "segmentation covers no pixels", "fix or remove the annotation"))
    except DataError as e:
        out.append(Problem(where, f"segmentation does not decode ({e.__cause__ or e})", "re-encode the mask"))
    return out


def _check_mask_folder(root: Path, split: str, max_pixels: int) -> list[Problem]:
    images = list_split(root / "images" / split)
    found = pair_by_stem(images, list_split(root / "masks" / split, LABEL_EXTS))
    out = [Problem(p, "two images share this stem", "keep one file per stem")
           for group in found.duplicates for p in group[1:] if p in images]
    try:
        names: dict[int, str] | None = category_names(read_classes(root))
    except DataError as e:
        out.append(Problem(root / CLASSES_FILE, str(e).split(": ", 1)[-1], "one class name a line"))
        names = None
    out += [Problem(p, "image has no instance mask", f"add masks/{split}/{p.stem}.png or remove the image")
            for p in found.unlabelled]
    out += [Problem(m, "mask has no image", f"add images/{split}/{m.stem}.<ext> or remove the mask")
            for m in found.orphans]
    for image, m in found.pairs:
        wh, why = image_size(image, max_pixels)
        try:
            ids = read_label(m)
        except DataError as e:
            out.append(Problem(m, str(e), "re-export the mask as a single-channel PNG of instance ids"))
            continue
        if why:
            out.append(Problem(image, why, "re-export the image or remove it"))
        elif (ids.shape[1], ids.shape[0]) != wh:
            out.append(Problem(m, f"mask is {ids.shape[1]}x{ids.shape[0]}, image is {wh[0]}x{wh[1]}",
                               "re-export the mask at the image size"))
        if names is not None:
            out += _check_mask_labels(m, int(ids.max(initial=0)), names)
    return out


def _check_mask_labels(mask: Path, n: int, names: dict[int, str]) -> list[Problem]:
    js = mask.with_suffix(".json")
    if not js.is_file():
        return [] if len(names) == 1 else [Problem(mask, f"no {js.name} with the category of each instance",
                                                   f'write {js.name} = {{"labels": [...]}} ({n} ids)')]
    data, bad = _json_or_problem(js)
    if bad:
        return [bad]
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not all(isinstance(c, int) for c in labels):
        return [Problem(js, 'needs {"labels": [category ids]}',
                        "list one integer category id per instance")]
    out = []
    if len(labels) != n:
        out.append(Problem(js, f"{len(labels)} labels but the PNG has instance ids up to {n}",
                           "give exactly one category id per instance id 1..n"))
    unknown = sorted({c for c in labels if c <= 0 or (names and c not in names)})
    if unknown:
        out.append(Problem(js, f"category ids {unknown} are not in classes.txt ({sorted(names)})",
                           "fix the ids or add the category names to classes.txt"))
    return out
