"""Automatic masks: upstream's defaults, option checks, and the grid's masks equal the same clicks by hand."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

pytest.importorskip("segment_anything")

from segment_anything import SamAutomaticMaskGenerator  # noqa: E402

from seglab.errors import ConfigError  # noqa: E402
from seglab.sam import AutoMaskOptions, SamSession, generate_masks  # noqa: E402

from .conftest import H, W, picture  # noqa: E402

KEEP_ALL = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}


def test_defaults_are_upstreams() -> None:
    upstream = inspect.signature(SamAutomaticMaskGenerator).parameters
    for name, value in AutoMaskOptions().upstream().items():
        assert upstream[name].default == value, name
    assert AutoMaskOptions().min_area == 0 == upstream["min_mask_region_area"].default


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"points_per_side": 0}, "--points-per-side"), ({"points_per_batch": 0}, "--points-per-batch"),
    ({"pred_iou_thresh": 1.5}, "--pred-iou-thresh"), ({"stability_score_thresh": -0.1}, "--stability-score-thresh"),
    ({"box_nms_thresh": 2.0}, "--box-nms-thresh"), ({"crop_n_layers": -1}, "--crop-n-layers"),
    ({"min_area": -5}, "--min-area"), ({"crop_overlap_ratio": 1.0}, "--crop-overlap-ratio"),
])
def test_bad_options_name_the_flag(kwargs: dict, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        AutoMaskOptions(**kwargs)


def test_grid_masks_are_the_clicks_of_the_grid(tiny_sam) -> None:
    """A 2 x 2 grid, nothing filtered: each grid point's three candidate masks, as a click would give them."""
    image = picture(0)
    found = generate_masks(tiny_sam, image, AutoMaskOptions(points_per_side=2, **KEEP_ALL))
    session = SamSession(tiny_sam)
    session.set_image(image)
    expected = []
    for y in (0.25 * H, 0.75 * H):  # cell centres of a 2 x 2 grid
        for x in (0.25 * W, 0.75 * W):
            r = session.predict(points=[(x, y)])
            expected += [(m, s) for m, s in zip(r.masks, r.scores, strict=True) if m.any()]
    assert len(found) == len(expected)
    assert list(found.scores) == sorted(found.scores, reverse=True)
    for mask, score in zip(found.masks, found.scores, strict=True):
        match = [s for m, s in expected if (m != mask).mean() < 0.01]
        assert match and min(abs(s - score) for s in match) < 1e-3
    for mask, box in zip(found.masks, found.boxes, strict=True):
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_min_area_and_thresholds_filter(tiny_sam) -> None:
    image = picture(1)
    every = generate_masks(tiny_sam, image, AutoMaskOptions(points_per_side=3, **KEEP_ALL))
    areas = every.masks.sum((1, 2))
    cut = int(np.median(areas))
    big = generate_masks(tiny_sam, image, AutoMaskOptions(points_per_side=3, min_area=cut, **KEEP_ALL))
    assert len(big) == int((areas >= cut).sum()) and (big.masks.sum((1, 2)) >= cut).all()
    none = generate_masks(tiny_sam, image, AutoMaskOptions(points_per_side=3, pred_iou_thresh=1.0))
    assert len(none) == 0 and none.masks.shape == (0, H, W) and none.boxes.shape == (0, 4)


def test_crops_run_the_encoder_once_per_crop(tiny_sam) -> None:
    seen = []
    hook = tiny_sam.image_encoder.register_forward_hook(lambda m, i, o: seen.append(1))
    try:
        generate_masks(tiny_sam, picture(2), AutoMaskOptions(points_per_side=2, crop_n_layers=1, **KEEP_ALL))
    finally:
        hook.remove()
    assert len(seen) == 1 + 4  # the whole image, then 2 x 2 crops
