"""Mask encoding against pycocotools, an independent implementation of COCO RLE."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as pycoco_mask

from seglab.data.rle import decode_masks, encode_mask, rle_area, rle_bbox, segmentation_to_rle
from seglab.errors import DataError


def _mask() -> np.ndarray:
    m = np.zeros((7, 9), bool)
    m[1:4, 2:7] = True
    m[5, 0] = True
    return m


def test_encode_mask_is_json_ready_and_matches_pycocotools() -> None:
    m = _mask()
    rle = encode_mask(m)
    ref = pycoco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
    assert rle == {"size": [7, 9], "counts": ref["counts"].decode()}
    assert rle_area(rle) == int(m.sum()) == int(pycoco_mask.area(ref))
    assert rle_bbox(rle) == [0.0, 1.0, 7.0, 5.0] == pycoco_mask.toBbox(ref).tolist()


def test_segmentation_forms_decode_to_the_same_pixels() -> None:
    m = _mask()
    compressed = encode_mask(m)
    flat = np.asfortranarray(m).ravel(order="F").astype(int)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, flat, -1]) != 0))  # alternating runs, zeros first
    uncompressed = {"size": [7, 9], "counts": ([0] if flat[0] else []) + runs.tolist()}
    stack = decode_masks([segmentation_to_rle(s, 7, 9) for s in (compressed, uncompressed)], 7, 9)
    assert stack.shape == (2, 7, 9) and stack.dtype == np.uint8
    np.testing.assert_array_equal(stack[0], m)
    np.testing.assert_array_equal(stack[1], m)
    poly = [[2.0, 1.0, 7.0, 1.0, 7.0, 4.0, 2.0, 4.0]]
    ref = pycoco_mask.decode(pycoco_mask.merge(pycoco_mask.frPyObjects(poly, 7, 9)))
    np.testing.assert_array_equal(decode_masks([segmentation_to_rle(poly, 7, 9)], 7, 9)[0], ref)


def test_empty_stack_and_bad_segmentation() -> None:
    assert decode_masks([], 4, 5).shape == (0, 4, 5)
    # checked before the decoder sees it (tests/data/test_json_validation.py has the many other forms)
    with pytest.raises(DataError, match=r"RLE mask size must be \[height, width\]; got None"):
        segmentation_to_rle({"counts": "x"}, 7, 9)
