"""Mask encoding: binary masks <-> COCO run-length encoding (RLE), polygons rasterised.

Everything goes through faster-coco-eval's mask API, the same code that scores the predictions, so a mask
means the same pixels in the datasets, the converters, the synthetic data and the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faster_coco_eval.core.mask as mask_utils
import numpy as np

from seglab.data.io import is_int, is_number, show_value
from seglab.errors import DataError

# What faster-coco-eval raises for a segmentation that does not fit its image (or is malformed); its
# decoder checks the counts against the mask size, so a bad RLE is an exception, never a memory overrun.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, RuntimeError, MemoryError)
SEGMENTATION_FORMS = "polygons [[x1, y1, x2, y2, ...], ...] or an RLE object {\"size\": [h, w], \"counts\": ...}"


def encode_mask(mask: np.ndarray) -> dict:
    """Binary HxW mask -> JSON-ready compressed RLE ``{"size": [h, w], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]], "counts": counts.decode() if isinstance(counts, bytes)
            else counts}


def segmentation_problem(segm: Any, height: int, width: int) -> str | None:
    """Why ``segm`` is not a COCO segmentation of a ``width`` x ``height`` image; None when it is.

    Checked before anything is decoded: polygons are lists of at least 3 finite (x, y) points no farther
    than one image size outside the image (the rasteriser allocates memory along every edge, so a point at
    1e9 would take gigabytes), RLE ``size`` is ``[height, width]`` and its counts cover exactly
    ``height * width`` pixels.
    """
    if isinstance(segm, list):
        return _polygons_problem(segm, height, width)
    if isinstance(segm, dict):
        return _rle_problem(segm, height, width)
    return f"segmentation must be {SEGMENTATION_FORMS}; got {show_value(segm)}"


def _polygons_problem(polygons: list, height: int, width: int) -> str | None:
    if not polygons:
        return "segmentation is an empty list of polygons (fewer than 3 points)"
    for k, poly in enumerate(polygons):
        if not isinstance(poly, list) or not all(is_number(v) for v in poly):
            return (f"polygon {k} must be a list of finite numbers [x1, y1, x2, y2, ...]; got "
                    f"{show_value(poly)}")
        if len(poly) < 6 or len(poly) % 2:
            return f"polygon {k} has {len(poly)} numbers: fewer than 3 points or an odd count"
        xs, ys = poly[0::2], poly[1::2]
        if min(xs) < -width or max(xs) > 2 * width or min(ys) < -height or max(ys) > 2 * height:
            return f"polygon {k} has points far outside the {width}x{height} image"
    return None


def _rle_problem(rle: dict, height: int, width: int) -> str | None:
    size, counts = rle.get("size"), rle.get("counts")
    if not isinstance(size, list) or len(size) != 2 or not all(is_int(v) for v in size):
        return f"RLE mask size must be [height, width]; got {show_value(size)}"
    if size != [height, width]:
        return f"RLE mask size {size} (h, w) but the image is {height}x{width} (h x w)"
    if isinstance(counts, list):
        if not all(is_int(c) and c >= 0 for c in counts):
            return f"RLE counts must be non-negative integers; got {show_value(counts)}"
    elif isinstance(counts, str):
        counts = string_counts(counts)
        if counts is None:
            return "RLE counts string is malformed (not COCO's compressed RLE)"
    else:
        return f"RLE counts must be a list of integers or a compressed string; got {show_value(counts)}"
    if sum(counts) != height * width:
        return f"RLE counts cover {sum(counts)} pixels, the {height}x{width} image has {height * width}"
    return None


def string_counts(text: str) -> list[int] | None:
    """Run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``); None when malformed.

    Each count is a little-endian base-32 varint in characters ``0``-``o`` (bit 0x20: more follows, bit 0x10
    of the last one: negative); from the third count on each is stored as the difference to the one two
    before. Counts must not be negative.
    """
    counts: list[int] = []
    value = shift = 0
    for ch in text:
        c = ord(ch) - 48
        if not 0 <= c < 64 or shift > 60:
            return None
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:
            continue
        if c & 0x10:
            value -= 1 << shift
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            return None
        counts.append(value)
        value = shift = 0
    return None if shift else counts


def segmentation_to_rle(segm: Any, height: int, width: int, checked: bool = False) -> dict:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) -> compressed RLE.

    ``checked=True`` skips :func:`segmentation_problem` for records ``load_coco`` already checked (a
    dataset's items, every epoch); untrusted input keeps the default.

    Raises:
        DataError: the segmentation is malformed or does not fit ``width`` x ``height``
            (:func:`segmentation_problem`; a decoder error is chained).
    """
    problem = None if checked else segmentation_problem(segm, height, width)
    if problem is None:
        try:
            return mask_utils.segmToRle(segm, width, height)
        except _DECODE_ERRORS as e:
            problem = f"segmentation does not decode at {width}x{height}: {e}"
    raise DataError(f"{problem}. Run `seglab data check --task instance` on the dataset.")


def decode_masks(rles: Sequence[dict], height: int, width: int) -> np.ndarray:
    """Compressed RLEs of one image -> (N, H, W) uint8 masks (N = 0 gives an empty stack).

    Raises:
        DataError: an RLE that does not decode at ``width`` x ``height``.
    """
    if not rles:
        return np.zeros((0, height, width), np.uint8)
    if any(list(r.get("size", [])) != [height, width] for r in rles):
        raise DataError(f"an RLE mask is not of the {height}x{width} image size. Run `seglab data check "
                        "--task instance` on the dataset.")
    try:
        return np.ascontiguousarray(mask_utils.decode(list(rles)).transpose(2, 0, 1))
    except _DECODE_ERRORS as e:
        raise DataError(f"an RLE mask does not decode at {width}x{height}: {e}. Run `seglab data check "
                        "--task instance` on the dataset.") from e


def rle_area(rle: dict) -> int:
    """Number of pixels a compressed RLE covers."""
    return int(mask_utils.area(rle))


def rle_bbox(rle: dict) -> list[float]:
    """COCO ``[x, y, width, height]`` box of a compressed RLE."""
    return [float(v) for v in mask_utils.toBbox(rle)]
