"""The dataset doctor: one tiny broken dataset per check, each problem named and rendered.

`seglab data check` itself (exit codes, flags reaching ``check_dataset``) is tested in tests/cli/test_data_cmd.py.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from seglab.data.problems import Problem, render_problems
from seglab.data.semantic import checks
from seglab.data.semantic.checks import check_dataset
from seglab.errors import DataError

LABEL = (np.arange(48).reshape(6, 8) % 3).astype(np.uint8)


def _save(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (no pixel data): a decompression bomb to open safely."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


# Each case breaks the clean dataset and names the file (relative to the root) the doctor must blame,
# and words its problem (or fix) must contain.
def _no_label(root: Path) -> str:
    (root / "labels/train/b.png").unlink()
    return "images/train/b.png"


def _no_image(root: Path) -> str:
    _save(root / "labels/train/c.png", LABEL)
    return "labels/train/c.png"


def _size_mismatch(root: Path) -> str:
    _save(root / "labels/train/a.png", np.zeros((5, 8), np.uint8))
    return "labels/train/a.png"


def _rgb_label(root: Path) -> str:
    _save(root / "labels/train/a.png", np.zeros((6, 8, 3), np.uint8))
    return "labels/train/a.png"


def _rgba_label(root: Path) -> str:
    _save(root / "labels/train/b.png", np.zeros((6, 8, 4), np.uint8))
    return "labels/train/b.png"


def _jpeg_label(root: Path) -> str:
    (root / "labels/train/b.png").unlink()
    _save(root / "labels/train/b.jpg", LABEL, "JPEG")
    return "labels/train/b.jpg"


def _jpeg_data_named_png(root: Path) -> str:
    _save(root / "labels/train/b.png", LABEL, "JPEG")
    return "labels/train/b.png"


def _tif_label(root: Path) -> str:
    (root / "labels/train/b.png").unlink()
    _save(root / "labels/train/b.tif", LABEL, "TIFF")
    return "labels/train/b.tif"


def _two_band_label(root: Path) -> str:
    Image.fromarray(np.zeros((6, 8, 2), np.uint8), mode="LA").save(root / "labels/train/a.png")
    return "labels/train/a.png"


def _value_ge_k(root: Path) -> str:
    label = LABEL.copy()
    label[2, 2], label[3, 3] = 7, 9
    _save(root / "labels/train/b.png", label)
    return "labels/train/b.png"


def _wide_label(root: Path) -> str:
    _save(root / "labels/train/a.png", LABEL.astype(np.uint16) * 300)  # 0, 300, 600 in a 16-bit PNG
    return "labels/train/a.png"


def _corrupt_image(root: Path) -> str:
    (root / "images/train/a.png").write_bytes(b"this is not a png file at all")
    return "images/train/a.png"


def _truncated_image(root: Path) -> str:
    _truncate(root / "images/train/b.png")
    return "images/train/b.png"


def _truncated_label(root: Path) -> str:
    _save(root / "labels/train/a.png", np.random.default_rng(1).integers(0, 3, (60, 80), dtype=np.uint8))
    _save(root / "images/train/a.png", np.zeros((60, 80, 3), np.uint8))
    _truncate(root / "labels/train/a.png")
    return "labels/train/a.png"


def _empty_split(root: Path) -> str:
    (root / "images/val").mkdir()
    (root / "labels/val").mkdir()
    return "images/val"


def _no_labels_folder(root: Path) -> str:
    for p in (root / "labels/train").iterdir():
        p.unlink()
    (root / "labels/train").rmdir()
    (root / "labels").rmdir()
    return "labels"


def _broken_link(root: Path) -> str:
    (root / "images/train/c.png").symlink_to(root / "nowhere.png")
    _save(root / "labels/train/c.png", LABEL)
    return "images/train/c.png"


def _duplicate_stem(root: Path) -> str:
    _save(root / "images/train/a.jpg", np.zeros((6, 8, 3), np.uint8), "JPEG")
    return "images/train/a.jpg"


def _bomb(root: Path) -> str:
    _png_header_only(root / "images/train/a.png", 30_000, 20_000)  # 600 M pixels, over Pillow's 2x limit
    return "images/train/a.png"


def _classes_too_short(root: Path) -> str:
    (root / "classes.txt").write_text("sky\nroad\n")
    return "classes.txt"


def _binary_0_255(root: Path) -> str:
    for stem in "ab":
        _save(root / f"labels/train/{stem}.png", (LABEL > 0).astype(np.uint8) * 255)
    return "labels/train"


def _bad_palette(root: Path) -> str:
    (root / "palette.txt").write_text("0 0 0\n128 0 300\n")
    return "palette.txt"


CASES: list[tuple[Callable[[Path], str], str]] = [
    (_no_label, "has no label"),
    (_no_image, "has no image"),
    (_size_mismatch, "size mismatch"),
    (_rgb_label, "seglab data convert rgb-to-index"),
    (_rgba_label, "RGBA color label"),
    (_jpeg_label, "JPEG label"),
    (_jpeg_data_named_png, "JPEG data"),
    (_tif_label, "must be PNG"),
    (_two_band_label, "mode LA"),
    (_value_ge_k, "values 7, 9 are >= 3"),
    (_wide_label, "16-bit label with values up to 600"),
    (_corrupt_image, "not an image file"),
    (_truncated_image, "truncated"),
    (_truncated_label, "truncated"),
    (_empty_split, "empty split"),
    (_no_labels_folder, "labels/ is missing"),
    (_broken_link, "broken symbolic link"),
    (_duplicate_stem, "duplicated stem 'a'"),
    (_bomb, "--max-pixels 600000000"),
    (_classes_too_short, "names 2 classes but labels use value 2"),
    (_binary_0_255, "only 0 and 255"),
    (_bad_palette, "three integers"),
]


def _rendered(problems: list[Problem], root: Path) -> str:
    console = Console(width=80, record=True)  # the width `seglab data check` gets off a terminal
    render_problems(problems, console, root=root)
    return console.export_text()


@pytest.mark.parametrize(("breaker", "words"), CASES, ids=[c[0].__name__.lstrip("_") for c in CASES])
def test_each_problem_is_found_and_named(make_dataset, breaker, words) -> None:
    root = make_dataset()
    culprit = breaker(root)
    problems = check_dataset(root)
    assert any(Path(p.path) == root / culprit and words in p.problem + p.fix for p in problems), problems
    assert culprit in _rendered(problems, root)  # the table names the file relative to the root


def test_clean_dataset_passes(make_dataset) -> None:
    root = make_dataset(splits=("train", "val"))
    calls: list[tuple[int, int]] = []
    assert check_dataset(root, callback=lambda done, total: calls.append((done, total))) == []
    assert calls[-1] == (8, 8)  # 2 splits x 2 pairs, every file scanned


def test_palette_mode_16_bit_in_range_ignore_and_no_classes_file_are_fine(make_dataset) -> None:
    root = make_dataset(classes=False)
    p_label = Image.fromarray(LABEL)
    p_label.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    p_label.save(root / "labels/train/a.png")
    wide = LABEL.astype(np.uint16)
    wide[0, 0] = 255  # the ignore index is allowed at any K
    _save(root / "labels/train/b.png", wide)
    assert Image.open(root / "labels/train/a.png").mode == "P"
    assert Image.open(root / "labels/train/b.png").mode == "I;16"
    assert check_dataset(root, num_classes=3) == []


def test_num_classes_checks_values_without_classes_file(make_dataset) -> None:
    root = make_dataset(classes=False)
    assert check_dataset(root) == []  # K unknown: no range check
    problems = check_dataset(root, num_classes=2)
    assert {Path(p.path) for p in problems} == {root / "labels/train/a.png", root / "labels/train/b.png"}
    text = _rendered(problems, root)
    assert "labels/train/a.png" in text and "labels/train/b.png" in text


def test_num_classes_disagreeing_with_classes_file(make_dataset) -> None:
    problems = check_dataset(make_dataset(), num_classes=5)
    assert [Path(p.path).name for p in problems] == ["classes.txt"]
    assert "--num-classes is 5" in problems[0].problem


def test_ignore_index(make_dataset) -> None:
    root = make_dataset()
    label = LABEL.copy()
    label[0, 0] = 7
    _save(root / "labels/train/a.png", label)
    assert check_dataset(root) != []
    assert check_dataset(root, ignore_index=7) == []


def test_max_pixels_lowers_and_lifts_the_limit(make_dataset) -> None:
    root = make_dataset()
    problems = check_dataset(root, max_pixels=40)
    assert problems and any("--max-pixels 48" in p.problem + p.fix for p in problems)  # 8 x 6 images
    assert "--max-pixels 48" in _rendered(problems, root)
    assert check_dataset(root, max_pixels=48) == []


def test_permission_denied_is_reported_not_raised(make_dataset, monkeypatch) -> None:
    root = make_dataset()
    real_open = Image.open

    def guarded_open(path, *args, **kwargs):  # what a chmod 000 file does for a non-root user
        if Path(path).name == "b.png" and "images" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", guarded_open)
    problems = check_dataset(root)
    assert [(Path(p.path), p.problem) for p in problems] == [
        (root / "images/train/b.png", "cannot be read: permission denied")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(make_dataset) -> None:
    root = make_dataset()
    (root / "labels/train/a.png").chmod(0)
    problems = check_dataset(root)
    assert any("permission denied" in p.problem for p in problems)


def test_splits_and_missing_split(make_dataset) -> None:
    root = make_dataset(splits=("train", "val"))
    _save(root / "labels/val/a.png", np.zeros((6, 8, 3), np.uint8))
    assert check_dataset(root, splits=["train"]) == []
    assert len(check_dataset(root, splits=["val"])) == 1
    problems = check_dataset(root, splits=["train", "test"])
    assert problems and all(Path(p.path).is_relative_to(root / "images/test") or
                            Path(p.path).is_relative_to(root / "labels/test") for p in problems), problems
    text = _rendered(problems, root)
    assert "images/test" in text and "labels/val" not in text


def test_missing_root_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="dataset folder not found"):
        check_dataset(tmp_path / "nope")


def test_fast_path_samples_labels_but_reads_every_header(make_dataset, monkeypatch) -> None:
    monkeypatch.setattr(checks, "FAST_LABEL_SAMPLE", 2)
    root = make_dataset(n=5)  # fast path decodes labels a and e (evenly spaced) only
    label = LABEL.copy()
    label[0, 0] = 9
    _save(root / "labels/train/c.png", label)
    _save(root / "labels/train/d.png", np.zeros((6, 8, 3), np.uint8))
    fast = {Path(p.path).name for p in check_dataset(root, fast=True)}
    full = {Path(p.path).name for p in check_dataset(root)}
    assert fast == {"d.png"}
    assert full == {"c.png", "d.png", "classes.txt"}  # value 9 also outgrows classes.txt


def test_progress_reports_every_file(make_dataset) -> None:
    calls: list[tuple[int, int]] = []
    check_dataset(make_dataset(n=3), callback=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]


def test_render_problems_prints_names_literally() -> None:
    console = Console(width=120, record=True)
    render_problems([Problem(Path("/d/labels/[red]x.png"), "bad [bold]thing", "fix it")], console, root="/d")
    text = console.export_text()
    assert "labels/[red]x.png" in text and "bad [bold]thing" in text and "fix it" in text


def test_shared_semantic_datasets_are_clean(shared_datasets) -> None:
    for name in ("isbi2012_membrane", "camvid"):
        problems = check_dataset(shared_datasets / name)
        assert problems == [], _rendered(problems, shared_datasets / name)
