"""Prompt files: the boxes and points a user (or another tool) gives for ``seglab annotate`` / ``seglab sam``.

CSV, one prompt a row, with a header naming the columns (any order; unknown columns are an error)::

    image,class,object,x1,y1,x2,y2,x,y,label
    street.jpg,car,,10,20,110,90,,,          a box: one object
    street.jpg,person,p1,,,,,140,60,1        a point on person p1 ...
    street.jpg,person,p1,,,,,150,30,0        ... and one off it (label 0): one object, two points

``image`` is the file name (or its stem) among the inputs; ``class`` defaults to ``object``; rows sharing an
``object`` value on one image are one object (a box and points may combine); a row without ``object`` is
an object of its own. A row fills either the four box columns or ``x``, ``y`` (``label`` 1 = on the object,
the default, 0 = not on it). JSON holds the same as a list: ``[{"image": "street.jpg", "class": "car",
"box": [10, 20, 110, 90], "points": [[140, 60], [150, 30, 0]]}, ...]`` (a point's third number is its label).
Every problem names the file and line (CSV) or item (JSON).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seglab.data.io import is_number, read_json, show_value
from seglab.errors import DataError

COLUMNS = ("image", "class", "object", "x1", "y1", "x2", "y2", "x", "y", "label")
LABELS = {"1": 1, "0": 0, "pos": 1, "neg": 0, "+": 1, "-": 0, "positive": 1, "negative": 0, "true": 1, "false": 0}
DEFAULT_CLASS = "object"


@dataclass
class ObjectPrompt:
    """The prompts of one object on one image, and where they were read (``file:line`` for messages)."""

    image: str
    class_name: str = DEFAULT_CLASS
    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    where: str = ""


def read_prompts(path: str | os.PathLike) -> list[ObjectPrompt]:
    """The objects of a CSV or JSON prompt file (by suffix: ``.json``, else CSV), in file order.

    Raises:
        DataError: an unreadable file, unknown columns, or a row / item that is not one box or one point
            (naming ``file:line`` or ``file: item i``, what is wrong and the expected form).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prompt file not found. Give a CSV or JSON file of boxes / points.")
    return _read_json(path) if path.suffix.lower() == ".json" else _read_csv(path)


def _read_csv(path: Path) -> list[ObjectPrompt]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read it as CSV text ({e}). Save it as UTF-8 CSV.") from e
    if not rows or not any(c.strip() for c in rows[0]):
        raise DataError(f"{path}:1: no header. The first line names the columns: {','.join(COLUMNS)}.")
    header = [c.strip().lower() for c in rows[0]]
    unknown = [c for c in header if c not in COLUMNS]
    if unknown or "image" not in header:
        problem = f"unknown column(s) {unknown}" if unknown else "no 'image' column"
        raise DataError(f"{path}:1: {problem}. Columns may be: {', '.join(COLUMNS)}.")
    objects: dict[tuple[str, str], ObjectPrompt] = {}
    out: list[ObjectPrompt] = []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{n}"
        if len(row) > len(header):
            raise DataError(f"{where}: {len(row)} fields but the header names {len(header)} columns.")
        cells = {k: v.strip() for k, v in zip(header, row, strict=False)}
        _add_row(cells, where, objects, out)
    return out


def _add_row(cells: dict[str, str], where: str, objects: dict[tuple[str, str], ObjectPrompt],
             out: list[ObjectPrompt]) -> None:
    image = cells.get("image", "")
    if not image:
        raise DataError(f"{where}: the image column is empty. Name the image file the prompt belongs to.")
    box_cells = [cells.get(k, "") for k in ("x1", "y1", "x2", "y2")]
    point_cells = [cells.get(k, "") for k in ("x", "y")]
    has_box, has_point = any(box_cells), any(point_cells) or bool(cells.get("label"))
    if has_box == has_point:
        raise DataError(f"{where}: fill either x1,y1,x2,y2 (a box) or x,y[,label] (a point); this row has "
                        f"{'both' if has_box else 'neither'}.")
    key = cells.get("object") or f"\0{where}"
    obj = objects.get((image, key))
    name = cells.get("class") or DEFAULT_CLASS
    if obj is None:
        obj = objects[(image, key)] = ObjectPrompt(image, name, where=where)
        out.append(obj)
    elif cells.get("class") and name != obj.class_name:
        raise DataError(f"{where}: object {key!r} is {obj.class_name!r} at {obj.where} but {name!r} here; one "
                        "object has one class.")
    if has_box:
        _set_box(obj, [_number(v, k, where) for v, k in zip(box_cells, ("x1", "y1", "x2", "y2"), strict=True)],
                 where)
    else:
        x, y = (_number(v, k, where) for v, k in zip(point_cells, ("x", "y"), strict=True))
        label = cells.get("label") or "1"
        if label.lower() not in LABELS:
            raise DataError(f"{where}: label {label!r}; use 1 (on the object) or 0 (not on it).")
        obj.points.append((x, y))
        obj.labels.append(LABELS[label.lower()])


