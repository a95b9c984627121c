"""Mask encoding: binary masks <-> COCO run-length encoding (RLE), polygons rasterised.

Everything goes through faster-coco-eval's mask API, the same code that scores the predictions, so a mask
means the same pixels in the datasets, the converters, the synthetic data and the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faster_coco_eval.core.mask as mask_utils
import numpy as np

from seglab.errors import DataError

# What faster-coco-eval raises for a segmentation that does not fit its image (or is malformed).
_DECODE_ERRORS = (ValueError, TypeError, KeyError)


def encode_mask(mask: np.ndarray) -> dict:
    """Binary HxW mask -> JSON-ready compressed RLE ``{"size": [h, w], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]], "counts": counts.decode() if isinstance(counts, bytes)
            else counts}


def segmentation_to_rle(segm: Any, height: int, width: int) -> dict:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) -> compressed RLE.

    Raises:
        DataError: the segmentation does not decode at ``width`` x ``height`` (the cause is chained).
    """
    try:
        return mask_utils.segmToRle(segm, width, height)
    except _DECODE_ERRORS as e:
        raise DataError(f"segmentation does not decode at {width}x{height}: {e}. Run "
                        "`seglab data check --task instance` on the dataset.") from e


def decode_masks(rles: Sequence[dict], height: int, width: int) -> np.ndarray:
    """Compressed RLEs of one image -> (N, H, W) uint8 masks (N = 0 gives an empty stack)."""
    if not rles:
        return np.zeros((0, height, width), np.uint8)
    return np.ascontiguousarray(mask_utils.decode(list(rles)).transpose(2, 0, 1))


def rle_area(rle: dict) -> int:
    """Number of pixels a compressed RLE covers."""
    return int(mask_utils.area(rle))


def rle_bbox(rle: dict) -> list[float]:
    """COCO ``[x, y, width, height]`` box of a compressed RLE."""
    return [float(v) for v in mask_utils.toBbox(rle)]
