"""`seglab data check|synth|convert` on panoptic data end to end: each command runs, reaches the library and
exits 2 with the file named on bad input. What the library finds and writes: tests/data/panoptic/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.data.io import read_label


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch) -> None:
    """Tables 200 columns wide: at rich's default 80 off a terminal, long tmp paths wrap mid-word."""
    from seglab.cli.app import console

    monkeypatch.setattr(console, "_width", 200)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["data", *args])
    captured = capsys.readouterr()
    return rc, " ".join((captured.out + captured.err).split())


@pytest.fixture
def pan(tmp_path: Path, capsys) -> Path:
    """`seglab data synth --kind panoptic`: 3 train + 1 val images of 32 px."""
    out = tmp_path / "pan"
    rc, text = _run(capsys, "synth", "--kind", "panoptic", "--out", str(out), "--n-train", "3", "--n-val", "1",
                    "--size", "32")
    assert rc == 0 and "wrote panoptic dataset" in text
    return out


def test_synth_and_check_clean(pan: Path, capsys) -> None:
    assert sorted(p.name for p in (pan / "instances" / "train").iterdir()) == [
        f"panoptic_train_0000{i}.png" for i in range(3)]
    rc, text = _run(capsys, "check", str(pan))
    assert rc == 0 and "panoptic dataset" in text and "is clean (4 images scanned)" in text
    rc, text = _run(capsys, "check", str(pan), "--task", "panoptic", "--split", "val")
    assert rc == 0 and "(1 images scanned)" in text


def test_check_problems_exit_2_naming_the_file(pan: Path, capsys) -> None:
    path = pan / "instances" / "train" / "panoptic_train_00001.png"
    inst = read_label(path).copy()
    inst[0, :] = 9  # on the sky
    Image.fromarray(inst.astype(np.uint8)).save(path)
    rc, text = _run(capsys, "check", str(pan))
    assert rc == 2 and "instances/train/panoptic_train_00001.png" in text
    assert "lie on stuff or void pixels" in text and "1 problem(s) in 1 file(s)" in text and "Traceback" not in text


def test_warnings_are_shown_and_exit_0(pan: Path, capsys, tmp_path: Path) -> None:
    rc, _ = _run(capsys, "convert", "seglab-to-coco-panoptic", str(pan), "--out", str(tmp_path / "c"))
    assert rc == 0
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c" / "images" / "train" / "extra.png")
    rc, text = _run(capsys, "check", str(tmp_path / "c"))
    assert rc == 0 and "1 warning(s)" in text and "images/train/extra.png" in text and "is clean" in text


def test_every_converter_runs(pan: Path, capsys, tmp_path: Path) -> None:
    for command, out in (("seglab-to-coco-panoptic", "coco"), ("panoptic-to-semantic", "sem"),
                         ("panoptic-to-instance", "inst")):
        rc, text = _run(capsys, "convert", command, str(pan), "--out", str(tmp_path / out))
        assert rc == 0 and "wrote" in text and "4 images" in text, text
    rc, text = _run(capsys, "convert", "coco-panoptic-to-seglab", str(tmp_path / "coco"), "--out",
                    str(tmp_path / "back"), "--split", "val")
    assert rc == 0 and "1 images" in text
    assert (tmp_path / "back" / "instances" / "val").is_dir() and not (tmp_path / "back" / "images" / "train").exists()
    rc, text = _run(capsys, "convert", "semantic-to-panoptic", str(tmp_path / "sem"), "--out", str(tmp_path / "p2"),
                    "--things", "circle, square,triangle")
    assert rc == 0 and "instances" in text
    assert json.loads((tmp_path / "p2" / "panoptic.json").read_text()) == {"things": ["circle", "square", "triangle"]}
    rc, text = _run(capsys, "convert", "semantic-to-panoptic", str(tmp_path / "sem"), "--out", str(tmp_path / "p3"),
                    "--things", "circle,square,triangle", "--instances", str(tmp_path / "inst"))
    assert rc == 0
    for split in ("train", "val"):  # instance data of the synthetic shapes gives back its instances
        for p in (pan / "instances" / split).iterdir():
            got = read_label(tmp_path / "p3" / "instances" / split / p.name)
            want = read_label(p)
            assert len(np.unique(got)) == len(np.unique(want))
            assert {tuple(np.flatnonzero(got == k)) for k in np.unique(got)} == \
                {tuple(np.flatnonzero(want == k)) for k in np.unique(want)}
    for out in ("coco", "p2", "p3"):
        assert _run(capsys, "check", str(tmp_path / out))[0] == 0
    assert _run(capsys, "check", str(tmp_path / "inst"))[0] == 0  # the instance doctor accepts its output


def test_converter_errors_exit_2(pan: Path, capsys, tmp_path: Path) -> None:
    rc, text = _run(capsys, "convert", "panoptic-to-semantic", str(pan), "--out", str(pan / "x"))
    assert rc == 2 and "inside the input dataset" in text
    rc, text = _run(capsys, "convert", "semantic-to-panoptic", str(pan), "--out", str(tmp_path / "o"),
                    "--things", "bus")
    assert rc == 2 and "--things: ['bus']" in text
    (pan / "labels" / "val" / "panoptic_val_00000.png").unlink()
    rc, text = _run(capsys, "convert", "seglab-to-coco-panoptic", str(pan), "--out", str(tmp_path / "o"))
    assert rc == 2 and "labels/val/panoptic_val_00000.png: missing" in text and "Traceback" not in text
    assert not (tmp_path / "o").exists()


def test_stats_of_panoptic_data(pan: Path, tmp_path: Path, capsys) -> None:
    rc, text = _run(capsys, "stats", str(pan))  # the simple layout: its labels/ are semantic labels
    assert rc == 0 and "circle" in text and "--class-weights" in text
    coco = tmp_path / "coco"
    assert _run(capsys, "convert", "seglab-to-coco-panoptic", str(pan), "--out", str(coco))[0] == 0
    rc, text = _run(capsys, "stats", str(coco))
    assert rc == 2 and "COCO panoptic data" in text and "coco-panoptic-to-seglab" in text