def _number(text: str, column: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise DataError(f"{where}: {column} is {text!r}, not a number (pixels).")
    return v


def _set_box(obj: ObjectPrompt, box: list[float], where: str) -> None:
    if obj.box is not None:
        raise DataError(f"{where}: a second box for the object of {obj.where}; an object has one box (give "
                        "each box its own object, or add points to it).")
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        raise DataError(f"{where}: box {box} is empty or reversed; give x1 < x2 and y1 < y2 (pixels).")
    obj.box = (x1, y1, x2, y2)


def _read_json(path: Path) -> list[ObjectPrompt]:
    data = read_json(path)
    items = data.get("prompts") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of prompts [{{\"image\": ..., \"box\": [x1, y1, x2, y2]}}, ...] "
                        f"(or {{\"prompts\": [...]}}); got {show_value(data)}.")
    return [_json_item(item, f"{path}: item {i}") for i, item in enumerate(items)]


def _json_item(item: Any, where: str) -> ObjectPrompt:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str) or not item["image"]:
        raise DataError(f"{where}: must be an object with an \"image\" file name; got {show_value(item)}.")
    unknown = sorted(set(item) - {"image", "class", "box", "points"})
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; use image, class, box, points.")
    name = item.get("class", DEFAULT_CLASS)
    if not isinstance(name, str) or not name:
        raise DataError(f"{where}: class must be a non-empty name; got {show_value(name)}.")
    obj = ObjectPrompt(item["image"], name, where=where)
    box = item.get("box")
    if box is not None:
        if not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box):
            raise DataError(f"{where}: box must be 4 numbers [x1, y1, x2, y2]; got {show_value(box)}.")
        _set_box(obj, [float(v) for v in box], where)
    for p in item.get("points") or []:
        if not isinstance(p, list) or len(p) not in (2, 3) or not all(is_number(v) for v in p) or (
                len(p) == 3 and p[2] not in (0, 1)):
            raise DataError(f"{where}: a point is [x, y] or [x, y, label] with label 1 or 0; got {show_value(p)}.")
        obj.points.append((float(p[0]), float(p[1])))
        obj.labels.append(int(p[2]) if len(p) == 3 else 1)
    if obj.box is None and not obj.points:
        raise DataError(f"{where}: no box and no points; give \"box\": [x1, y1, x2, y2] or \"points\".")
    return obj


def match_images(objects: list[ObjectPrompt], images: list[Path], source: str) -> dict[Path, list[ObjectPrompt]]:
    """Each input image with its objects (by file name, else stem); every object must name an input.

    Raises:
        DataError: an object naming no input, or a name two inputs share (naming the row).
    """
    by_name: dict[str, list[Path]] = {}
    for p in images:
        by_name.setdefault(p.name, []).append(p)
        if p.stem != p.name:
            by_name.setdefault(p.stem, []).append(p)
    out: dict[Path, list[ObjectPrompt]] = {p: [] for p in images}
    for obj in objects:
        found = by_name.get(obj.image) or by_name.get(Path(obj.image).name) or []
        if len(set(found)) != 1:
            what = "names no input image" if not found else f"matches {len(set(found))} inputs"
            raise DataError(f"{obj.where or source}: image {obj.image!r} {what}. Name one of the images given "
                            "on the command line (file name or stem).")
        out[found[0]].append(obj)
    return out
