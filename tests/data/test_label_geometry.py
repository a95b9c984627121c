"""The label geometry (object scale) against hand-made label maps with known components."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import label_geometry as G
from seglab.data.label_geometry import components, edge_counts, geometry_table, label_geometry


def _map() -> np.ndarray:
    """100 x 200: class 1 a 20x40 block and a 10x10 block; class 2 a 30-px diagonal line (one component in
    8-connectivity, 30 in 4-connectivity); class 0 the rest; one ignore pixel."""
    lab = np.zeros((100, 200), np.uint8)
    lab[10:30, 20:60] = 1  # 20 rows x 40 columns
    lab[50:60, 100:110] = 1
    for i in range(30):
        lab[60 + i, 150 + i] = 2
    lab[0, 0] = 255
    return lab


def test_components_match_the_hand_made_map() -> None:
    found = components(_map(), 3, 255)
    sides, share = found[1]
    assert sorted(sides) == [10, 40] and share == pytest.approx(800 / 20000)  # largest: the 20x40 block
    assert found[2] == ([30], pytest.approx(30 / 20000))  # the diagonal is one object, 30 px on its long side
    assert found[0][0] == [200]  # the background spans the image (the ignore pixel cuts nothing off)


def test_edges_count_pixels_with_a_neighbour_of_another_value() -> None:
    lab = np.zeros((6, 6), np.uint8)
    lab[2:4, 2:4] = 1  # a 2x2 square: all 4 pixels on its edge; 8 background pixels touch it
    on_edge, total = edge_counts(lab, 2, 255)
    assert on_edge.tolist() == [8, 4] and total.tolist() == [32, 4]


def test_edges_do_not_depend_on_the_row_bands(monkeypatch) -> None:
    lab = np.random.default_rng(0).integers(0, 3, (37, 23)).astype(np.uint8)
    whole = [a.tolist() for a in edge_counts(lab, 3, 255)]
    monkeypatch.setattr(G, "BAND", 23 * 2)  # two rows per band: every band edge is crossed
    assert [a.tolist() for a in edge_counts(lab, 3, 255)] == whole


def test_geometry_percentiles_widths_and_table(tmp_path: Path) -> None:
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(_map()).save(paths[-1])
    g = label_geometry(paths, 3)
    one = g.scale[1]
    assert one.components == 4 and (one.side_p50, one.side_p90) == (25.0, pytest.approx(40.0))
    assert one.frac_p90 == pytest.approx(40 / 200) and one.largest_share == pytest.approx(0.04)
    assert g.boundary[2] == 1.0 and g.width[2] == 2.0  # a 1-px line reads 2 px wide (2 / boundary share)
    header, row0, row1, row2 = geometry_table(["bg", "block", "line"], g)
    assert header[0] == "class" and row1[:5] == ["block", f"{g.width[1]:.1f}", "4", "25", "40"] and row2[1] == "2.0"


def test_large_maps_are_measured_at_a_stride(monkeypatch) -> None:
    monkeypatch.setattr(G, "MAX_SIDE", 50)  # the 200-px map at stride 4
    sides, share = components(_map(), 3, 255)[1]
    assert sorted(sides) == [12, 40] and share == pytest.approx(800 / 20000)  # 10 px rounds up to 3 samples x 4
