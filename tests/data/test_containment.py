"""COCO file names stay inside ``images/<split>/``: no absolute path, no ``..`` out, no symbolic link out.

Each escaping name points at a real, valid image of the right size outside the dataset, so a reader that
followed it would load it without complaint: the tests prove it is refused, by the doctor and by every
reader (CocoInstances with and without the doctor, open_instance_split, coco_to_masks).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.instance.checks import check_instance_dataset, load_coco
from seglab.data.instance.coco import CocoInstances, open_instance_split
from seglab.data.instance.convert import coco_to_masks
from seglab.data.layout import contained, containment_problem
from seglab.errors import DataError

ANN = Path("annotations/instances_train.json")


def _outside_image(tmp_path: Path, h: int, w: int) -> Path:
    """A valid image of the dataset's size outside the dataset root (``tmp_path/inst``)."""
    path = tmp_path / "secret" / "outside.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    return path


def _dotdot(root: Path, outside: Path) -> tuple[str, str]:
    return "../../../secret/outside.png", "leads out of"


def _absolute(root: Path, outside: Path) -> tuple[str, str]:
    return str(outside), "is an absolute path"


def _file_link(root: Path, outside: Path) -> tuple[str, str]:
    (root / "images/train/link.png").symlink_to(outside)
    return "link.png", "symbolic link that resolves to"


def _folder_link(root: Path, outside: Path) -> tuple[str, str]:
    (root / "images/train/sub").symlink_to(outside.parent, target_is_directory=True)
    return "sub/outside.png", "symbolic link that resolves to"


def _dotdot_inside_link(root: Path, outside: Path) -> tuple[str, str]:
    (root / "images/train/sub").mkdir()
    return "sub/../../../../secret/outside.png", "leads out of"


def _windows_drive(root: Path, outside: Path) -> tuple[str, str]:
    return "C:/data/outside.png", "is an absolute path"


ESCAPES: dict[str, Callable[[Path, Path], tuple[str, str]]] = {
    "dotdot": _dotdot, "absolute": _absolute, "file_link": _file_link, "folder_link": _folder_link,
    "dotdot_inside_link": _dotdot_inside_link, "windows_drive": _windows_drive,
}


@pytest.fixture(params=sorted(ESCAPES))
def escaping(request, coco_root: Path, tmp_path: Path, instance_spec) -> tuple[Path, str, str]:
    """``coco_root`` whose first image entry names a file outside images/train/; (root, name, words)."""
    outside = _outside_image(tmp_path, instance_spec.H, instance_spec.W)
    name, words = ESCAPES[request.param](coco_root, outside)
    data = json.loads((coco_root / ANN).read_text())
    data["images"][0]["file_name"] = name
    (coco_root / ANN).write_text(json.dumps(data))
    return coco_root, name, words


def test_doctor_refuses_the_name(escaping: tuple[Path, str, str]) -> None:
    root, name, words = escaping
    problems = check_instance_dataset(root, ["train"])
    [p] = [p for p in problems if Path(p.path) == root / ANN]
    assert p.problem.startswith("images[0] (id 1): file_name") and name in p.problem and words in p.problem
    assert "copy it in" in p.fix
    assert not any("outside.png" in str(q.path) for q in problems)  # the outside file was never looked at


def test_every_reader_refuses_the_name(escaping: tuple[Path, str, str], tmp_path: Path) -> None:
    root, name, words = escaping
    expected = rf"instances_train\.json: images\[0\] \(id 1\): file_name .*{words}"
    readers = {
        "CocoInstances": lambda: CocoInstances(root, "train"),
        "CocoInstances(check=False)": lambda: CocoInstances(root, "train", check=False),
        "open_instance_split": lambda: open_instance_split(root, "train"),
        "load_coco": lambda: load_coco(root / ANN, root / "images/train"),
        "coco_to_masks": lambda: coco_to_masks(root, "train", tmp_path / "out"),
    }
    for reader, read in readers.items():
        with pytest.raises(DataError, match=expected) as info:
            read()
        assert repr(name) in str(info.value), reader
    assert not (tmp_path / "out").exists()  # coco_to_masks refused before writing anything


def test_names_inside_the_split_folder_are_fine(coco_root: Path) -> None:
    shutil.rmtree(coco_root / "masks")  # check the COCO layout alone
    images = coco_root / "images/train"
    (images / "sub").mkdir()
    os.replace(images / "a.png", images / "sub" / "a.png")
    os.replace(images / "b.png", images / "b_real.png")
    (images / "b.png").symlink_to("b_real.png")  # a link that stays inside is fine
    data = json.loads((coco_root / ANN).read_text())
    assert [im["file_name"] for im in data["images"]] == ["a.png", "b.png", "c.png"]
    data["images"][0]["file_name"] = "sub/./a.png"
    data["images"][2]["file_name"] = "sub/../c.png"
    (coco_root / ANN).write_text(json.dumps(data))
    assert check_instance_dataset(coco_root, ["train"]) == []
    ds = CocoInstances(coco_root, "train")
    assert len(ds) == 3 and [t["labels"].tolist() for _, t in (ds[0], ds[1])] == [[1, 3], [2, 1, 2]]


def test_a_linked_images_folder_is_fine(coco_root: Path, tmp_path: Path) -> None:
    """Big image folders often live on another disk: images/ (or images/train/) may be a link."""
    elsewhere = tmp_path / "disk" / "images"
    elsewhere.parent.mkdir()
    os.replace(coco_root / "images", elsewhere)
    (coco_root / "images").symlink_to(elsewhere, target_is_directory=True)
    assert check_instance_dataset(coco_root, ["train"]) == []
    assert len(CocoInstances(coco_root, "train")) == 3


@pytest.mark.parametrize("name", ["", "   ", None, 7, ["a.png"], "a\0.png"])
def test_a_name_that_is_not_a_path_is_refused(tmp_path: Path, name: object) -> None:
    assert "file_name must be a non-empty path" in containment_problem(tmp_path, name)
    with pytest.raises(DataError, match=r"^x\.json: images\[2\]: file_name must be a non-empty path"):
        contained(tmp_path, name, "x.json: images[2]")


def test_contained_returns_the_path_inside(tmp_path: Path) -> None:
    assert contained(tmp_path, "a/b.png", "x.json") == tmp_path / "a" / "b.png"
    assert containment_problem(tmp_path, "a/../b.png") is None
    with pytest.raises(DataError, match=r"x\.json: file_name '\.\./b\.png' leads out of .*copy it in"):
        contained(tmp_path / "sub", "../b.png", "x.json")
