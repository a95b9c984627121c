"""Untrusted JSON is checked before use: every malformed variant is one DataError naming the file and field.

Each COCO variant breaks one field of the valid ``coco_root`` JSON (H x W = 40 x 48); every reader
(``load_coco``, ``CocoInstances`` with and without the doctor, ``coco_to_masks``) must raise a DataError
naming ``instances_train.json`` and the record, and the doctor must report it instead of raising.
``pytest.raises(DataError)`` fails on any other exception type, so no KeyError / TypeError / MemoryError
escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as pycoco_mask

from seglab.data.instance.checks import check_instance_dataset, load_coco
from seglab.data.instance.coco import CocoInstances
from seglab.data.instance.convert import coco_to_masks, masks_to_coco
from seglab.data.instance.masks import InstanceMaskFolder
from seglab.data.io import read_json
from seglab.data.layout import read_instance_labels
from seglab.data.rle import segmentation_to_rle, string_counts
from seglab.errors import DataError

ANN = Path("annotations/instances_train.json")
NAN = float("nan")
Edit = Callable[[dict], Any]


def _set(*path: Any, value: Any) -> Edit:
    """An edit that sets ``data[path[0]][path[1]]... = value``."""
    def edit(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _drop(*path: Any) -> Edit:
    def edit(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


def _replace(value: Any) -> Edit:
    return lambda data: value


def _dup(kind: str) -> Edit:
    def edit(data: dict) -> None:
        data[kind][1]["id"] = data[kind][0]["id"]
    return edit


def _rle(**changes: Any) -> Edit:
    def edit(data: dict) -> None:
        data["annotations"][0]["segmentation"].update(changes)
    return edit


# name -> (edit, regex the message must match after the file name)
COCO_VARIANTS: dict[str, tuple[Edit, str]] = {
    # the document
    "list_document": (_replace([1, 2]), r"not a COCO instances file"),
    "string_document": (_replace("images"), r"not a COCO instances file"),
    "no_images": (_drop("images"), r"not a COCO instances file"),
    "images_dict": (_set("images", value={"id": 1}), r"not a COCO instances file"),
    "annotations_null": (_set("annotations", value=None), r"not a COCO instances file"),
    "categories_string": (_set("categories", value="cat"), r"not a COCO instances file"),
    # images
    "image_number": (_set("images", 0, value=7), r"images\[0\] must be an object with id, file_name, width, "
                                                 r"height; got 7"),
    "image_string": (_set("images", 0, value="a.png"), r"images\[0\] must be an object"),
    "image_no_id": (_drop("images", 0, "id"), r"images\[0\] must be an object"),
    "image_id_string": (_set("images", 0, "id", value="1"), r"images\[0\] must be an object"),
    "image_id_bool": (_set("images", 0, "id", value=True), r"images\[0\] must be an object"),
    "image_id_float": (_set("images", 0, "id", value=1.0), r"images\[0\] must be an object"),
    "image_duplicate_id": (_dup("images"), r"images\[1\] \(id 1\): duplicate image id 1"),
    "no_file_name": (_drop("images", 0, "file_name"), r"images\[0\] \(id 1\): file_name must be a non-empty"),
    "file_name_number": (_set("images", 0, "file_name", value=7), r"file_name must be a non-empty path"),
    "file_name_empty": (_set("images", 0, "file_name", value=""), r"file_name must be a non-empty path"),
    "file_name_list": (_set("images", 0, "file_name", value=["a.png"]), r"file_name must be a non-empty"),
    "no_width": (_drop("images", 0, "width"), r"images\[0\] \(id 1\): width and height must be positive "
                                              r"integers; got width=None, height=40"),
    "no_height": (_drop("images", 0, "height"), r"height=None"),
    "width_string": (_set("images", 0, "width", value="48"), r"width='48'"),
    "width_negative": (_set("images", 0, "width", value=-48), r"width=-48"),
    "width_zero": (_set("images", 0, "width", value=0), r"width=0"),
    "width_float": (_set("images", 0, "width", value=48.5), r"width=48.5"),
    "width_nan": (_set("images", 0, "width", value=NAN), r"width=nan"),
    "width_bool": (_set("images", 0, "width", value=True), r"width=True"),
    "height_null": (_set("images", 0, "height", value=None), r"height=None"),
    "terabyte_image": (lambda d: d["images"][0].update(width=10**6, height=10**6),
                       r"images\[0\] \(id 1\): claims 1000000x1000000 = 1,000,000,000,000 pixels, above the"),
    # categories
    "category_number": (_set("categories", 0, value=5), r"categories\[0\] must be an object with an integer id"),
    "category_no_id": (_drop("categories", 0, "id"), r"categories\[0\] must be an object with an integer id"),
    "category_id_string": (_set("categories", 0, "id", value="1"), r"categories\[0\] must be an object"),
    "category_id_zero": (_set("categories", 0, "id", value=0), r"categories\[0\] .*id > 0 \(0 is the background"),
    "category_name_number": (_set("categories", 0, "name", value=3), r"categories\[0\] \(id 1\): name must be text"),
    "category_duplicate_id": (_dup("categories"), r"categories\[1\]: duplicate category id 1"),
    # annotations
    "annotation_list": (_set("annotations", 0, value=[]), r"annotations\[0\] must be an object with id, image_id"),
    "annotation_null": (_set("annotations", 0, value=None), r"annotations\[0\] must be an object"),
    "annotation_no_id": (_drop("annotations", 0, "id"), r"annotations\[0\] \(id None, image id 1\): id must be an"),
    "annotation_id_string": (_set("annotations", 0, "id", value="1"), r"id must be an integer; got '1'"),
    "annotation_duplicate_id": (_dup("annotations"), r"annotations\[1\] \(id 1, image id 1\): duplicate annotation"),
    "no_image_id": (_drop("annotations", 0, "image_id"), r"image_id must be an integer; got None"),
    "image_id_float_ref": (_set("annotations", 0, "image_id", value=1.5), r"image_id must be an integer; got 1.5"),
    "unknown_image_id": (_set("annotations", 0, "image_id", value=999),
                         r"annotations\[0\] \(id 1, image id 999\): image id 999 is not in 'images'"),
    "category_id_null": (_set("annotations", 0, "category_id", value=None), r"category_id must be an integer"),
    "unknown_category_id": (_set("annotations", 0, "category_id", value=42), r"category id 42 is not in"),
    "iscrowd_two": (_set("annotations", 0, "iscrowd", value=2), r"iscrowd must be 0 or 1; got 2"),
    "iscrowd_string": (_set("annotations", 0, "iscrowd", value="0"), r"iscrowd must be 0 or 1; got '0'"),
    "bbox_string": (_set("annotations", 0, "bbox", value="1,2,3,4"), r"bbox must be 4 numbers"),
    "bbox_three": (_set("annotations", 0, "bbox", value=[1, 2, 3]), r"bbox must be 4 numbers"),
    "bbox_string_items": (_set("annotations", 0, "bbox", value=["1", 2, 3, 4]), r"bbox must be 4 numbers"),
    "bbox_nan": (_set("annotations", 0, "bbox", value=[1, 2, NAN, 4]), r"bbox must be 4 numbers"),
    "area_string": (_set("annotations", 0, "area", value="big"), r"area must be a number; got 'big'"),
    # segmentations
    "no_segmentation": (_drop("annotations", 0, "segmentation"), r"segmentation must be polygons .*; got None"),
    "segmentation_number": (_set("annotations", 0, "segmentation", value=5), r"segmentation must be polygons"),
    "segmentation_string": (_set("annotations", 0, "segmentation", value="1 2 3"), r"segmentation must be"),
    "no_polygons": (_set("annotations", 0, "segmentation", value=[]), r"empty list of polygons"),
    "empty_polygon": (_set("annotations", 0, "segmentation", value=[[]]), r"polygon 0 has 0 numbers"),
    "two_points": (_set("annotations", 0, "segmentation", value=[[1, 1, 5, 5]]), r"fewer than 3 points"),
    "odd_polygon": (_set("annotations", 0, "segmentation", value=[[1, 1, 5, 5, 9]]), r"an odd count"),
    "flat_polygon": (_set("annotations", 0, "segmentation", value=[1, 1, 9, 1, 9, 9]),
                     r"polygon 0 must be a list of finite numbers"),
    "string_polygon": (_set("annotations", 0, "segmentation", value=["1,1,9,1,9,9"]), r"polygon 0 must be a list"),
    "string_points": (_set("annotations", 0, "segmentation", value=[["1", "1", "9", "1", "9", "9"]]),
                      r"polygon 0 must be a list of finite numbers"),
    "nan_point": (_set("annotations", 0, "segmentation", value=[[1, 1, 9, NAN, 9, 9]]), r"finite numbers"),
    "far_point": (_set("annotations", 0, "segmentation", value=[[0, 0, 1e9, 0, 0, 1e9]]),
                  r"polygon 0 has points far outside the 48x40 image"),
    "second_polygon_bad": (_set("annotations", 0, "segmentation", value=[[1, 1, 9, 1, 9, 9], [1, 2]]),
                           r"polygon 1 has 2 numbers"),
    "rle_no_size": (_drop("annotations", 0, "segmentation", "size"),
                    r"RLE mask size must be \[height, width\]; got None"),
    "rle_size_string": (_rle(size="40x48"), r"RLE mask size must be \[height, width\]; got '40x48'"),
    "rle_size_short": (_rle(size=[40]), r"RLE mask size must be \[height, width\]"),
    "rle_size_floats": (_rle(size=[40.0, 48.0]), r"RLE mask size must be \[height, width\]"),
    "rle_size_wrong": (_rle(size=[20, 20]), r"RLE mask size \[20, 20\] \(h, w\) but the image is 40x48"),
    "rle_no_counts": (_drop("annotations", 0, "segmentation", "counts"),
                      r"RLE counts must be a list of integers or a compressed string; got None"),
    "rle_counts_number": (_rle(counts=5), r"RLE counts must be a list of integers or a compressed string"),
    "rle_counts_negative": (_rle(counts=[1920, -5, 5]), r"RLE counts must be non-negative integers"),
    "rle_counts_strings": (_rle(counts=["1920"]), r"RLE counts must be non-negative integers"),
    "rle_counts_short": (_rle(counts=[100, 20]), r"RLE counts cover 120 pixels, the 40x48 image has 1920"),
    "rle_counts_long": (_rle(counts=[0, 10**12]), r"RLE counts cover 1000000000000 pixels"),
    "rle_string_garbage": (_rle(counts="zzzz"), r"RLE counts string is malformed"),
    "rle_string_short": (_rle(counts="04"), r"RLE counts cover 4 pixels"),
    "rle_string_unicode": (_rle(counts="é"), r"RLE counts string is malformed"),
    "rle_string_overflow": (_rle(counts="0" + "k" * 40), r"RLE counts string is malformed"),
}


def _break(coco_root: Path, edit: Edit) -> Path:
    path = coco_root / ANN
    data = json.loads(path.read_text())
    result = edit(data)
    path.write_text(json.dumps(data if result is None else result))  # NaN is written as NaN (Python reads it)
    return path


@pytest.mark.parametrize("variant", sorted(COCO_VARIANTS))
def test_malformed_coco_is_one_data_error_in_every_reader(coco_root: Path, tmp_path: Path, variant: str) -> None:
    edit, words = COCO_VARIANTS[variant]
    path = _break(coco_root, edit)
    # the file, then the record (or the document), then the words of the variant
    expected = rf"instances_train\.json: (?=not a COCO|(images|categories|annotations)\[\d+\]).*{words}"
    readers = {
        "load_coco": lambda: load_coco(path, coco_root / "images/train"),
        "CocoInstances(check=False)": lambda: CocoInstances(coco_root, "train", check=False),
        "CocoInstances": lambda: CocoInstances(coco_root, "train"),
        "coco_to_masks": lambda: coco_to_masks(coco_root, "train", tmp_path / "out"),
    }
    for read in readers.values():  # a failure's traceback shows which lambda
        with pytest.raises(DataError, match=expected):
            read()
    assert not (tmp_path / "out").exists()  # coco_to_masks refused before allocating or writing anything
    problems = check_instance_dataset(coco_root, ["train"])  # reported, never raised
    assert any(Path(p.path) == path and re.search(words, p.problem) and p.fix for p in problems), problems


def test_coco_variants_all_start_from_a_clean_file(coco_root: Path) -> None:
    assert check_instance_dataset(coco_root, ["train"]) == []
    index = load_coco(coco_root / ANN, coco_root / "images/train")
    assert sorted(index.images) == [1, 2, 3] and index.categories == {1: "circle", 2: "square", 3: "triangle"}
    assert [len(v) for v in index.per_image().values()] == [2, 3, 0] and index.crowd() == 0


def test_ground_truth_for_scoring_only_skips_file_names(coco_root: Path) -> None:
    path = _break(coco_root, _set("images", 0, "file_name", value="/elsewhere/a.png"))
    assert sorted(load_coco(path, None).images) == [1, 2, 3]  # scoring never opens the images
    with pytest.raises(DataError, match=r"file_name '/elsewhere/a\.png' is an absolute path"):
        load_coco(path, coco_root / "images/train")
    _break(coco_root, _set("images", 0, "width", value="48"))
    with pytest.raises(DataError, match=r"images\[0\] \(id 1\): width and height"):
        load_coco(path, None)


def test_several_problems_are_counted_in_the_reader_message(coco_root: Path) -> None:
    def two(data: dict) -> None:
        data["images"][0].update(width="x", height="y")
        data["annotations"][1]["category_id"] = 9

    path = _break(coco_root, two)
    with pytest.raises(DataError, match=r"images\[0\] \(id 1\): width and height .*\(1 more problem\(s\) in "
                                        r"this file\)\. Fix: write the image size in pixels"):
        load_coco(path, coco_root / "images/train")


# --- files that are not JSON at all -------------------------------------------------------------------
NOT_JSON = {
    "utf16": ('{"images": []}'.encode("utf-16"), r"not UTF-8 text"),
    "latin1": ('{"name": "caf\u00e9"}'.encode("latin-1"), r"not UTF-8 text"),
    "binary": (bytes(range(256)), r"not UTF-8 text"),
    "empty": (b"", r"invalid JSON at line 1, column 1"),
    "syntax": (b'{"images": [}', r"invalid JSON at line 1, column 13"),
    "truncated": (b'{"images": [{"id": 1', r"invalid JSON at line 1"),
    "deep": (b"[" * 200_000 + b"]" * 200_000, r"JSON nested too deeply|invalid JSON"),
}


@pytest.mark.parametrize("variant", sorted(NOT_JSON))
def test_a_file_that_is_not_json_names_the_file(coco_root: Path, tmp_path: Path, variant: str) -> None:
    content, words = NOT_JSON[variant]
    path = coco_root / ANN
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"instances_train\.json: ({words})"):
        read_json(path)
    for read in (lambda: CocoInstances(coco_root, "train"), lambda: CocoInstances(coco_root, "train", check=False),
                 lambda: coco_to_masks(coco_root, "train", tmp_path / "out")):
        with pytest.raises(DataError, match=r"instances_train\.json: "):
            read()
    [problem] = check_instance_dataset(coco_root, ["train"])
    assert Path(problem.path) == path and re.search(words, problem.problem)
    sidecar = coco_root / "masks/train/b.json"
    sidecar.write_bytes(content)
    with pytest.raises(DataError, match=r"b\.json: "):
        InstanceMaskFolder(coco_root, "train")[1]


def test_a_json_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_bytes(b"\xef\xbb\xbf" + b'{"labels": [1, 2]}')  # Windows editors write one
    assert read_json(tmp_path / "x.json") == {"labels": [1, 2]}
    with pytest.raises(DataError, match=r"missing\.json: file not found"):
        read_json(tmp_path / "missing.json")


# --- the instance-mask folder's <stem>.json -----------------------------------------------------------
SIDECAR_VARIANTS = {
    "list": [2, 1, 2],
    "string": "2,1,2",
    "null": None,
    "empty_object": {},
    "labels_null": {"labels": None},
    "labels_string": {"labels": "2,1,2"},
    "labels_dict": {"labels": {"1": 2}},
    "label_string": {"labels": [2, "1", 2]},
    "label_float": {"labels": [2, 1.0, 2]},
    "label_bool": {"labels": [2, True, 2]},
    "label_zero": {"labels": [2, 0, 2]},
    "label_negative": {"labels": [2, -1, 2]},
    "label_nested": {"labels": [[2], 1, 2]},
}


@pytest.mark.parametrize("variant", sorted(SIDECAR_VARIANTS))
def test_malformed_instance_labels_are_one_data_error(mask_root: Path, tmp_path: Path, variant: str) -> None:
    js = mask_root / "masks/train/b.json"
    js.write_text(json.dumps(SIDECAR_VARIANTS[variant]))
    expected = r"b\.json: must be \{\"labels\": \[category ids\]\}, one integer > 0 per instance; got "
    with pytest.raises(DataError, match=expected):
        read_instance_labels(js)
    with pytest.raises(DataError, match=expected):
        InstanceMaskFolder(mask_root, "train")[1]
    with pytest.raises(DataError, match=expected):
        masks_to_coco(mask_root, "train", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
    (mask_root / "classes.txt").unlink()  # categories then come from the JSON files, read when opening
    with pytest.raises(DataError, match=expected):
        InstanceMaskFolder(mask_root, "train")
    [problem] = check_instance_dataset(mask_root, ["train"])
    assert Path(problem.path) == js and problem.problem.startswith('must be {"labels": [category ids]}')


def test_unknown_category_in_instance_labels(mask_root: Path, tmp_path: Path) -> None:
    (mask_root / "masks/train/b.json").write_text(json.dumps({"labels": [2, 9, 2]}))
    with pytest.raises(DataError, match=r"b\.json: category ids \[9\] are not in classes\.txt \(\[1, 2, 3\]\)"):
        InstanceMaskFolder(mask_root, "train")[1]
    with pytest.raises(DataError, match=r"b\.json: category ids \[9\]"):
        masks_to_coco(mask_root, "train", tmp_path / "out.json")


# --- RLE counts, checked against an independent encoder -------------------------------------------------
def test_string_counts_match_pycocotools_runs(rng: np.random.Generator) -> None:
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        counts = pycoco_mask.encode(np.asfortranarray(mask))["counts"].decode()
        flat = mask.flatten(order="F")  # COCO runs go down the columns, starting with a run of zeros
        edges = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        assert string_counts(counts) == ([0] if flat[0] else []) + runs


@pytest.mark.parametrize("counts", ["zzzz", "04", "", "é", "\x00", "0" + "k" * 40, "1@"])
def test_bad_rle_counts_never_reach_the_decoder(counts: str) -> None:
    with pytest.raises(DataError, match=r"RLE counts|malformed"):
        segmentation_to_rle({"size": [4, 5], "counts": counts}, 4, 5)
