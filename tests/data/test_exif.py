"""EXIF orientation policy: seglab reads pixels as stored, never turns them, and the doctors say so.

Labels are drawn on some view of the image; a JPEG's orientation tag cannot tell which. Turning the image
alone (what ``ImageOps.exif_transpose`` does) paired it with a label turned the other way, silently for a
180-degree tag. So every reader returns the stored pixels and both doctors report a tag other than 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.file_checks import inspect_image
from seglab.data.instance.checks import check_instance_dataset
from seglab.data.io import image_size, read_image
from seglab.data.semantic.checks import check_dataset
from seglab.errors import DataError

ORIENTATION = 0x0112


def _pattern(h: int, w: int) -> np.ndarray:
    """Bright top-left block on a dark image: a turn or mirror moves it (and JPEG keeps it)."""
    a = np.full((h, w, 3), 20, np.uint8)
    a[: h // 2, : w // 2] = 230
    return a


def _save_jpeg(path: Path, array: np.ndarray, tag: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if tag is not None:
        exif[ORIENTATION] = tag
    Image.fromarray(array).save(path, format="JPEG", quality=95, exif=exif)


@pytest.mark.parametrize("tag", [3, 6])
def test_read_image_returns_the_stored_pixels(tmp_path: Path, tag: int) -> None:
    written = _pattern(16, 24)
    _save_jpeg(tmp_path / "x.jpg", written, tag)
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.getexif()[ORIENTATION] == tag  # the tag is really there
        stored = np.asarray(im.convert("RGB"))
    got = read_image(tmp_path / "x.jpg")
    assert got.shape == (16, 24, 3)  # not the 24x16 a 90-degree turn (tag 6) gives
    np.testing.assert_array_equal(got, stored)
    assert np.abs(got.astype(int) - written).max() <= 8  # the written array, up to JPEG loss
    assert got[:8, :12].mean() > 200 and got[8:, 12:].mean() < 50  # bright block still top-left
    assert read_image(tmp_path / "x.jpg", channels=1).shape == (16, 24, 1)


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
@pytest.mark.parametrize("tag", range(1, 9))
def test_every_tag_in_lossless_formats_reads_as_stored(tmp_path: Path, fmt: str, tag: int) -> None:
    """Pillow itself turns a TIFF by its tag on load (and reports the turned size): undone, as stored too."""
    written = _pattern(6, 8)
    written[5, 7] = 99  # one odd pixel: any turn or mirror moves it
    exif = Image.Exif()
    exif[ORIENTATION] = tag
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(written).save(path, format=fmt, exif=exif)
    np.testing.assert_array_equal(read_image(path), written)
    assert image_size(path, 10**6) == ((8, 6), None)
    for decode in (False, True):
        report = inspect_image(path, decode, 10**6)
        assert report.size == (8, 6) and report.orientation == tag
        assert len(report.findings) == (tag != 1)


@pytest.mark.parametrize("tag", [3, 6])
def test_image_size_is_the_stored_size(tmp_path: Path, tag: int) -> None:
    _save_jpeg(tmp_path / "x.jpg", _pattern(16, 24), tag)
    assert image_size(tmp_path / "x.jpg", 10**6) == ((24, 16), None)
    report = inspect_image(tmp_path / "x.jpg", True, 10**6)
    assert report.size == (24, 16) and report.orientation == tag


def test_no_tag_or_tag_1_is_no_finding(tmp_path: Path) -> None:
    _save_jpeg(tmp_path / "plain.jpg", _pattern(6, 8), None)
    _save_jpeg(tmp_path / "one.jpg", _pattern(6, 8), 1)
    for name in ("plain.jpg", "one.jpg"):
        for decode in (False, True):
            assert inspect_image(tmp_path / name, decode, 10**6).findings == []


@pytest.mark.parametrize("tag", [3, 6])
def test_semantic_doctor_reports_the_tag_and_training_refuses(make_dataset, tag: int) -> None:
    root = make_dataset()
    (root / "images/train/a.png").unlink()
    _save_jpeg(root / "images/train/a.jpg", _pattern(6, 8), tag)  # stored 8x6, as its label
    for fast in (True, False):
        [problem] = check_dataset(root, fast=fast)
        assert Path(problem.path) == root / "images/train/a.jpg"
        assert f"EXIF orientation tag {tag}" in problem.problem
        assert "seglab reads pixels as stored and ignores the EXIF orientation" in problem.problem
        assert "rotate the image file itself" in problem.fix and "exif_transpose" in problem.fix
        assert f"exiftran -ai {root / 'images/train/a.jpg'}" in problem.fix
    from seglab.data.semantic.dataset import SegmentationFolder

    with pytest.raises(DataError, match="EXIF orientation tag"):
        SegmentationFolder(root, "train")
    _save_jpeg(root / "images/train/a.jpg", _pattern(6, 8), None)  # the tag removed: clean
    assert check_dataset(root) == []


def test_label_drawn_on_the_turned_view_gets_the_rotate_fix(make_dataset) -> None:
    root = make_dataset()
    (root / "images/train/a.png").unlink()
    _save_jpeg(root / "images/train/a.jpg", _pattern(8, 6), 6)  # stored 6x8; viewers show 8x6, as the label
    problems = {Path(p.path).name: p for p in check_dataset(root)}
    assert set(problems) == {"a.jpg", "a.png"}
    assert "EXIF orientation tag 6" in problems["a.jpg"].problem
    assert "size mismatch: label is 8x6, image a.jpg is 6x8" in problems["a.png"].problem
    assert "rotate the image file itself" in problems["a.png"].fix


def test_instance_doctor_reports_the_tag_for_coco_and_mask_folders(coco_root: Path, instance_spec) -> None:
    H, W = instance_spec.H, instance_spec.W
    (coco_root / "images/train/a.png").unlink()
    _save_jpeg(coco_root / "images/train/a.jpg", _pattern(H, W), 3)
    ann = coco_root / "annotations/instances_train.json"
    data = json.loads(ann.read_text())
    next(im for im in data["images"] if im["file_name"] == "a.png")["file_name"] = "a.jpg"
    ann.write_text(json.dumps(data))
    problems = check_instance_dataset(coco_root, ["train"])
    # once from the COCO JSON, once from the mask folder (the fixture holds both layouts)
    assert [Path(p.path).name for p in problems] == ["a.jpg", "a.jpg"]
    assert all("EXIF orientation tag 3" in p.problem and "as stored" in p.problem for p in problems)
    assert all("rotate the image file itself" in p.fix for p in problems)


def test_coco_size_of_the_turned_view_gets_the_rotate_fix(coco_root: Path, instance_spec) -> None:
    H, W = instance_spec.H, instance_spec.W
    (coco_root / "images/train/a.png").unlink()
    _save_jpeg(coco_root / "images/train/a.jpg", _pattern(W, H), 6)  # stored HxW turned: viewers show W x H
    ann = coco_root / "annotations/instances_train.json"
    data = json.loads(ann.read_text())
    next(im for im in data["images"] if im["file_name"] == "a.png")["file_name"] = "a.jpg"
    ann.write_text(json.dumps(data))
    from seglab.data.instance.checks import check_coco_split

    problems = check_coco_split(coco_root, "train", 10**6)
    assert [p.problem.split(" ")[0] for p in problems] == ["EXIF", "JSON"]
    assert f"JSON says {W}x{H}, file is {H}x{W}" in problems[1].problem
    assert "rotate the image file itself" in problems[1].fix
