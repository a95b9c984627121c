"""Panoptic converters: both round trips, each output read back by the existing readers and doctors,
semantic -> panoptic by connected components or instance data, and refused inputs and outputs."""

from __future__ import annotations

import json
import shutil
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as pycoco_mask

from seglab.data.io import read_label, write_label
from seglab.data.panoptic.checks import check_panoptic_dataset
from seglab.data.panoptic.convert import (
    coco_panoptic_to_seglab,
    panoptic_to_instance,
    panoptic_to_semantic,
    seglab_to_coco_panoptic,
)
from seglab.data.panoptic.dataset import open_panoptic_split
from seglab.data.panoptic.from_semantic import connected_components, semantic_to_panoptic
from seglab.data.panoptic.synthetic import make_panoptic
from seglab.data.semantic.dataset import SegmentationFolder
from seglab.errors import ConfigError, DataError

H, W = 6, 8
CLASSES = ["sky", "road", "car", "person"]
LABEL = np.array([[0, 0, 0, 0, 0, 0, 0, 255],
                  [0, 0, 0, 0, 0, 0, 0, 0],
                  [1, 2, 2, 2, 1, 1, 1, 1],
                  [1, 2, 2, 2, 1, 1, 1, 1],
                  [1, 1, 1, 1, 1, 2, 2, 2],
                  [3, 3, 1, 1, 1, 2, 2, 2]], np.uint8)
INST = np.zeros((H, W), np.uint16)
INST[2:4, 1:4] = 7
INST[4:6, 5:8] = 300


