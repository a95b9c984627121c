"""Checks of saved predictions (``seglab evaluate --predictions``) before anything is scored.

These files come from other tools, or were edited by hand: they are untrusted input, checked like the
datasets' own files (``data/instance/checks.py``). Every field is checked for type, range, finiteness, size
agreement with its image and, for file names, containment in the predictions folder; the first bad record
is named with its file and index, as a :class:`~seglab.errors.DataError` (the CLI exits 2). A broken RLE
never reaches the C decoder, a NaN or string score never reaches the AP sort, and a ``file_name`` with
``../`` is never opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seglab.data.io import is_int, is_number, show_value
from seglab.data.layout import containment_problem
from seglab.data.rle import segmentation_problem, segmentation_to_rle
from seglab.errors import DataError

DETECTION_FORM = '{"image_id": int, "category_id": int, "score": number, "segmentation": RLE | polygons, "bbox"}'


def check_detections(path: Path, data: Any, sizes: dict[int, tuple[int, int]],
                     cat_ids: set[int], where: str) -> tuple[list[dict], bool]:
    """COCO results checked and made ready to score, and whether they carry masks.

    Args:
        path: the results file (for messages).
        data: its parsed JSON.
        sizes: ``{image id: (height, width)}`` of the split's images.
        cat_ids: the split's category ids.
        where: the data and split, for messages (``data/coco (val)``).

    Returns:
        ``(detections, with_masks)``: each segmentation as compressed RLE; ``with_masks`` False when no
        detection has one (box-only results: box AP only).

    Raises:
        DataError: a record that is not a COCO result of this split, naming the file and the record.
    """
    if not isinstance(data, list):
        raise DataError(f"{path}: COCO results must be a JSON list of {DETECTION_FORM}; got {type(data).__name__}.")
    with_masks = [isinstance(d, dict) and d.get("segmentation") is not None for d in data]
    out = []
    for i, d in enumerate(data):
        problem = _detection_problem(d, sizes, cat_ids, where)
        if problem is None and any(with_masks) and not with_masks[i]:
            problem = ("has no segmentation while other detections have one; give every detection a mask, or "
                       "none (box AP only)")
        if problem:
            raise DataError(f"{path}: detection {i} ({show_value(d, 80)}): {problem}.")
        d = dict(d)
        if with_masks[i]:
            h, w = sizes[d["image_id"]]
            d["segmentation"] = segmentation_to_rle(d["segmentation"], h, w, checked=True)
        out.append(d)
    return out, any(with_masks)


def _detection_problem(d: Any, sizes: dict[int, tuple[int, int]], cat_ids: set[int], where: str) -> str | None:
    """What is wrong with one COCO result (None: nothing)."""
    if not isinstance(d, dict):
        return f"must be an object {DETECTION_FORM}"
    for key in ("image_id", "category_id"):
        if not is_int(d.get(key)):
            return f"{key} must be an integer; got {show_value(d.get(key))}"
    if d["image_id"] not in sizes:
        return f"image_id {d['image_id']} is not an image of {where} (ids {_few(sizes)}); use the dataset's ids"
    if d["category_id"] not in cat_ids:
        return f"category_id {d['category_id']} is not a category of {where} ({sorted(cat_ids)})"
    if not is_number(d.get("score")):
        return f"score must be a finite number; got {show_value(d.get('score'))}"
    box = d.get("bbox")
    if box is not None and (not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box)
                            or box[2] < 0 or box[3] < 0):
        return f"bbox must be 4 finite numbers [x, y, width, height], width and height >= 0; got {show_value(box)}"
    segm = d.get("segmentation")
    if segm is None:
        return None if box is not None else "has neither a segmentation nor a bbox"
    h, w = sizes[d["image_id"]]
    return segmentation_problem(segm, h, w)


def _few(ids: dict[int, Any]) -> str:
    shown = sorted(ids)[:5]
    return ", ".join(map(str, shown)) + (", ..." if len(ids) > len(shown) else "")


def check_panoptic_annotations(json_path: Path, record: Any) -> dict[str, dict]:
    """A COCO panoptic prediction's annotations by file stem, every field checked.

    Each annotation needs a ``file_name`` that stays inside the prediction's folder (no absolute path, no
    ``..``, no link out) and ``segments_info`` entries with a unique integer ``id`` > 0, an integer
    ``category_id`` and, when given, a finite ``score``.

    Raises:
        DataError: naming the file and the annotation (and segment).
    """
    anns = record.get("annotations") if isinstance(record, dict) else None
    if not isinstance(anns, list):
        raise DataError(f"{json_path}: not a COCO panoptic file (needs a list 'annotations' of {{file_name, "
                        "segments_info}}). Write it as `seglab predict` does, or in COCO's panoptic format.")
    by_stem: dict[str, dict] = {}
    for k, a in enumerate(anns):
        problem = _annotation_problem(json_path.parent, a)
        if problem:
            raise DataError(f"{json_path}: annotation {k} ({show_value(a, 100)}): {problem}.")
        stem = Path(a["file_name"]).stem
        if stem in by_stem:
            raise DataError(f"{json_path}: two annotations for {stem} ({a['file_name']}); keep one per image.")
        by_stem[stem] = a
    return by_stem


def _annotation_problem(folder: Path, a: Any) -> str | None:
    if not isinstance(a, dict) or not isinstance(a.get("segments_info"), list):
        return "needs file_name and a list segments_info"
    problem = containment_problem(folder, a.get("file_name"))
    if problem:
        return f"{problem}; seglab reads prediction PNGs only from inside the prediction's folder"
    seen: set[int] = set()
    for j, s in enumerate(a["segments_info"]):
        if not isinstance(s, dict) or not all(is_int(s.get(f)) for f in ("id", "category_id")):
            return f"segment {j} needs integer id and category_id; got {show_value(s)}"
        if s["id"] <= 0 or s["id"] >= 256 ** 3:
            return f"segment {j} has id {s['id']}: ids are 1..16777215 (the PNG's RGB code; 0 is unlabelled)"
        if s["id"] in seen:
            return f"segment {j} repeats id {s['id']}; segment ids are unique within an image"
        seen.add(s["id"])
        if "score" in s and not is_number(s["score"]):
            return f"segment {j} has score {show_value(s['score'])}; a score must be a finite number"
    return None
