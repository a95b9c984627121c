"""Panoptic pictures: shades per instance within the class hue, outlines, void left alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.errors import DataError
from seglab.viz import colorize_panoptic, default_palette, overlay_panoptic, save_panoptic_panels, segment_colors

PALETTE = np.array([[200, 0, 0], [0, 100, 0], [0, 0, 0]], dtype=np.uint8)


def _scene() -> tuple[np.ndarray, list[dict]]:
    """8x8: stuff (class 1) on the left, two touching things of class 0 on the right, void in a corner."""
    ids = np.zeros((8, 8), np.int64)
    ids[:, :4] = 1
    ids[:4, 4:] = 2
    ids[4:, 4:] = 3
    ids[0, 0] = 0
    segments = [{"id": 1, "category": 1, "isthing": False}, {"id": 2, "category": 0, "isthing": True},
                {"id": 3, "category": 0, "isthing": True}]
    return ids, segments


def test_instances_of_a_class_get_distinct_shades_of_its_colour() -> None:
    _, segments = _scene()
    colors = segment_colors(segments, PALETTE)
    assert colors[1].tolist() == [0, 100, 0]  # stuff keeps the class colour
    assert colors[2].tolist() == [200, 0, 0]  # the first thing too
    second = colors[3].astype(int)
    assert second.tolist() != [200, 0, 0]
    # a lighter shade of the same hue: red stays the largest channel, green and blue rise together
    assert second[0] >= second[1] == second[2] > 0


def test_colorize_outlines_segments_and_keeps_void_black() -> None:
    ids, segments = _scene()
    rgb = colorize_panoptic(ids, segments, PALETTE)
    assert rgb[0, 0].tolist() == [0, 0, 0]  # void
    assert rgb[3, 5].tolist() == [255, 255, 255]  # row 3 borders the second thing below it
    assert rgb[2, 5].tolist() == [200, 0, 0]  # inside the first thing
    assert rgb[6, 1].tolist() == [0, 100, 0]  # inside the stuff


def test_overlay_blends_labelled_pixels_only() -> None:
    ids, segments = _scene()
    image = np.full((8, 8, 3), 100, np.uint8)
    out = overlay_panoptic(image, ids, segments, PALETTE, alpha=0.5)
    assert out[0, 0].tolist() == [100, 100, 100]  # void: the photo as it is
    assert out[6, 1].tolist() == [50, 100, 50]  # (100 + [0, 100, 0]) / 2
    with pytest.raises(DataError, match="alpha"):
        overlay_panoptic(image, ids, segments, PALETTE, alpha=2.0)
    with pytest.raises(DataError, match="differ in size"):
        overlay_panoptic(np.zeros((4, 4, 3), np.uint8), ids, segments, PALETTE)


def test_panels_file(tmp_path: Path) -> None:
    ids, segments = _scene()
    image = np.full((8, 8, 3), 100, np.uint8)
    path = save_panoptic_panels(tmp_path / "p.png", [(image, (ids, segments), (ids, segments[:2]))],
                                default_palette(4), ["thing", "stuff", "x", "y"])
    assert Image.open(path).size[0] > 100
    with pytest.raises(DataError):
        save_panoptic_panels(tmp_path / "q.png", [], default_palette(4), ["a"])
