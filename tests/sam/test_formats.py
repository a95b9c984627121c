"""SAM's masks in seglab's formats, read back by seglab's readers (and pycocotools): hand-made masks, no SAM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as pycoco

from seglab.data.instance.checks import load_coco
from seglab.data.io import read_label
from seglab.data.layout import read_instance_labels
from seglab.sam.formats import CocoDocument, Objects, label_map, save_review, write_instances, write_label_map

H, W = 10, 12
NAMES = ["car", "person"]


def _objects() -> Objects:
    """Three overlapping rectangles: A (car, 0.6), B (person, 0.9) over A's right half, C (car, 0.1) inside B."""
    masks = np.zeros((3, H, W), bool)
    masks[0, 1:6, 1:8] = True
    masks[1, 2:9, 5:11] = True
    masks[2, 3:5, 6:9] = True  # entirely under B, which scores higher: hidden, dropped
    return Objects(masks, np.array([0, 1, 0]), np.array([0.6, 0.9, 0.1], np.float32))


def _expected_ids() -> np.ndarray:
    ids = np.zeros((H, W), np.int64)
    ids[1:6, 1:8] = 2  # A, second by score
    ids[2:9, 5:11] = 1  # B on top
    return ids


def test_instances_png_and_json_are_the_mask_folder_layout(tmp_path: Path) -> None:
    png = tmp_path / "masks" / "train" / "a.png"
    assert write_instances(png, _objects(), NAMES) == 2
    assert np.array_equal(read_label(png), _expected_ids())
    assert read_instance_labels(png.with_suffix(".json")) == [2, 1]  # B is person (id 2), A car (id 1)
    record = json.loads(png.with_suffix(".json").read_text())
    assert record["classes"] == ["person", "car"] and record["scores"] == [0.9, 0.6]


def test_label_map_paints_classes_by_score(tmp_path: Path) -> None:
    ids = _expected_ids()
    want = np.select([ids == 1, ids == 2], [2, 1], 0)  # id 1 (B, person) -> class 2; id 2 (A, car) -> class 1
    assert np.array_equal(label_map(_objects()), want)
    write_label_map(tmp_path / "l.png", _objects())
    assert np.array_equal(read_label(tmp_path / "l.png"), want)
    assert not label_map(Objects.empty(H, W)).any()


def test_coco_document_passes_the_checker_and_decodes_with_pycocotools(tmp_path: Path) -> None:
    doc = CocoDocument(NAMES)
    doc.add("a.png", _objects())
    doc.add("b.png", Objects.empty(H, W))
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "images" / name)
    doc.write(tmp_path / "coco.json")
    index = load_coco(tmp_path / "coco.json", tmp_path / "images")
    assert index.categories == {1: "car", 2: "person"}
    assert [im["file_name"] for im in index.images.values()] == ["a.png", "b.png"]
    anns = [a for _, a in index.annotations]
    assert [(a["image_id"], a["category_id"], a["score"]) for a in anns] == [(1, 2, 0.9), (1, 1, 0.6)]
    ids = _expected_ids()
    for a, k in zip(anns, (1, 2), strict=True):
        decoded = pycoco.decode(a["segmentation"])
        assert np.array_equal(decoded.astype(bool), ids == k)
        assert a["area"] == int((ids == k).sum())
        ys, xs = np.nonzero(ids == k)
        assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_review_picture(tmp_path: Path) -> None:
    image = np.zeros((H, W, 3), np.uint8)
    save_review(tmp_path / "r.png", image, _objects(), NAMES)
    with Image.open(tmp_path / "r.png") as im:
        assert im.size[0] >= W and im.size[1] >= H  # enlarged so the labels stay readable
    save_review(tmp_path / "empty.png", image, Objects.empty(H, W), NAMES)
    assert (tmp_path / "empty.png").is_file()
