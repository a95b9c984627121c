"""Label converters: round trips, hand-checked pixels, unknown colors, and never touching the input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.semantic.convert import binary_to_index, index_to_rgb, load_palette, palette_to_l, rgb_to_index
from seglab.errors import ConfigError, DataError

PALETTE = np.array([[0, 0, 0], [128, 64, 128], [220, 20, 60], [0, 0, 142]], np.uint8)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_load_palette_formats(tmp_path: Path) -> None:
    p = tmp_path / "palette.txt"
    p.write_text("# comment\n0 0 0\nroad 128 64 128\ntraffic light, 220, 20, 60\n\n0 0 142  # car\n")
    assert np.array_equal(load_palette(p), PALETTE)
    p.write_text("0 0 0\n1 2\n")
    with pytest.raises(ConfigError, match=r"palette.txt:2"):
        load_palette(p)
    p.write_text("1 2 3\n1 2 3\n")
    with pytest.raises(ConfigError, match="more than once"):
        load_palette(p)


def test_index_color_index_round_trip_is_identity(index_labels: Path, tmp_path: Path) -> None:
    before = _digest(index_labels)
    rgb_dir, back_dir = tmp_path / "rgb", tmp_path / "back"
    index_to_rgb(index_labels, rgb_dir, PALETTE, ignore_color=(255, 255, 255))
    rgb_to_index(rgb_dir, back_dir, PALETTE, ignore_color=(255, 255, 255))
    for src in sorted(index_labels.glob("*.png")):
        label = np.asarray(Image.open(src))
        colored = np.asarray(Image.open(rgb_dir / src.name))
        assert colored.shape == (*label.shape, 3)
        valid = label != 255
        assert np.array_equal(colored[valid], PALETTE[label[valid]])  # each pixel got its class color
        assert np.all(colored[~valid] == 255)
        back = Image.open(back_dir / src.name)
        assert back.mode == "L" and np.array_equal(np.asarray(back), label)
    assert _digest(index_labels) == before  # input untouched


def test_unknown_colors_listed_or_mapped_to_ignore(tmp_path: Path) -> None:
    src = tmp_path / "rgb"
    src.mkdir()
    image = np.zeros((4, 5, 3), np.uint8)
    image[0, 0] = (1, 2, 3)
    image[1, :] = PALETTE[2]
    Image.fromarray(image).save(src / "x.png")
    with pytest.raises(DataError, match=r"x\.png: 1 colors are not in the palette: \(1, 2, 3\) x1"):
        rgb_to_index(src, tmp_path / "out", PALETTE)
    rgb_to_index(src, tmp_path / "out", PALETTE, unknown_to_ignore=True)
    expected = np.zeros((4, 5), np.uint8)
    expected[1, :] = 2
    expected[0, 0] = 255
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "x.png")), expected)


def test_output_must_differ_from_input(index_labels: Path) -> None:
    before = _digest(index_labels)
    for call in (lambda: palette_to_l(index_labels, index_labels),
                 lambda: binary_to_index(index_labels, index_labels / "."),
                 lambda: index_to_rgb(index_labels, index_labels, PALETTE, ignore_color=(9, 9, 9))):
        with pytest.raises(DataError, match="never overwrite"):
            call()
    assert _digest(index_labels) == before


def test_binary_masks_to_zero_one(tmp_path: Path) -> None:
    src = tmp_path / "bin"
    src.mkdir()
    Image.fromarray(np.array([[0, 255, 127], [128, 255, 0]], np.uint8)).save(src / "m.png")
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(src / "done.png")  # already 0/1
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 1] = 255
    Image.fromarray(rgb).save(src / "rgb.png")  # white-on-black saved as RGB
    binary_to_index(src, tmp_path / "out")
    out = tmp_path / "out"
    assert np.array_equal(np.asarray(Image.open(out / "m.png")), [[0, 1, 0], [1, 1, 0]])
    assert np.array_equal(np.asarray(Image.open(out / "done.png")), [[0, 1], [1, 0]])
    assert np.array_equal(np.asarray(Image.open(out / "rgb.png")), [[0, 1], [0, 0]])


def test_palette_png_to_plain_l(tmp_path: Path) -> None:
    src = tmp_path / "pal"
    src.mkdir()
    label = np.array([[0, 1, 2], [3, 1, 0]], np.uint8)
    im = Image.fromarray(label)
    im.putpalette(PALETTE.reshape(-1).tolist())
    im.save(src / "p.png")
    assert Image.open(src / "p.png").mode == "P"
    palette_to_l(src, tmp_path / "out")
    out = Image.open(tmp_path / "out" / "p.png")
    assert out.mode == "L" and np.array_equal(np.asarray(out), label)


def test_dataset_root_is_mirrored(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(root / "images" / split / "s.png")
        Image.fromarray(np.full((3, 4, 3), PALETTE[1], np.uint8)).save(root / "labels" / split / "s.png")
    (root / "classes.txt").write_text("bg\nroad\nperson\ncar\n")
    written = rgb_to_index(root, tmp_path / "fixed", PALETTE)
    assert sorted(p.relative_to(tmp_path / "fixed").as_posix() for p in written) == [
        "labels/train/s.png", "labels/val/s.png"]
    assert (tmp_path / "fixed" / "images" / "val" / "s.png").is_file()
    assert (tmp_path / "fixed" / "classes.txt").read_text() == "bg\nroad\nperson\ncar\n"
    assert np.all(np.asarray(Image.open(tmp_path / "fixed" / "labels" / "train" / "s.png")) == 1)
    with pytest.raises(DataError, match="never overwrite"):
        rgb_to_index(root, root, PALETTE)


def test_progress_callback_counts_files(index_labels: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    palette_to_l(index_labels, tmp_path / "l", callback=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
