"""The panoptic doctor: one hand-broken folder per finding, in both layouts, and the training preflight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.io import read_label
from seglab.data.panoptic.checks import PanopticReport, check_panoptic_dataset
from seglab.data.panoptic.convert import seglab_to_coco_panoptic
from seglab.data.panoptic.dataset import open_panoptic_split
from seglab.data.panoptic.format import ids_to_rgb, read_panoptic_png
from seglab.data.panoptic.synthetic import make_panoptic
from seglab.data.preflight import preflight_panoptic
from seglab.errors import DataError


@pytest.fixture
def simple(tmp_path: Path) -> Path:
    """Synthetic panoptic data in the simple layout: 3 train + 1 val images of 32 px."""
    return make_panoptic(tmp_path / "simple", n_train=3, n_val=1, size=32, seed=1)


@pytest.fixture
def coco(simple: Path, tmp_path: Path) -> Path:
    """The same data in the COCO panoptic layout."""
    seglab_to_coco_panoptic(simple, tmp_path / "coco")
    return tmp_path / "coco"


def _rows(found: list, root: Path) -> list[tuple[str, str]]:
    return [(Path(p.path).relative_to(root).as_posix() if Path(p.path).is_absolute() else str(p.path), p.problem)
            for p in found]


def _only(report: PanopticReport, root: Path, kind: str = "errors") -> tuple[str, str]:
    rows = _rows(getattr(report, kind), root)
    other = "warnings" if kind == "errors" else "errors"
    assert len(rows) == 1 and not getattr(report, other), (rows, getattr(report, other))
    return rows[0]


def test_clean_data_has_no_finding(simple: Path, coco: Path) -> None:
    for root in (simple, coco):
        report = check_panoptic_dataset(root, decode=True)
        assert report.errors == [] and report.warnings == [] and report.images == 4


# --- simple layout ----------------------------------------------------------------------------------------


def test_missing_and_extra_files(simple: Path) -> None:
    (simple / "labels" / "train" / "panoptic_train_00001.png").unlink()
    assert _only(check_panoptic_dataset(simple), simple) == (
        "images/train/panoptic_train_00001.png", "image has no labels PNG")
    (simple / "images" / "train" / "panoptic_train_00001.png").unlink()
    assert _only(check_panoptic_dataset(simple), simple) == (
        "instances/train/panoptic_train_00001.png", "instances PNG has no image")


def test_instance_id_spanning_two_classes_names_file_id_and_classes(simple: Path) -> None:
    path = simple / "instances" / "train" / "panoptic_train_00000.png"
    label, inst = read_label(simple / "labels" / "train" / "panoptic_train_00000.png"), read_label(path)
    first = int(inst.max())
    other_thing = ({3, 4, 5} - set(label[inst == first].tolist())).pop()
    label = label.copy()
    label[inst == first] = np.where(np.arange((inst == first).sum()) % 2, label[inst == first], other_thing)
    Image.fromarray(label.astype(np.uint8)).save(simple / "labels" / "train" / "panoptic_train_00000.png")
    where, problem = _only(check_panoptic_dataset(simple), simple)
    names = ("circle", "square", "triangle")
    assert where == "instances/train/panoptic_train_00000.png"
    assert f"instance id {first} spans several classes" in problem
    assert sum(n in problem for n in names) == 2


def test_instance_ids_on_stuff_pixels_and_bad_label_values(simple: Path) -> None:
    path = simple / "instances" / "train" / "panoptic_train_00002.png"
    inst, label = read_label(path).copy(), read_label(simple / "labels" / "train" / "panoptic_train_00002.png")
    sky = np.argwhere(label == 0)[0]
    inst[tuple(sky)] = 9
    Image.fromarray(inst.astype(np.uint8)).save(path)
    where, problem = _only(check_panoptic_dataset(simple), simple)
    assert where.endswith("panoptic_train_00002.png")
    assert "instance ids [9] lie on stuff or void pixels (sky)" in problem
    label = read_label(simple / "labels" / "val" / "panoptic_val_00000.png").copy()
    label[0, 0] = 17
    Image.fromarray(label).save(simple / "labels" / "val" / "panoptic_val_00000.png")
    rows = _rows(check_panoptic_dataset(simple, ["val"]).errors, simple)
    assert rows == [("instances/val/panoptic_val_00000.png", "label values [17] are not classes 0..5 (nor void 255)")]


def test_size_mismatch(simple: Path) -> None:
    path = simple / "instances" / "val" / "panoptic_val_00000.png"
    Image.fromarray(read_label(path)[:30].astype(np.uint8)).save(path)
    assert _only(check_panoptic_dataset(simple), simple) == (
        "instances/val/panoptic_val_00000.png", "is 32x30, its image panoptic_val_00000.png is 32x32")


def test_class_files(simple: Path) -> None:
    (simple / "panoptic.json").write_text(json.dumps({"things": ["circle", "dog"]}))
    where, problem = _only(check_panoptic_dataset(simple), simple)
    assert where == "panoptic.json" and "thing classes ['dog'] are not in classes.txt" in problem
    (simple / "classes.txt").unlink()
    assert _only(check_panoptic_dataset(simple), simple) == ("classes.txt", "missing")


def test_missing_split_folder_and_no_panoptic_data(simple: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(simple / "instances" / "val")
    assert _only(check_panoptic_dataset(simple, ["val"]), simple) == (
        "instances/val", "split folder instances/val/ is missing")
    (tmp_path / "empty").mkdir()
    assert _only(check_panoptic_dataset(tmp_path / "empty"), tmp_path / "empty")[1] == "no panoptic annotations found"


def test_a_thing_class_without_any_instance_is_a_warning(simple: Path) -> None:
    for path in (simple / "instances" / "train").iterdir():  # every thing pixel of train becomes crowd
        Image.fromarray(np.zeros_like(read_label(path), np.uint8)).save(path)
    report = check_panoptic_dataset(simple, ["train"])
    assert report.errors == [] and len(report.warnings) >= 1
    assert all("has no instance id in any image of train: all its pixels are crowd" in w.problem
               for w in report.warnings)


# --- COCO layout ------------------------------------------------------------------------------------------


def _edit(coco: Path, change) -> None:
    path = coco / "annotations" / "panoptic_train.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _png(coco: Path, n: int = 0) -> Path:
    return coco / "annotations" / "panoptic_train" / f"panoptic_train_{n:05d}.png"


def test_png_ids_and_segments_info_agree_both_ways(coco: Path) -> None:
    _edit(coco, lambda d: d["annotations"][0]["segments_info"].pop(0))
    where, problem = _only(check_panoptic_dataset(coco), coco)
    assert where == "annotations/panoptic_train/panoptic_train_00000.png"
    assert "are in the PNG but not in segments_info" in problem
    ids = read_panoptic_png(_png(coco, 1))
    gone = int(ids.max())
    ids[ids == gone] = int(ids.min())  # a listed segment no longer in the PNG
    Image.fromarray(ids_to_rgb(ids)).save(_png(coco, 1))
    rows = _rows(check_panoptic_dataset(coco).errors, coco)
    assert ("annotations/panoptic_train/panoptic_train_00001.png",
            f"segments_info lists ids [{gone}] that the PNG does not hold") in rows


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["annotations"][0]["segments_info"][0].update(category_id=99), "category id 99 is not in 'categories'"),
    (lambda d: d["annotations"][0]["segments_info"][0].update(id=0), "segment id 0 is void"),
    (lambda d: d["annotations"][0]["segments_info"].append(dict(d["annotations"][0]["segments_info"][0])),
     "is listed twice (two segments would overlap)"),
    (lambda d: d["categories"][3].pop("isthing"), "isthing must be 0 or 1"),
    (lambda d: d["annotations"].pop(1), "has no entry in 'annotations'"),
    (lambda d: d["images"][0].update(width=40), "PNG is 32x32, the JSON says 40x32"),
])
def test_json_errors(coco: Path, change, expected: str) -> None:
    _edit(coco, change)
    rows = _rows(check_panoptic_dataset(coco).errors, coco)
    assert len(rows) >= 1 and any(expected in problem for _, problem in rows), rows


def test_stuff_split_in_two_crowd_stuff_and_wrong_area_bbox_are_warnings(coco: Path) -> None:
    ids = read_panoptic_png(_png(coco))
    sky = 65536  # seglab's id of the stuff class 0 (sky); the synthetic images all have sky at the top
    ys, xs = np.nonzero(ids == sky)
    ids[ys[0], xs[0]] = 4242
    Image.fromarray(ids_to_rgb(ids)).save(_png(coco))

    area = int((ids == sky).sum())

    def change(d: dict) -> None:
        infos = d["annotations"][0]["segments_info"]
        s = next(s for s in infos if s["id"] == sky)
        s["area"] = area + 5
        infos.append({"id": 4242, "category_id": s["category_id"], "iscrowd": 1, "area": 1,
                      "bbox": [int(xs[0]), int(ys[0]), 1, 1]})
        infos[-2]["bbox"] = [0, 0, 99, 99]

    _edit(coco, change)
    report = check_panoptic_dataset(coco)
    problems = [p.problem for p in report.warnings]
    assert report.errors == []
    assert any("stuff category 'sky' has 2 segments in one image" in p for p in problems)
    assert any("iscrowd 1 on stuff category 'sky'" in p for p in problems)
    assert f"segment {sky}: area {area + 5} in segments_info, {area} pixels in the PNG" in problems
    assert any("bbox [0, 0, 99, 99] in segments_info" in p for p in problems)


def test_missing_and_extra_files_coco(coco: Path) -> None:
    _png(coco, 2).rename(coco / "annotations" / "panoptic_train" / "stray.png")
    (coco / "images" / "train" / "panoptic_train_00001.png").unlink()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(coco / "images" / "train" / "unlisted.png")
    report = check_panoptic_dataset(coco)
    errors, warnings = _rows(report.errors, coco), _rows(report.warnings, coco)
    assert ("images/train/panoptic_train_00001.png", "image listed in panoptic_train.json (id 2) is missing on disk") \
        in errors
    assert any(w == "annotations/panoptic_train/panoptic_train_00002.png" and "not found" in p for w, p in errors)
    assert ("images/train/unlisted.png", "image not listed in panoptic_train.json: nothing reads it") in warnings
    assert ("annotations/panoptic_train/stray.png", "PNG not referenced by panoptic_train.json: nothing reads it") \
        in warnings


def test_a_gray_png_is_refused(coco: Path) -> None:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(_png(coco))
    where, problem = _only(check_panoptic_dataset(coco), coco)
    assert where.endswith("panoptic_train_00000.png") and "mode L" in problem


# --- preflight --------------------------------------------------------------------------------------------


def test_preflight_refuses_errors_and_remembers_clean_splits(simple: Path, monkeypatch) -> None:
    import seglab.data.preflight as preflight

    calls = []
    real = preflight.check_panoptic_dataset
    monkeypatch.setattr(preflight, "check_panoptic_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    split = open_panoptic_split(simple, "train")
    preflight_panoptic(split)
    preflight_panoptic(split)
    assert len(calls) == 1  # the second run on unchanged files is remembered
    path = simple / "instances" / "train" / "panoptic_train_00000.png"
    inst = read_label(path).copy()
    inst[0, :] = 200  # instance ids on the sky row
    Image.fromarray(inst.astype(np.uint8)).save(path)
    with pytest.raises(DataError, match=r"panoptic_train_00000\.png: instance ids \[200\] lie on stuff"):
        preflight_panoptic(split)
    assert len(calls) == 2
