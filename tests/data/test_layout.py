"""The dataset layout: classes.txt (one reader for training, the doctors and stats), palettes, pairing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.layout import (
    category_names,
    list_split,
    pair_by_stem,
    read_classes,
    read_dataset_palette,
    read_palette,
    split_folders,
)
from seglab.data.semantic.checks import check_dataset
from seglab.data.semantic.dataset import SegmentationFolder
from seglab.data.semantic.stats import compute_stats
from seglab.errors import DataError


def _classes(tmp_path: Path, data: bytes) -> Path:
    (tmp_path / "classes.txt").write_bytes(data)
    return tmp_path


@pytest.mark.parametrize(("data", "names"), [
    (b"sky\nroad\ncar\n", ["sky", "road", "car"]),
    (b"sky\nroad\ncar", ["sky", "road", "car"]),  # no final newline
    (b"sky\r\nroad\r\ncar\r\n\r\n\n", ["sky", "road", "car"]),  # CRLF and trailing blank lines
    (b"\xef\xbb\xbfsky\nroad\n", ["sky", "road"]),  # UTF-8 byte-order mark
    (b"  traffic light \nvoid\n", ["traffic light", "void"]),  # names are stripped, inner spaces kept
    ("caf\u00e9\nstra\u00dfe\n".encode(), ["caf\u00e9", "stra\u00dfe"]),
])
def test_read_classes_accepts(tmp_path: Path, data: bytes, names: list[str]) -> None:
    assert read_classes(_classes(tmp_path, data)) == names


def test_read_classes_absent_is_none(tmp_path: Path) -> None:
    assert read_classes(tmp_path) is None


@pytest.mark.parametrize(("data", "words"), [
    (b"sky\n\nroad\n", r"classes\.txt:2: line 2 is blank; line i must hold the name of class i"),
    (b"sky\nroad\n   \ncar\n", r"classes\.txt:3: line 3 is blank"),
    (b"\n\n", "no class names"),
    (b"", "no class names"),
    (b"sky\n\xff\xferoad\n", "cannot read class names"),
])
def test_read_classes_refuses(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(DataError, match=words):
        read_classes(_classes(tmp_path, data))


def test_training_doctor_and_stats_agree_on_a_blank_line(make_dataset) -> None:
    root = make_dataset()
    (root / "classes.txt").write_text("sky\n\nroad\ncar\n")  # stats used to drop it and rename classes 1, 2
    with pytest.raises(DataError, match="line 2 is blank"):
        SegmentationFolder(root, "train", check=False)
    with pytest.raises(DataError, match="line 2 is blank"):
        compute_stats(root)
    problems = check_dataset(root)
    assert [(p.path, p.problem.split(";")[0]) for p in problems] == [(root / "classes.txt", "line 2 is blank")]


def test_training_and_stats_read_a_bom_the_same(make_dataset) -> None:
    root = make_dataset()
    (root / "classes.txt").write_bytes(b"\xef\xbb\xbfsky\nroad\ncar\n")
    assert SegmentationFolder(root, "train").classes == compute_stats(root)["classes"] == ["sky", "road", "car"]


@pytest.mark.parametrize(("names", "ids"), [
    (None, {}),
    (["pedestrian"], {1: "pedestrian"}),  # COCO style: line i names id i + 1
    (["background", "circle", "square"], {1: "circle", 2: "square"}),  # semantic style: line i names id i
    (["BG", "cat"], {1: "cat"}),
    (["cat", "dog"], {1: "cat", 2: "dog"}),
])
def test_category_names(names: list[str] | None, ids: dict[int, str]) -> None:
    assert category_names(names) == ids


def test_read_palette_forms_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "palette.txt"
    p.write_bytes(b"\xef\xbb\xbf# class colors\n0 0 0\nroad 128, 64, 128\n\ntraffic light 250 170 30  # yellow\n")
    assert read_palette(p).tolist() == [[0, 0, 0], [128, 64, 128], [250, 170, 30]]
    assert read_dataset_palette(tmp_path).dtype == np.uint8
    p.write_text("0 0 0\n1 2\n")
    with pytest.raises(DataError, match=r"palette\.txt:2: line 2 is '1 2'"):
        read_palette(p)
    p.write_text("# nothing\n")
    with pytest.raises(DataError, match="no colors"):
        read_palette(p)
    assert read_dataset_palette(tmp_path / "nowhere") is None


def test_list_split_skips_hidden_and_folders_keeps_broken_links(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", ".a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    os.symlink(tmp_path / "nowhere.png", tmp_path / "c.png")
    assert [p.name for p in list_split(tmp_path)] == ["a.JPG", "b.png", "c.png"]
    assert [p.name for p in list_split(tmp_path, (".png",))] == ["b.png", "c.png"]
    assert list_split(tmp_path / "missing") == []


def test_split_folders_in_reading_order(tmp_path: Path) -> None:
    for d in ("images/val", "images/train", "labels/extra", "labels/test", "images/.cache", "labels/a"):
        (tmp_path / d).mkdir(parents=True)
    assert split_folders(tmp_path, "images", "labels") == ["train", "val", "test", "a", "extra"]


def test_pair_by_stem(tmp_path: Path) -> None:
    images = [tmp_path / n for n in ("a.jpg", "a.png", "b.png", "c.png")]
    labels = [tmp_path / n for n in ("a.jpg", "a.png", "b.png", "d.png")]
    found = pair_by_stem(images, labels)
    assert found.pairs == [(images[0], labels[1]), (images[2], labels[2])]  # first image, the PNG label
    assert found.unlabelled == [images[3]] and found.orphans == [labels[3]]
    assert found.duplicates == [images[:2], labels[:2]]


def test_folder_and_stats_see_the_same_samples(make_dataset) -> None:
    root = make_dataset(n=3)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "images/train/._a.png")  # macOS metadata file
    assert SegmentationFolder(root, "train", check=False).stems == ["a", "b", "c"]
    assert compute_stats(root)["num_images"] == 3
