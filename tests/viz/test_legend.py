"""Legends that fit any class count: every class named, the legend inside the picture, ignore shown when present."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seglab.viz import IGNORE_COLOR, class_entries, default_palette, panels_figure, save_panels

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist"]


def _names(n: int) -> list[str]:
    return CAMVID if n == len(CAMVID) else [f"class_{i}_{'x' * (i % 7)}" for i in range(n)]


def _legend_fits(fig) -> list[str]:
    """The legend's texts, after checking that its box lies inside the figure's (drawn, in pixels)."""
    fig.draw_without_rendering()
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert box.x0 >= page.x0 - 0.5 and box.y0 >= page.y0 - 0.5, (box, page)
    assert box.x1 <= page.x1 + 0.5 and box.y1 <= page.y1 + 0.5, (box, page)
    for ax in fig.axes:  # the band sits under the pictures, not over them
        assert ax.get_window_extent().y0 >= box.y1 - 0.5
    return [t.get_text() for t in legend.get_texts()]


@pytest.mark.parametrize("n", [2, 11, 60, 150])
@pytest.mark.parametrize("with_truth", [False, True], ids=["predict-panel", "sample-panel"])
def test_every_class_is_in_a_legend_inside_the_figure(n: int, with_truth: bool, rng) -> None:
    pred = rng.integers(0, n, (24, 32))
    truth = pred.copy() if with_truth else None
    fig = panels_figure([(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), truth, pred)], default_palette(n),
                        class_names=_names(n))
    texts = _legend_fits(fig)
    assert texts == _names(n)  # all of them, in class order; no ignore entry without ignore pixels


def test_camvid_predict_panel_keeps_sky_building_and_bicyclist(tmp_path, rng) -> None:
    """The issue's case: 11 classes under a 2-column predict panel lost the first and last names."""
    pred = rng.integers(0, 11, (36, 48))
    image = rng.integers(0, 255, (36, 48, 3), dtype=np.uint8)
    fig = panels_figure([(image, None, pred)], default_palette(256), class_names=CAMVID)
    texts = _legend_fits(fig)
    assert {"Sky", "Building", "Bicyclist"} <= set(texts)
    out = save_panels(tmp_path / "panel.png", [(image, None, pred)], default_palette(256), class_names=CAMVID)
    with Image.open(out) as im:
        assert im.size[0] == 600 and im.size[1] > 300  # 2 columns x 3 in, plus the legend's rows


def test_ignore_gets_a_legend_entry_and_its_own_colour_in_truth(rng) -> None:
    truth = rng.integers(0, 3, (16, 16))
    truth[:4] = 255
    fig = panels_figure([(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), truth, truth % 255)],
                        default_palette(3), class_names=["bg", "a", "b"])
    assert _legend_fits(fig)[-1] == "ignore (255)"
    truth_cell = fig.axes[1].get_images()[0].get_array()
    assert truth_cell[0, 0].tolist() == list(IGNORE_COLOR)
    assert truth_cell[0, 0].tolist() != default_palette(3)[0].tolist()


def test_class_entries_colours() -> None:
    entries = class_entries(["a", "b", "c"], np.array([[0, 0, 0], [255, 0, 0]], np.uint8), ignore_index=255)
    assert [name for name, _ in entries] == ["a", "b", "c", "ignore (255)"]
    assert entries[1][1] == (1.0, 0.0, 0.0) and entries[2][1] == (1.0, 1.0, 1.0)  # no palette row: white
    assert entries[3][1] == tuple(c / 255 for c in IGNORE_COLOR)
