"""The instance doctor: one broken COCO JSON or mask folder per check; every problem named with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.instance.checks import check_instance_dataset, raise_first_problem
from seglab.data.io import DEFAULT_MAX_PIXELS, write_label
from seglab.errors import DataError


def _edit(key: str):
    def images(d: dict) -> None:
        d["images"][1]["id"] = d["images"][0]["id"]

    def missing(d: dict) -> None:
        d["images"][0]["file_name"] = "nope.png"

    edits = {
        "outside": (lambda d: d["annotations"][0].update(bbox=[40, 2, 20, 10]), "outside the 48x40 image"),
        "zero": (lambda d: d["annotations"][0].update(bbox=[5, 2, 0, 10]), "zero-area"),
        "size": (lambda d: d["annotations"][0]["segmentation"].update(size=[20, 20]), "mask size [20, 20]"),
        "category": (lambda d: d["annotations"][0].update(category_id=7), "category id 7 is not in"),
        "dup": (images, "duplicate image id"),
        "missing": (missing, "missing on disk"),
        "polygon": (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 5]]), "fewer than 3 points"),
        "empty": (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 1, 1, 1, 1]]), "covers no pixels"),
    }
    return edits[key]


@pytest.mark.parametrize("key", ["outside", "zero", "size", "category", "dup", "missing", "polygon", "empty"])
def test_doctor_finds_each_coco_problem(coco_root: Path, key: str) -> None:
    assert check_instance_dataset(coco_root, None, DEFAULT_MAX_PIXELS) == []
    path = coco_root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    edit, message = _edit(key)
    edit(data)
    path.write_text(json.dumps(data))
    problems = check_instance_dataset(coco_root, ["train"], DEFAULT_MAX_PIXELS)
    assert len(problems) >= 1 and any(message in p.problem for p in problems), problems
    assert all(p.fix for p in problems)


def test_doctor_names_json_line_and_column(coco_root: Path) -> None:
    path = coco_root / "annotations" / "instances_train.json"
    path.write_text('{\n  "images": [\n    {"id": 1,,}\n  ]\n}\n')
    [problem] = check_instance_dataset(coco_root, ["train"], DEFAULT_MAX_PIXELS)
    assert "line 3, column 14" in problem.problem and Path(problem.path) == path


def test_doctor_mask_folder_checks(mask_root: Path, instance_spec) -> None:
    H, W = instance_spec.H, instance_spec.W
    assert check_instance_dataset(mask_root, ["train"], DEFAULT_MAX_PIXELS) == []
    masks = mask_root / "masks" / "train"
    (masks / "a.json").unlink()
    (masks / "b.json").write_text(json.dumps({"labels": [1, 2]}))  # b has 3 instances
    write_label(masks / "c.png", np.zeros((H // 2, W), np.uint8))
    Image.new("RGB", (W, H)).save(mask_root / "images" / "train" / "d.png")
    problems = {(Path(p.path).name, p.problem.split(" ")[0]) for p in
                check_instance_dataset(mask_root, None, DEFAULT_MAX_PIXELS)}
    assert problems == {("a.png", "no"), ("b.json", "2"), ("c.png", "mask"), ("d.png", "image")}
    # the same words as the semantic doctor (seglab.data.file_checks.inspect_image reads both)
    assert any(p.problem.startswith("48x40 = 1,920 pixels is above the 100 limit")
               for p in check_instance_dataset(mask_root, None, 100))


def test_mask_without_image_and_unknown_category(mask_root: Path) -> None:
    masks = mask_root / "masks" / "train"
    write_label(masks / "z.png", np.zeros((4, 4), np.uint8))
    (masks / "b.json").write_text(json.dumps({"labels": [1, 9, 2]}))
    found = {(Path(p.path).name, p.problem) for p in check_instance_dataset(mask_root, ["train"])}
    assert ("z.png", "mask has no image") in found
    assert ("b.json", "category ids [9] are not in classes.txt ([1, 2, 3])") in found


def test_no_annotations_and_missing_split(tmp_path: Path) -> None:
    [problem] = check_instance_dataset(tmp_path)
    assert problem.problem == "no instance annotations found"
    [problem] = check_instance_dataset(tmp_path, ["val"])
    assert "split 'val' has neither" in problem.problem


def test_raise_first_problem_names_the_report(coco_root: Path) -> None:
    raise_first_problem([], coco_root)  # nothing to raise
    path = coco_root / "annotations" / "instances_train.json"
    path.write_text("{}")
    with pytest.raises(DataError, match=r"1 problem\(s\).*seglab data check --task instance"):
        raise_first_problem(check_instance_dataset(coco_root, ["train"]), coco_root)
