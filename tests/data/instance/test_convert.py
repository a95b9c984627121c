"""The instance-mask PNG <-> COCO JSON converters (`seglab data convert ...`: tests/cli/test_data_cmd.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as pycoco_mask

from seglab.data.instance.convert import coco_to_masks, masks_to_coco
from seglab.data.io import read_label
from seglab.errors import DataError


def test_masks_to_coco_matches_pycocotools_and_round_trips(coco_root: Path, tmp_path: Path, instance_spec) -> None:
    H, W, RECTS = instance_spec.H, instance_spec.W, instance_spec.RECTS
    data = json.loads((coco_root / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["circle", "square", "triangle"]
    assert len(data["annotations"]) == 5
    for ann in data["annotations"]:
        im = next(i for i in data["images"] if i["id"] == ann["image_id"])
        stem = Path(im["file_name"]).stem
        cat, (y0, y1, x0, x1) = RECTS[stem][len([a for a in data["annotations"] if a["image_id"] == im["id"]
                                                 and a["id"] < ann["id"]])]
        expected = np.zeros((H, W), np.uint8)
        expected[y0:y1, x0:x1] = 1
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(pycoco_mask.decode(rle), expected)  # independent decoder
        assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0] and ann["area"] == expected.sum()
        assert ann["category_id"] == cat
    out = tmp_path / "back"
    summary = coco_to_masks(coco_root, "train", out)
    assert summary == {"images": 3, "instances": 5, "skipped_crowd": 0, "hidden": 0}
    for stem in RECTS:
        np.testing.assert_array_equal(read_label(out / f"{stem}.png"),
                                      read_label(coco_root / "masks" / "train" / f"{stem}.png"))
        assert json.loads((out / f"{stem}.json").read_text()) == json.loads(
            (coco_root / "masks" / "train" / f"{stem}.json").read_text())


def test_converters_never_overwrite(coco_root: Path) -> None:
    with pytest.raises(DataError, match="already exists"):
        masks_to_coco(coco_root, "train", coco_root / "annotations" / "instances_train.json")
    with pytest.raises(DataError, match="already holds PNG"):
        coco_to_masks(coco_root, "train", coco_root / "masks" / "train")


def test_hidden_instances_are_renumbered(coco_root: Path, tmp_path: Path, instance_spec) -> None:
    path = coco_root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    first = next(a for a in data["annotations"] if a["image_id"] == 1)  # image "a", instance 1
    cover = dict(first, id=99, category_id=2, bbox=[0, 0, instance_spec.W, instance_spec.H],
                 segmentation=[[0, 0, instance_spec.W, 0, instance_spec.W, 20, 0, 20]])  # hides instance 1
    data["annotations"].append(cover)
    path.write_text(json.dumps(data))
    summary = coco_to_masks(coco_root, "train", tmp_path / "out")
    assert summary["hidden"] == 1 and summary["instances"] == 5
    ids = read_label(tmp_path / "out" / "a.png")
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2]  # no gap left by the hidden instance
    assert json.loads((tmp_path / "out" / "a.json").read_text()) == {"labels": [3, 2]}


def test_progress_callback_counts_images(coco_root: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    masks_to_coco(coco_root, "train", tmp_path / "x.json", callback=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    calls.clear()
    coco_to_masks(coco_root, "train", tmp_path / "m", callback=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
