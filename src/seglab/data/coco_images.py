"""The ``images[]`` records of a COCO file, checked once for both tasks that read COCO JSON.

COCO instances (``data/instance/checks.py``) and COCO panoptic (``data/panoptic/format.py``) list their images
the same way, so one checker says what an image record must hold and both doctors report it in the same
words: an integer ``id`` given once, positive integer ``width`` x ``height`` under the decompression-bomb
limit, and a ``file_name`` that stays inside the split's image folder. No image file is opened here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seglab.data.io import is_int, show_value
from seglab.data.layout import containment_problem

IMAGE_FIX = 'give each image {"id": <int>, "file_name": <path>, "width": <int>, "height": <int>}'


def image_record_problem(i: int, im: Any, seen: set[int], images_dir: Path | None,
                         max_pixels: int) -> tuple[str, str] | None:
    """``(problem, fix)`` of ``images[i]``, or None when the record is usable.

    ``seen`` collects every id given (broken records included, so a later record reusing the id is still a
    duplicate) and is updated here. ``images_dir=None`` is for readers that never open the images (scoring
    against ground truth): file names are then not checked.
    """
    if not isinstance(im, dict) or not is_int(im.get("id")):
        return f"images[{i}] must be an object with id, file_name, width, height; got {show_value(im)}", IMAGE_FIX
    iid, w, h = im["id"], im.get("width"), im.get("height")
    where = f"images[{i}] (id {iid})"
    if iid in seen:
        return (f"{where}: duplicate image id {iid} ({show_value(im.get('file_name'))})",
                "give every image a unique id")
    seen.add(iid)
    if not (is_int(w) and is_int(h) and w > 0 and h > 0):
        return (f"{where}: width and height must be positive integers; got width={show_value(w)}, "
                f"height={show_value(h)}", "write the image size in pixels")
    if w * h > max_pixels:
        return (f"{where}: claims {w}x{h} = {w * h:,} pixels, above the {max_pixels:,} limit "
                "(decompression-bomb guard)", f"fix width/height (trusted file: --max-pixels {w * h})")
    problem = containment_problem(images_dir, im.get("file_name")) if images_dir is not None else None
    if problem:
        return (f"{where}: {problem}", f"give file_name relative to {images_dir} and keep the image inside it "
                "(copy it in instead of linking to it)")
    return None