def _simple(root: Path) -> Path:
    """A hand-made 8 x 6 image: sky, road, cars 7 and 300 (16-bit ids), a person crowd, one void pixel."""
    for sub in ("images", "labels", "instances"):
        (root / sub / "train").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        root / "images" / "train" / "a.png")
    Image.fromarray(LABEL).save(root / "labels" / "train" / "a.png")
    Image.fromarray(INST).save(root / "instances" / "train" / "a.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "panoptic.json").write_text(json.dumps({"things": ["car", "person"]}))
    return root


def _coco_doc(root: Path) -> dict:
    return json.loads((root / "annotations" / "panoptic_train.json").read_text())


def _ids(png: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]  # the COCO formula, written out here


def test_simple_to_coco_by_hand(tmp_path: Path) -> None:
    seglab_to_coco_panoptic(_simple(tmp_path / "s"), tmp_path / "c")
    doc = _coco_doc(tmp_path / "c")
    assert doc["categories"] == [{"id": 1, "name": "sky", "isthing": 0, "supercategory": "stuff"},
                                 {"id": 2, "name": "road", "isthing": 0, "supercategory": "stuff"},
                                 {"id": 3, "name": "car", "isthing": 1, "supercategory": "thing"},
                                 {"id": 4, "name": "person", "isthing": 1, "supercategory": "thing"}]
    assert doc["images"] == [{"id": 1, "file_name": "a.png", "width": W, "height": H}]
    infos = {s["id"]: s for s in doc["annotations"][0]["segments_info"]}
    assert doc["annotations"][0]["file_name"] == "a.png"
    # Car ids stay the instance ids; sky, road and the person crowd get 65536 + class, 65536 + K + class.
    assert infos[7] == {"id": 7, "category_id": 3, "iscrowd": 0, "area": 6, "bbox": [1, 2, 3, 2]}
    assert infos[300] == {"id": 300, "category_id": 3, "iscrowd": 0, "area": 6, "bbox": [5, 4, 3, 2]}
    assert infos[65536 + 4 + 3] == {"id": 65543, "category_id": 4, "iscrowd": 1, "area": 2, "bbox": [0, 5, 2, 1]}
    assert infos[65536]["area"] == 15 and infos[65536]["bbox"] == [0, 0, 8, 2]
    ids = _ids(tmp_path / "c" / "annotations" / "panoptic_train" / "a.png")
    assert ids[0, 7] == 0 and (ids == 65537).sum() == infos[65537]["area"] == 48 - 15 - 1 - 12 - 2
    assert (tmp_path / "c" / "images" / "train" / "a.png").read_bytes() == \
        (tmp_path / "s" / "images" / "train" / "a.png").read_bytes()
    assert check_panoptic_dataset(tmp_path / "c", decode=True).errors == []


def test_simple_coco_simple_round_trip_is_the_identity(tmp_path: Path) -> None:
    for name, src in (("hand", _simple(tmp_path / "s")),
                      ("synth", make_panoptic(tmp_path / "p", n_train=5, n_val=2, size=40, seed=2))):
        seglab_to_coco_panoptic(src, tmp_path / f"{name}_c")
        coco_panoptic_to_seglab(tmp_path / f"{name}_c", tmp_path / f"{name}_s")
        back = tmp_path / f"{name}_s"
        files = sorted(p.relative_to(src) for p in src.rglob("*.png"))
        assert files == sorted(p.relative_to(back) for p in back.rglob("*.png"))
        for rel in files:
            if rel.parts[0] == "images":
                assert (src / rel).read_bytes() == (back / rel).read_bytes()
            else:
                np.testing.assert_array_equal(read_label(src / rel), read_label(back / rel))
        assert (back / "classes.txt").read_text().split() == (src / "classes.txt").read_text().split()
        assert set(json.loads((back / "panoptic.json").read_text())["things"]) == \
            set(json.loads((src / "panoptic.json").read_text())["things"])


def _foreign_coco(root: Path, thing_ids: tuple[int, int] = (7, 300)) -> Path:
    """COCO panoptic with ids of its own: categories 5, 7, 11, 40; segments 1000, 70000, cars, crowd 90000."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "annotations" / "panoptic_train").mkdir(parents=True)
    shutil.copy(_simple(root.parent / f"{root.name}_src") / "images" / "train" / "a.png", root / "images" / "train")
    ids = np.zeros((H, W), np.int64)
    ids[LABEL == 0], ids[LABEL == 1], ids[LABEL == 3] = 1000, 70000, 90000
    ids[INST == 7], ids[INST == 300] = thing_ids
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb).save(root / "annotations" / "panoptic_train" / "a.png")
    infos = [{"id": 1000, "category_id": 5}, {"id": 70000, "category_id": 7},
             {"id": thing_ids[0], "category_id": 11}, {"id": thing_ids[1], "category_id": 11},
             {"id": 90000, "category_id": 40, "iscrowd": 1}]
    cats = [{"id": 5, "name": "sky", "isthing": 0}, {"id": 7, "name": "road", "isthing": 0},
            {"id": 11, "name": "car", "isthing": 1}, {"id": 40, "name": "person", "isthing": 1}]
    doc = {"images": [{"id": 3, "file_name": "a.png", "width": W, "height": H}],
           "annotations": [{"image_id": 3, "file_name": "a.png", "segments_info": infos}], "categories": cats}
    (root / "annotations" / "panoptic_train.json").write_text(json.dumps(doc))
    return root


def _segments(root: Path) -> set:
    _, ids, segments = open_panoptic_split(root, "train").load(0)
    names = open_panoptic_split(root, "train").classes
    return {(names[s["category"]], s["iscrowd"], tuple(np.flatnonzero(ids == s["id"]))) for s in segments}


def test_coco_simple_coco_keeps_masks_categories_and_instance_ids(tmp_path: Path) -> None:
    coco = _foreign_coco(tmp_path / "c")
    coco_panoptic_to_seglab(coco, tmp_path / "s")
    np.testing.assert_array_equal(read_label(tmp_path / "s" / "labels" / "train" / "a.png"), LABEL)
    np.testing.assert_array_equal(read_label(tmp_path / "s" / "instances" / "train" / "a.png"), INST)
    assert (tmp_path / "s" / "classes.txt").read_text() == "sky\nroad\ncar\nperson\n"
    assert json.loads((tmp_path / "s" / "panoptic.json").read_text()) == {"things": ["car", "person"]}
    seglab_to_coco_panoptic(tmp_path / "s", tmp_path / "c2")
    assert _segments(coco) == _segments(tmp_path / "c2")
    infos = _coco_doc(tmp_path / "c2")["annotations"][0]["segments_info"]
    assert {s["id"] for s in infos if s["category_id"] == 3} == {7, 300}  # instance ids kept
    # ids over 16 bits cannot be instance ids: the cars are numbered 1, 2 in segment order
    coco_panoptic_to_seglab(_foreign_coco(tmp_path / "big", (70001, 70002)), tmp_path / "big_s")
    inst = read_label(tmp_path / "big_s" / "instances" / "train" / "a.png")
    np.testing.assert_array_equal(inst, np.where(INST == 7, 1, np.where(INST == 300, 2, 0)))


def test_panoptic_to_semantic_is_read_by_the_semantic_dataset(tmp_path: Path) -> None:
    n = panoptic_to_semantic(_foreign_coco(tmp_path / "c"), tmp_path / "sem")
    assert n == {"images": 1, "segments": 5}
    ds = SegmentationFolder(tmp_path / "sem", "train")
    assert ds.classes == CLASSES
    np.testing.assert_array_equal(ds[0][1].numpy(), LABEL)  # void 255, the crowd keeps "person"
    assert not (tmp_path / "sem" / "instances").exists()


def test_panoptic_to_instance_is_read_by_the_instance_readers(tmp_path: Path) -> None:
    from seglab.data.instance.checks import check_instance_dataset
    from seglab.data.instance.coco import open_instance_split

    panoptic_to_instance(_simple(tmp_path / "s"), tmp_path / "inst")
    assert check_instance_dataset(tmp_path / "inst", decode=True) == []
    doc = json.loads((tmp_path / "inst" / "annotations" / "instances_train.json").read_text())
    assert doc["categories"] == [{"id": 3, "name": "car"}, {"id": 4, "name": "person"}]  # things only
    expected = {(3, 0): [INST == 7, INST == 300], (4, 1): [LABEL == 3]}
    got: dict = {}
    for a in doc["annotations"]:
        rle = dict(a["segmentation"], counts=a["segmentation"]["counts"].encode())
        got.setdefault((a["category_id"], a["iscrowd"]), []).append(pycoco_mask.decode(rle).astype(bool))
        assert a["area"] == pycoco_mask.decode(rle).sum()
    assert got.keys() == expected.keys()
    for key, masks in expected.items():
        np.testing.assert_array_equal(np.array(got[key]), np.array(masks))
    ds = open_instance_split(tmp_path / "inst", "train")
    _, target = ds[0]
    assert ds.classes == ["background", "car", "person"]
    assert target["labels"].tolist() == [1, 1]  # the crowd is kept out of the targets
    assert target["boxes"].tolist() == [[1, 2, 4, 4], [5, 4, 8, 6]]


# --- semantic -> panoptic ---------------------------------------------------------------------------------


def _semantic(root: Path, label: np.ndarray, names: list[str]) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.fromarray(np.zeros((*label.shape, 3), np.uint8)).save(root / "images" / "train" / "a.png")
    Image.fromarray(label.astype(np.uint8)).save(root / "labels" / "train" / "a.png")
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    return root


# road 0, car 1, tree 2 (stuff); the cars: one alone, two touching at a corner (they merge), one 2-pixel bar
CAR_LABEL = np.array([[1, 1, 0, 0, 0, 0, 0, 0],
                      [1, 1, 0, 0, 1, 1, 0, 2],
                      [0, 0, 0, 0, 1, 1, 0, 2],
                      [0, 0, 0, 0, 0, 0, 1, 1],
                      [0, 1, 1, 0, 0, 0, 1, 1],
                      [0, 0, 0, 0, 0, 0, 0, 255]], np.uint8)


def test_semantic_to_panoptic_by_connected_components(tmp_path: Path) -> None:
    src = _semantic(tmp_path / "sem", CAR_LABEL, ["road", "car", "tree"])
    n = semantic_to_panoptic(src, tmp_path / "pan", ["car"])
    assert n == {"images": 1, "instances": 3}
    inst = read_label(tmp_path / "pan" / "instances" / "train" / "a.png")
    expected = np.zeros_like(inst)
    expected[0:2, 0:2] = 1
    expected[1:3, 4:6] = expected[3:5, 6:8] = 2  # touching at a corner: one instance (documented)
    expected[4, 1:3] = 3
    np.testing.assert_array_equal(inst, expected)
    np.testing.assert_array_equal(read_label(tmp_path / "pan" / "labels" / "train" / "a.png"), CAR_LABEL)
    assert json.loads((tmp_path / "pan" / "panoptic.json").read_text()) == {"things": ["car"]}
    report = check_panoptic_dataset(tmp_path / "pan", decode=True)
    assert report.errors == [] and report.warnings == []


def test_semantic_to_panoptic_min_area_makes_specks_a_crowd(tmp_path: Path) -> None:
    src = _semantic(tmp_path / "sem", CAR_LABEL, ["road", "car", "tree"])
    n = semantic_to_panoptic(src, tmp_path / "pan", ["car"], min_area=3)
    assert n == {"images": 1, "instances": 2}  # the 2-pixel bar is under 3 pixels
    inst = read_label(tmp_path / "pan" / "instances" / "train" / "a.png")
    expected = np.zeros_like(inst)
    expected[0:2, 0:2] = 1
    expected[1:3, 4:6] = expected[3:5, 6:8] = 2
    np.testing.assert_array_equal(inst, expected)
    _, _, segments = open_panoptic_split(tmp_path / "pan", "train").load(0)
    assert [s["iscrowd"] for s in segments if s["isthing"]] == [0, 0, 1]  # the bar: the car crowd
    assert check_panoptic_dataset(tmp_path / "pan", decode=True).errors == []


def test_semantic_to_panoptic_with_instance_masks(tmp_path: Path) -> None:
    src = _semantic(tmp_path / "sem", CAR_LABEL, ["road", "car", "tree"])
    inst_root = tmp_path / "inst"
    (inst_root / "images" / "train").mkdir(parents=True)
    shutil.copy(src / "images" / "train" / "a.png", inst_root / "images" / "train" / "a.png")
    ids = np.zeros(CAR_LABEL.shape, np.uint8)
    ids[1:3, 4:6] = 1  # the two touching cars, now apart
    ids[3:5, 6:8] = 2
    ids[0:3, 0:3] = 3  # a box around the lone car, over road too: only its car pixels count
    write_label(inst_root / "masks" / "train" / "a.png", ids)
    (inst_root / "masks" / "train" / "a.json").write_text(json.dumps({"labels": [1, 1, 1]}))
    (inst_root / "classes.txt").write_text("background\nCar\n")  # names match case-insensitively
    semantic_to_panoptic(src, tmp_path / "pan", ["car"], instances=inst_root)
    inst = read_label(tmp_path / "pan" / "instances" / "train" / "a.png")
    expected = np.zeros_like(inst)
    expected[1:3, 4:6], expected[3:5, 6:8], expected[0:2, 0:2] = 1, 2, 3
    np.testing.assert_array_equal(inst, expected)  # the bar at row 4 has no instance: it is the car crowd
    assert check_panoptic_dataset(tmp_path / "pan", decode=True).errors == []
    _, _, segments = open_panoptic_split(tmp_path / "pan", "train").load(0)
    assert [s["iscrowd"] for s in segments if s["isthing"]] == [0, 0, 0, 1]


def test_connected_components_match_a_flood_fill(rng: np.random.Generator) -> None:
    def flood(mask: np.ndarray) -> np.ndarray:
        out, n = np.zeros(mask.shape, np.int32), 0
        for y, x in zip(*np.nonzero(mask), strict=True):
            if out[y, x]:
                continue
            n += 1
            out[y, x], todo = n, deque([(y, x)])
            while todo:
                cy, cx = todo.popleft()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not out[ny, nx]:
                            out[ny, nx] = n
                            todo.append((ny, nx))
        return out

    for density in (0.2, 0.45, 0.6):
        mask = rng.random((23, 31)) < density
        labels, n = connected_components(mask)
        ref = flood(mask)
        assert n == ref.max()
        np.testing.assert_array_equal(labels, ref)  # both number components in raster order
    assert connected_components(np.zeros((3, 4), bool))[1] == 0


def test_camvid_semantic_to_panoptic_passes_the_doctor(shared_datasets: Path, tmp_path: Path) -> None:
    camvid = shared_datasets / "camvid"
    src = tmp_path / "camvid3"
    for sub in ("images", "labels"):
        (src / sub / "train").mkdir(parents=True)
    for image in sorted((camvid / "images" / "train").iterdir())[:3]:
        shutil.copy(image, src / "images" / "train" / image.name)
        shutil.copy(camvid / "labels" / "train" / f"{image.stem}.png", src / "labels" / "train")
    shutil.copy(camvid / "classes.txt", src / "classes.txt")
    n = semantic_to_panoptic(src, tmp_path / "pan", ["Car", "Pedestrian", "Bicyclist"])
    assert n["images"] == 3 and n["instances"] > 0
    assert check_panoptic_dataset(tmp_path / "pan", decode=True).errors == []
    split = open_panoptic_split(tmp_path / "pan", "train")
    assert [split.classes[c] for c in split.thing_classes] == ["Car", "Pedestrian", "Bicyclist"]


# --- refusals ---------------------------------------------------------------------------------------------


def test_outputs_are_new_folders_outside_the_input(tmp_path: Path) -> None:
    src = _simple(tmp_path / "s")
    with pytest.raises(DataError, match="inside the input dataset"):
        seglab_to_coco_panoptic(src, src / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists and is not empty"):
        panoptic_to_semantic(src, tmp_path / "full")
    with pytest.raises(DataError, match="no panoptic split to convert"):
        coco_panoptic_to_seglab(src, tmp_path / "o")  # simple data is not COCO


def test_a_failure_leaves_no_output(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "p", n_train=3, n_val=0, size=32)
    path = src / "instances" / "train" / "panoptic_train_00002.png"
    inst = read_label(path).copy()
    inst[0, 0] = 77  # on sky
    Image.fromarray(inst.astype(np.uint8)).save(path)
    seen = []
    with pytest.raises(DataError, match=r"panoptic_train_00002\.png.*instance ids \[77\] lie on stuff"):
        seglab_to_coco_panoptic(src, tmp_path / "out", callback=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3)]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_bad_semantic_inputs(tmp_path: Path) -> None:
    src = _semantic(tmp_path / "sem", CAR_LABEL, ["road", "car", "tree"])
    with pytest.raises(ConfigError, match="--things: \\['bus'\\].*road, car, tree"):
        semantic_to_panoptic(src, tmp_path / "o", ["bus"])
    label = CAR_LABEL.copy()
    label[0, 3] = 9
    Image.fromarray(label).save(src / "labels" / "train" / "a.png")
    with pytest.raises(DataError, match=r"labels/train/a\.png: values \[9\] are not classes 0\.\.2"):
        semantic_to_panoptic(src, tmp_path / "o", ["car"])
    with pytest.raises(DataError, match="classes.txt: missing"):
        (src / "classes.txt").unlink()
        semantic_to_panoptic(src, tmp_path / "o", ["car"])
