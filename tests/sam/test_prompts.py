"""Prompt files (CSV / JSON): what they hold, and every bad row named by file and line (or item).

These run without the extra: reading prompt files needs no SAM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seglab.errors import DataError
from seglab.sam.prompts import match_images, read_prompts

HEADER = "image,class,object,x1,y1,x2,y2,x,y,label\n"


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "prompts.csv"
    path.write_text(header + body)
    return path


def test_csv_boxes_points_and_objects(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a.png,car,,1,2,30,20,,,\n"
                          "a.png,person,p1,,,,,14,6,1\n"
                          "\n"
                          "a.png,,p1,,,,,15,3,neg\n"
                          "b,,,,,,,7,8,\n"
                          "a.png,person,p1,0,0,40,30,,,\n")
    objs = read_prompts(path)
    assert [(o.image, o.class_name) for o in objs] == [("a.png", "car"), ("a.png", "person"), ("b", "object")]
    car, person, other = objs
    assert car.box == (1.0, 2.0, 30.0, 20.0) and car.points == [] and car.where == f"{path}:2"
    assert person.points == [(14.0, 6.0), (15.0, 3.0)] and person.labels == [1, 0]
    assert person.box == (0.0, 0.0, 40.0, 30.0) and person.where == f"{path}:3"
    assert other.points == [(7.0, 8.0)] and other.labels == [1] and other.box is None


def test_csv_columns_in_any_order_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("\ufeffx2,y2,x1,y1,image\n9,8,1,2,a.png\n".encode())
    (obj,) = read_prompts(path)
    assert obj.box == (1.0, 2.0, 9.0, 8.0) and obj.class_name == "object"


@pytest.mark.parametrize(("header", "body", "line", "words"), [
    ("image,x1,y1,x2,y2,colour\n", "", 1, r"unknown column\(s\) \['colour'\]"),
    ("x1,y1,x2,y2\n", "", 1, "no 'image' column"),
    ("", "", 1, "no header"),
    (HEADER, ",car,,1,2,3,4,,,\n", 2, "the image column is empty"),
    (HEADER, "a.png,car,,1,2,3,4,5,6,\n", 2, "fill either .* this row has both"),
    (HEADER, "a.png,car,,,,,,,,\n", 2, "fill either .* this row has neither"),
    (HEADER, "a.png,car,,1,2,3,4,,,\na.png,car,,1,2,x,4,,,\n", 3, "x2 is 'x', not a number"),
    (HEADER, "a.png,car,,1,2,3,nan,,,\n", 2, "y2 is 'nan', not a number"),
    (HEADER, "a.png,car,,5,2,3,4,,,\n", 2, r"box \[5.0, 2.0, 3.0, 4.0\] is empty or reversed"),
    (HEADER, "a.png,car,o,1,2,3,4,,,\na.png,car,o,1,2,5,6,,,\n", 3, "a second box for the object of"),
    (HEADER, "a.png,car,o,1,2,3,4,,,\na.png,bus,o,,,,,1,1,\n", 3, "object 'o' is 'car' at .*:2 but 'bus' here"),
    (HEADER, "a.png,car,,,,,,1,1,maybe\n", 2, "label 'maybe'"),
    (HEADER, "a.png,car,,1,2,3,4,,,,extra\n", 2, "11 fields but the header names 10 columns"),
])
def test_bad_csv_rows_name_file_and_line(tmp_path: Path, header: str, body: str, line: int, words: str) -> None:
    path = _csv(tmp_path, body, header)
    with pytest.raises(DataError, match=rf"^{path}:{line}: {words}"):
        read_prompts(path)


def test_json_prompts(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"prompts": [{"image": "a.png", "class": "car", "box": [1, 2, 3, 4]},
                                            {"image": "b.png", "points": [[5, 6], [7, 8, 0]]}]}))
    car, obj = read_prompts(path)
    assert car.box == (1.0, 2.0, 3.0, 4.0) and car.class_name == "car" and car.where == f"{path}: item 0"
    assert obj.points == [(5.0, 6.0), (7.0, 8.0)] and obj.labels == [1, 0] and obj.class_name == "object"


@pytest.mark.parametrize(("doc", "words"), [
    ({"boxes": []}, "expected a list of prompts"),
    ([{"class": "car"}], "item 0: must be an object with an \"image\""),
    ([{"image": "a.png", "box": [1, 2, 3]}], "item 0: box must be 4 numbers"),
    ([{"image": "a.png", "box": [1, 2, 3, 4]}, {"image": "a.png", "points": [[1, 2, 5]]}], "item 1: a point is"),
    ([{"image": "a.png", "size": 3}], r"item 0: unknown key\(s\) \['size'\]"),
    ([{"image": "a.png"}], "item 0: no box and no points"),
    ([{"image": "a.png", "class": "", "box": [1, 2, 3, 4]}], "item 0: class must be a non-empty name"),
])
def test_bad_json_items_name_file_and_item(tmp_path: Path, doc: object, words: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=words):
        read_prompts(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prompt file not found"):
        read_prompts(tmp_path / "none.csv")


def test_objects_are_matched_to_inputs_by_name_or_stem(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a.png,car,,1,2,3,4,,,\nb,car,,1,2,3,4,,,\nc.jpg,car,,1,2,3,4,,,\n")
    images = [tmp_path / "in" / "a.png", tmp_path / "in" / "b.jpg"]
    objs = read_prompts(path)
    with pytest.raises(DataError, match=rf"{path}:4: image 'c.jpg' names no input image"):
        match_images(objs, images, str(path))
    matched = match_images(objs[:2], images + [tmp_path / "in" / "d.png"], str(path))
    assert [o.image for o in matched[images[0]]] == ["a.png"] and [o.image for o in matched[images[1]]] == ["b"]
    assert matched[tmp_path / "in" / "d.png"] == []
    with pytest.raises(DataError, match="matches 2 inputs"):
        match_images(objs[1:2], [tmp_path / "x" / "b.png", tmp_path / "y" / "b.jpg"], str(path))
