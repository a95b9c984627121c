"""`seglab data check|stats|synth|convert ...` end to end: one case per command, flags, exit 2 on user errors.

What the library finds, computes and writes is checked in tests/data/ (semantic/, instance/, test_synthetic);
here: each command runs, its flags reach the library, it prints or writes what the library returns, and user
errors exit 2 with a clear message and no traceback.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.data.problems import Problem

PALETTE = np.array([[0, 0, 0], [128, 64, 128], [220, 20, 60], [0, 0, 142]], np.uint8)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch) -> None:
    """Print tables 200 columns wide: at rich's default 80 off a terminal, long tmp paths wrap mid-word."""
    from seglab.cli.app import console

    monkeypatch.setattr(console, "_width", 200)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``seglab data ARGS``: the exit code and stdout + stderr, whitespace collapsed (rich wraps lines)."""
    rc = main(["data", *args])
    captured = capsys.readouterr()
    return rc, " ".join((captured.out + captured.err).split())


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def palette_file(tmp_path: Path) -> Path:
    path = tmp_path / "palette.txt"
    path.write_text("".join(f"{r} {g} {b}\n" for r, g, b in PALETTE))
    return path


# --- check -----------------------------------------------------------------------------------------------


def test_check_semantic_clean_dataset(make_dataset, capsys) -> None:
    root = make_dataset(splits=("train", "val"))
    rc, out = _run(capsys, "check", str(root))
    assert rc == 0
    assert "clean" in out and "8 files" in out


def test_check_semantic_problems_exit_2_with_the_table(make_dataset, capsys) -> None:
    root = make_dataset()
    (root / "labels/train/b.png").unlink()
    rc, out = _run(capsys, "check", str(root))
    assert rc == 2
    assert "images/train/b.png" in out and "has no label" in out  # the table names the file and the problem
    assert "1 problem(s) in 1 file(s)" in out and "Traceback" not in out


def test_check_flags_reach_the_doctor(make_dataset, capsys, monkeypatch) -> None:
    import seglab.data.semantic.checks as checks

    seen = {}

    def fake_check(root, **kwargs) -> list[Problem]:
        seen.update(root=root, **{k: v for k, v in kwargs.items() if k != "callback"})
        kwargs["callback"](1, 1)
        return []

    monkeypatch.setattr(checks, "check_dataset", fake_check)
    root = make_dataset()
    rc, out = _run(capsys, "check", str(root), "--num-classes", "2", "--ignore-index", "7", "--max-pixels", "48",
                   "--split", "train", "--split", "test")
    assert rc == 0 and "clean" in out and "1 files scanned" in out
    assert seen == {"root": root, "splits": ["train", "test"], "num_classes": 2, "ignore_index": 7,
                    "max_pixels": 48}


def test_check_instance_dataset(coco_root, capsys) -> None:
    rc, out = _run(capsys, "check", str(coco_root), "--task", "instance")
    assert rc == 0 and "clean" in out
    path = coco_root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 7
    path.write_text(json.dumps(data))
    rc, out = _run(capsys, "check", str(coco_root), "--task", "instance")
    assert rc == 2 and "instances_train.json" in out and "category id 7" in out and "Traceback" not in out


def test_check_instance_flags_reach_the_coco_checker(tmp_path, capsys, monkeypatch) -> None:
    seen = {}

    def fake_check(root, splits, max_pixels) -> list[Problem]:
        seen.update(root=root, splits=splits, max_pixels=max_pixels)
        return [Problem(root / "annotations/instances_train.json", "bad polygon", "fix it")]

    fake = types.SimpleNamespace(check_instance_dataset=fake_check)
    monkeypatch.setitem(sys.modules, "seglab.data.instance.checks", fake)
    rc, out = _run(capsys, "check", str(tmp_path), "--task", "instance", "--split", "train", "--max-pixels", "99")
    assert rc == 2 and "instances_train.json" in out
    assert seen == {"root": tmp_path, "splits": ["train"], "max_pixels": 99}


def test_check_missing_root_exits_2(tmp_path, capsys) -> None:
    rc, out = _run(capsys, "check", str(tmp_path / "nope"))
    assert rc == 2 and "not found" in out and "Traceback" not in out


# --- stats -----------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_stats(tmp_path: Path) -> Path:
    """Two 2x3 train pairs with hand-countable labels (as tests/data/semantic/test_stats.py); class 'bike' absent."""
    root = tmp_path / "stats"
    pairs = (("a", (255, 0, 51), [[0, 0, 1], [0, 255, 2]]), ("b", (0, 0, 153), [[1, 1, 1], [0, 1, 255]]))
    for stem, rgb, label in pairs:
        (root / "images" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((2, 3, 3), rgb, np.uint8)).save(root / "images" / "train" / f"{stem}.png")
        Image.fromarray(np.array(label, np.uint8)).save(root / "labels" / "train" / f"{stem}.png")
    (root / "classes.txt").write_text("road\ncar\nsign\nbike\n")
    return root


def test_stats_table_weights_and_json(tiny_stats: Path, tmp_path: Path, capsys) -> None:
    from seglab.data.semantic.stats import compute_stats

    out = tmp_path / "stats.json"
    rc, text = _run(capsys, "stats", str(tiny_stats), "--json", str(out))
    assert rc == 0
    assert "--class-weights 0.8333,0.6667,3.333,0" in text
    assert "--class-weights 1,0.8,2,0" in text
    assert "bike" in text and "absent" in text
    record = json.loads(out.read_text())
    assert record["pixel_counts"] == [4, 5, 1, 0]
    assert record == json.loads(json.dumps(compute_stats(tiny_stats, geometry=True)))  # the library's numbers
    # object scale (issue 25.1): road is one 2x2-box component in a, one pixel in b; car 1x1 in a, 2x3 in b
    assert "object scale" in text and "image longer side: 3-3 px" in text
    road, car = record["geometry"]["scale"][:2]
    assert (road["components"], road["side_p50"], road["frac_p90"]) == (2, 1.5, pytest.approx(1.9 / 3))
    assert (car["side_p50"], car["side_p90"]) == (2.0, pytest.approx(2.8))
    assert car["largest_share"] == pytest.approx(2.5 / 6)


def test_stats_bad_classes_file_exits_2(make_dataset, capsys) -> None:
    root = make_dataset()
    (root / "classes.txt").write_text("sky\n\nroad\ncar\n")
    rc, out = _run(capsys, "stats", str(root))
    assert rc == 2 and "line 2 is blank" in out and "Traceback" not in out


# --- synth -----------------------------------------------------------------------------------------------


def test_synth_digits(tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    rc, text = _run(capsys, "synth", "--kind", "digits", "--out", str(out), "--n-train", "3", "--n-val", "1",
                    "--seed", "2")
    assert rc == 0 and "seglab data check" in text
    assert len(list((out / "images" / "train").glob("*.png"))) == 3
    assert len(list((out / "images" / "val").glob("*.png"))) == 1
    assert (out / "classes.txt").read_text().split()[1] == "0"  # digits, not shapes


def test_synth_too_small_exits_2(tmp_path: Path, capsys) -> None:
    rc, out = _run(capsys, "synth", "--kind", "shapes", "--out", str(tmp_path / "s"), "--size", "8")
    assert rc == 2 and "need at least" in out and "got 8" in out and "Traceback" not in out


# --- convert ---------------------------------------------------------------------------------------------


def test_convert_index_to_rgb(index_labels: Path, palette_file: Path, tmp_path: Path, capsys) -> None:
    rgb = tmp_path / "rgb"
    rc, out = _run(capsys, "convert", "index-to-rgb", str(index_labels), "--palette", str(palette_file),
                   "--out", str(rgb), "--ignore-color", "255,255,255")
    assert rc == 0 and "wrote 3 label files" in out
    for src in index_labels.glob("*.png"):
        label, colored = np.asarray(Image.open(src)), np.asarray(Image.open(rgb / src.name))
        valid = label != 255
        assert np.array_equal(colored[valid], PALETTE[label[valid]]) and np.all(colored[~valid] == 255)


def test_convert_rgb_to_index(index_labels: Path, palette_file: Path, tmp_path: Path, capsys) -> None:
    from seglab.data.semantic.convert import index_to_rgb

    rgb, back = tmp_path / "rgb", tmp_path / "back"
    index_to_rgb(index_labels, rgb, PALETTE, ignore_color=(255, 255, 255))
    rc, out = _run(capsys, "convert", "rgb-to-index", str(rgb), "--palette", str(palette_file), "--out", str(back),
                   "--ignore-color", "255, 255, 255")
    assert rc == 0 and "wrote 3 label files" in out
    for p in index_labels.glob("*.png"):
        assert np.array_equal(np.asarray(Image.open(back / p.name)), np.asarray(Image.open(p)))


def test_convert_binary(tmp_path: Path, capsys) -> None:
    src = tmp_path / "bin"
    src.mkdir()
    Image.fromarray(np.array([[0, 255, 127], [128, 255, 0]], np.uint8)).save(src / "m.png")
    rc, _ = _run(capsys, "convert", "binary", str(src), "--out", str(tmp_path / "out"), "--threshold", "200")
    assert rc == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "m.png")), [[0, 1, 0], [0, 1, 0]])


def test_convert_palette_to_l(tmp_path: Path, capsys) -> None:
    src = tmp_path / "pal"
    src.mkdir()
    label = np.array([[0, 1, 2], [3, 1, 0]], np.uint8)
    im = Image.fromarray(label)
    im.putpalette(PALETTE.reshape(-1).tolist())
    im.save(src / "p.png")
    rc, _ = _run(capsys, "convert", "palette-to-l", str(src), "--out", str(tmp_path / "l"))
    assert rc == 0
    out = Image.open(tmp_path / "l" / "p.png")
    assert out.mode == "L" and np.array_equal(np.asarray(out), label)


def test_convert_masks_to_coco(mask_root: Path, tmp_path: Path, capsys) -> None:
    from seglab.data.instance.convert import masks_to_coco

    out = tmp_path / "out.json"
    rc, text = _run(capsys, "convert", "masks-to-coco", str(mask_root), "--split", "train", "--out", str(out))
    assert rc == 0 and "3 images, 5 instances" in text
    masks_to_coco(mask_root, "train", tmp_path / "ref.json")
    assert json.loads(out.read_text()) == json.loads((tmp_path / "ref.json").read_text())
    assert len(json.loads(out.read_text())["annotations"]) == 5


def test_convert_coco_to_masks(coco_root: Path, tmp_path: Path, capsys) -> None:
    from seglab.data.io import read_label

    back = tmp_path / "back"
    rc, text = _run(capsys, "convert", "coco-to-masks", str(coco_root), "--split", "train", "--out", str(back))
    assert rc == 0 and "3 masks, 5 instances" in text
    for stem in ("a", "b", "c"):
        np.testing.assert_array_equal(read_label(back / f"{stem}.png"),
                                      read_label(coco_root / "masks" / "train" / f"{stem}.png"))
        assert json.loads((back / f"{stem}.json").read_text()) == json.loads(
            (coco_root / "masks" / "train" / f"{stem}.json").read_text())


@pytest.mark.parametrize(("args", "message"), [
    (["binary", "{idx}", "--out", "{idx}"], "never overwrite"),
    (["palette-to-l", "{idx}", "--out", "{idx}/."], "never overwrite"),
    (["index-to-rgb", "{idx}", "--palette", "{pal}", "--out", "{tmp}/rgb"], "ignore pixels .255. but no ignore color"),
    (["index-to-rgb", "{idx}", "--palette", "{pal}", "--out", "{tmp}/rgb", "--ignore-color", "1,2"],
     "--ignore-color: expected R,G,B"),
    (["index-to-rgb", "{idx}", "--palette", "{pal}", "--out", "{tmp}/rgb", "--ignore-color", "0,0,300"],
     "--ignore-color: expected R,G,B"),
    (["rgb-to-index", "{rgb}", "--palette", "{pal}", "--out", "{tmp}/back"], "colors are not in the palette"),
    (["rgb-to-index", "{rgb}", "--palette", "{tmp}/nope.txt", "--out", "{tmp}/back"], "palette file not found"),
    (["rgb-to-index", "{tmp}/nowhere", "--palette", "{pal}", "--out", "{tmp}/back"], "folder not found"),
    (["masks-to-coco", "{coco}", "--split", "train"], "already exists"),
    (["coco-to-masks", "{coco}", "--split", "train"], "already holds PNG"),
], ids=["binary-in-place", "palette-to-l-in-place", "no-ignore-color", "ignore-color-2-values",
        "ignore-color-300", "unknown-colors", "no-palette-file", "no-input", "coco-exists", "masks-exist"])
def test_convert_user_errors_exit_2_and_touch_nothing(index_labels: Path, palette_file: Path, coco_root: Path,
                                                      tmp_path: Path, capsys, args: list[str], message: str) -> None:
    from seglab.data.semantic.convert import index_to_rgb

    rgb = tmp_path / "rgb_in"
    index_to_rgb(index_labels, rgb, PALETTE, ignore_color=(255, 255, 255))  # white: not a palette color
    before = {d: _digest(d) for d in (index_labels, rgb, coco_root)}
    filled = [a.format(idx=index_labels, pal=palette_file, tmp=tmp_path, rgb=rgb, coco=coco_root) for a in args]
    rc, out = _run(capsys, "convert", *filled)
    assert rc == 2
    assert re.search(message, out), out
    assert "Traceback" not in out
    assert {d: _digest(d) for d in before} == before
    assert not (tmp_path / "rgb").exists() and not (tmp_path / "back").exists()


def test_convert_force_replaces_an_output(coco_root: Path, capsys) -> None:
    assert _run(capsys, "convert", "masks-to-coco", str(coco_root), "--split", "train")[0] == 2
    rc, out = _run(capsys, "convert", "masks-to-coco", str(coco_root), "--split", "train", "--force")
    assert rc == 0 and "instances_train.json" in out
    rc, out = _run(capsys, "convert", "coco-to-masks", str(coco_root), "--split", "train", "--force")
    assert rc == 0 and "3 masks, 5 instances" in out
