"""`seglab data split` (data/split.py) and the doctor's split warnings: flat images/ + labels/ -> seglab's layout,
originals untouched, deterministic by seed, every bad layout refused with the files named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.data.problems import split_warnings
from seglab.data.semantic.checks import check_dataset
from seglab.data.split import split_dataset, val_count
from seglab.errors import ConfigError, DataError


def _flat(root: Path, stems: str = "abcde", palette: bool = True) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for s in stems:
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(root / "images" / f"{s}.jpg")
        Image.fromarray((np.arange(48).reshape(6, 8) % 2).astype(np.uint8)).save(root / "labels" / f"{s}.png")
    (root / "classes.txt").write_text("bg\nfg\n")
    if palette:
        (root / "palette.txt").write_text("0 0 0\n255 0 0\n")
    return root


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_val_count_keeps_both_splits() -> None:
    assert [val_count(3, 0.2), val_count(10, 0.3), val_count(2, 0.9), val_count(100, 0.2)] == [1, 3, 1, 20]


def test_flat_layout_becomes_train_and_val_copies(tmp_path: Path) -> None:
    src = _flat(tmp_path / "mine")
    before = _digest(src)
    result = split_dataset(src, tmp_path / "ds", val=0.2, seed=0)
    out = tmp_path / "ds"
    assert _digest(src) == before  # the originals are untouched
    assert len(result.val) == 1 and len(result.train) == 4 and sorted(result.train + result.val) == list("abcde")
    for split, stems in (("train", result.train), ("val", result.val)):
        assert sorted(p.stem for p in (out / "images" / split).iterdir()) == sorted(stems)
        for s in stems:
            assert (out / "images" / split / f"{s}.jpg").read_bytes() == (src / "images" / f"{s}.jpg").read_bytes()
            assert (out / "labels" / split / f"{s}.png").read_bytes() == (src / "labels" / f"{s}.png").read_bytes()
            assert not (out / "images" / split / f"{s}.jpg").is_symlink()
    assert (out / "classes.txt").read_text() == "bg\nfg\n" and (out / "palette.txt").is_file()
    assert check_dataset(out) == [] and split_warnings(out) == []


def test_the_same_seed_gives_the_same_split(tmp_path: Path) -> None:
    src = _flat(tmp_path / "mine", stems="abcdefghij")
    runs = [split_dataset(src, tmp_path / f"o{i}", val=0.3, seed=seed).val for i, seed in enumerate((7, 7, 1, 2, 3))]
    assert runs[0] == runs[1] and len(runs[0]) == 3
    assert len({tuple(r) for r in runs}) > 1  # other seeds divide differently


def test_links_point_at_the_originals(tmp_path: Path) -> None:
    src = _flat(tmp_path / "mine")
    result = split_dataset(src, tmp_path / "ds", link=True)
    link = tmp_path / "ds" / "labels" / "val" / f"{result.val[0]}.png"
    assert link.is_symlink() and link.resolve() == (src / "labels" / f"{result.val[0]}.png").resolve()


def test_a_train_only_dataset_is_split_too(tmp_path: Path) -> None:
    src = _flat(tmp_path / "flat")
    ds = tmp_path / "trainonly"
    for part in ("images", "labels"):
        (src / part).rename(tmp_path / part)
        (ds / part).mkdir(parents=True)
        (tmp_path / part).rename(ds / part / "train")
    warned = split_warnings(ds)
    assert len(warned) == 1 and "no val split" in warned[0].problem and "seglab data split" in warned[0].fix
    result = split_dataset(ds, tmp_path / "ds", val=0.4)
    assert len(result.val) == 2 and check_dataset(tmp_path / "ds") == []


def _no_label(src: Path) -> str:
    (src / "labels" / "b.png").unlink()
    return "1 images have no label (stems must match): b.jpg"


def _no_image(src: Path) -> str:
    (src / "images" / "c.jpg").unlink()
    return "1 labels have no image (stems must match): c.png"


def _no_labels_folder(src: Path) -> str:
    for p in (src / "labels").iterdir():
        p.unlink()
    (src / "labels").rmdir()
    return "no labels/ folder beside images/"


def _webp(src: Path) -> str:
    (src / "images" / "a.jpg").rename(src / "images" / "a.webp")
    return "format .webp is not supported"


def _one_pair(src: Path) -> str:
    for s in "bcde":
        (src / "images" / f"{s}.jpg").unlink()
        (src / "labels" / f"{s}.png").unlink()
    return "1 image/label pair(s); a train and a val split need at least 2"


def _already_split(src: Path) -> str:
    (src / "images" / "train").mkdir()
    (src / "images" / "val").mkdir()
    for p in (src / "images").glob("*.jpg"):
        p.unlink()
    return "already split"


@pytest.mark.parametrize("breaks", [_no_label, _no_image, _no_labels_folder, _webp, _one_pair, _already_split])
def test_bad_layouts_are_refused_and_nothing_is_written(tmp_path: Path, breaks) -> None:
    src = _flat(tmp_path / "mine")
    words = breaks(src)
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        split_dataset(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_bad_val_and_outputs(tmp_path: Path) -> None:
    src = _flat(tmp_path / "mine")
    for val in (0.0, 1.0, -0.2, True):
        with pytest.raises(ConfigError, match="--val"):
            split_dataset(src, tmp_path / "ds", val=val)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(DataError, match="already exists and is not empty"):
        split_dataset(src, tmp_path / "full")
    with pytest.raises(DataError, match="inside the input dataset"):
        split_dataset(src, src / "split")
    assert (tmp_path / "full" / "x").read_text() == "mine"


def test_cli_split_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _flat(tmp_path / "mine")
    assert main(["data", "split", str(src), "--val", "0.4", "--seed", "5", "--link"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 train and 2 val pairs (links to the originals, seed 5)" in out
    assert (tmp_path / "mine_split" / "images" / "val").is_dir()
    assert main(["data", "split", str(src)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


def test_cli_check_warns_about_a_missing_val_split(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   make_dataset) -> None:
    root = make_dataset(n=2, splits=("train",))
    assert main(["data", "check", str(root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no val split" in out and "is clean" in out


def test_split_warnings_for_an_empty_instance_val_split(mask_root: Path) -> None:
    (mask_root / "images" / "val").mkdir()
    warned = split_warnings(mask_root, "instance")
    assert len(warned) == 1 and "the val split is empty" in warned[0].problem
    (mask_root / "images" / "val").rmdir()
    assert "no val split (found train)" in split_warnings(mask_root, "instance")[0].problem
