"""Instance statistics against hand counts of the fixture's rectangles (tests/conftest.py INSTANCE_RECTS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.data.instance.stats import instance_stats
from seglab.data.layout import detect_task

# a: class 1 10x10, class 3 18x16; b: class 2 40x8, class 1 10x10, class 2 10x10; c: nothing
EXPECTED = {"objects": [2, 2, 1], "images": [2, 1, 1], "median_area": [100.0, 210.0, 288.0]}


@pytest.mark.parametrize("layout", ["coco", "masks"])
def test_counts_and_sizes(layout: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue("coco_root" if layout == "coco" else "mask_root")
    s = instance_stats(root, "train")
    assert s["layout"] == layout and s["classes"] == ["circle", "square", "triangle"]
    assert (s["num_images"], s["num_objects"], s["objects_per_image"]["max"]) == (3, 5, 3)
    for key, values in EXPECTED.items():
        assert [row[key] for row in s["per_class"]] == values, key
    assert all(row["small"] == row["objects"] for row in s["per_class"])  # every box is under 32x32
    # sides sqrt(area): 10, 10, 10, sqrt(288), sqrt(320); linear percentiles by hand
    p95 = 288 ** 0.5 + 0.8 * (320 ** 0.5 - 288 ** 0.5)
    assert s["object_size"] == pytest.approx({"p5": 10.0, "p50": 10.0, "p95": p95})


def test_the_cli_detects_instance_data(coco_root: Path, tmp_path: Path, capsys) -> None:
    assert detect_task(coco_root) == "instance"
    assert main(["data", "check", str(coco_root)]) == 0
    assert "instance dataset" in capsys.readouterr().out
    assert main(["data", "stats", str(coco_root), "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "5 objects" in printed and "triangle" in printed
    assert json.loads((tmp_path / "s.json").read_text())["num_objects"] == 5


def test_semantic_folders_stay_semantic(tiny_data: Path) -> None:
    assert detect_task(tiny_data) == "semantic"
