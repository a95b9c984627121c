"""data/io.py, the one image decoder: float images with no-data pixels, formats seglab does not read.

Expected pixel values are computed by hand from the scaling rule (finite range to 0-255, non-finite to 0).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.data.io import read_image
from seglab.data.semantic.checks import check_dataset


def test_a_float_tiff_with_one_nan_is_scaled_by_its_finite_range(tmp_path: Path) -> None:
    a = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, np.nan]], np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "x.tif")
    got = read_image(tmp_path / "x.tif", channels=1)[..., 0]
    # 0..4 -> 0, 63.75, 127.5, 191.25, 255 rounded (half to even); the NaN pixel is read as 0.
    np.testing.assert_array_equal(got, [[0, 64, 128], [191, 255, 0]])


def test_infinite_and_all_nan_float_images(tmp_path: Path) -> None:
    a = np.array([[np.inf, 10.0], [20.0, -np.inf]], np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "inf.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "inf.tif", channels=1)[..., 0], [[0, 0], [255, 0]])
    Image.fromarray(np.full((2, 2), np.nan, np.float32), mode="F").save(tmp_path / "nan.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "nan.tif"), np.zeros((2, 2, 3), np.uint8))


@pytest.mark.parametrize("folder", ["images", "labels"])
def test_a_webp_file_is_named_as_an_unsupported_format(make_dataset: Callable[..., Path], folder: str) -> None:
    root = make_dataset(n=2)
    (root / folder / "train" / "b.png").rename(root / folder / "train" / "b.webp")  # the doctor reads no pixels
    problems = check_dataset(root)
    text = [f"{p.path} {p.problem} {p.fix}" for p in problems]
    assert len(problems) == 1, text
    assert str(problems[0].path).endswith(f"{folder}/train/b.webp")
    assert "format .webp is not supported" in problems[0].problem
    assert ("png, jpg" if folder == "images" else "(png)") in problems[0].problem
    assert "has no image" not in text[0] and "has no label" not in text[0]


def test_other_files_are_left_alone(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset(n=2)
    (root / "images/train/notes.txt").write_text("taken on a cloudy day")
    assert check_dataset(root) == []


def test_data_check_names_the_webp_format(make_dataset: Callable[..., Path], capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from seglab.cli.app import console

    monkeypatch.setattr(console, "_width", 300)  # rich wraps the table at 80 columns off a terminal
    root = make_dataset(n=2)
    for folder in ("images", "labels"):
        for p in (root / folder / "train").iterdir():
            p.rename(p.with_suffix(".webp"))
    rc = main(["data", "check", str(root)])
    out = " ".join((capsys.readouterr().out).split())
    assert rc == 2
    assert "format .webp is not supported" in out
    assert "has no image" not in out and "empty split" not in out and "no label files" not in out


def test_instance_and_panoptic_doctors_name_a_webp_image(mask_root: Path, tmp_path: Path) -> None:
    from seglab.data.instance.checks import check_instance_dataset
    from seglab.data.panoptic.checks import check_panoptic_dataset
    from seglab.data.panoptic.synthetic import make_panoptic

    (mask_root / "images/train/a.png").rename(mask_root / "images/train/a.webp")
    problems = check_instance_dataset(mask_root)
    assert [(Path(p.path).name, "format .webp is not supported" in p.problem) for p in problems] == [("a.webp", True)]

    pan = make_panoptic(tmp_path / "pan", n_train=2, n_val=1, size=32, seed=0)
    image = sorted((pan / "images" / "val").iterdir())[0]
    image.rename(image.with_suffix(".webp"))
    errors = check_panoptic_dataset(pan, ["val"]).errors
    assert [Path(p.path).suffix for p in errors] == [".webp"] and "not supported" in errors[0].problem
