"""Synthetic demo data: deterministic, self-consistent across its layouts, and clean for the doctor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from seglab.data.synthetic import DIGIT_CLASSES, SHAPE_CLASSES, make_digits, make_shapes
from seglab.errors import ConfigError, DataError

# pycocotools (the independent RLE decoder here) trips a numpy-2 deprecation inside itself.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes") / "ds", n_train=8, n_val=3, size=64, seed=3)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_digits(tmp_path_factory.mktemp("digits") / "ds", n_train=8, n_val=3, seed=3)


def test_layout_and_class_files(shapes: Path) -> None:
    assert (shapes / "classes.txt").read_text().split("\n")[:4] == list(SHAPE_CLASSES)
    palette = [line.split() for line in (shapes / "palette.txt").read_text().splitlines()]
    assert len(palette) == 4 and all(len(row) == 3 for row in palette)
    for split, n in (("train", 8), ("val", 3)):
        for sub, ext in (("images", ".png"), ("labels", ".png"), ("masks", ".png"), ("masks", ".json")):
            assert len(list((shapes / sub / split).glob(f"*{ext}"))) == n
        assert (shapes / "annotations" / f"instances_{split}.json").is_file()
    image = Image.open(next((shapes / "images" / "train").glob("*.png")))
    assert image.mode == "RGB" and image.size == (64, 64)


def test_deterministic_for_a_seed(shapes: Path, tmp_path: Path) -> None:
    again = make_shapes(tmp_path / "again", n_train=8, n_val=3, size=64, seed=3)
    assert _digest(again) == _digest(shapes)
    first, last = "images/train/shapes_train_00000.png", "images/train/shapes_train_00007.png"
    other = make_shapes(tmp_path / "other", n_train=8, n_val=3, size=64, seed=4)
    assert _digest(other)[first] != _digest(shapes)[first]
    more = make_shapes(tmp_path / "more", n_train=10, n_val=3, size=64, seed=3)  # growing keeps earlier images
    assert _digest(more)[last] == _digest(shapes)[last]


def _check_consistent(root: Path, split: str, num_classes: int) -> list[int]:
    """Semantic labels, instance masks, per-mask JSON and COCO all describe the same objects."""
    coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    names = (root / "classes.txt").read_text().split()
    assert [c["id"] for c in coco["categories"]] == list(range(1, num_classes))
    assert [c["name"] for c in coco["categories"]] == names[1:]
    by_image = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann)
    counts = []
    for img in coco["images"]:
        stem = Path(img["file_name"]).stem
        inst = np.asarray(Image.open(root / "masks" / split / f"{stem}.png")).astype(np.int64)
        labels = json.loads((root / "masks" / split / f"{stem}.json").read_text())["labels"]
        semantic = np.asarray(Image.open(root / "labels" / split / f"{stem}.png"))
        assert sorted(set(np.unique(inst).tolist()) - {0}) == list(range(1, len(labels) + 1))
        assert np.array_equal(semantic, np.array([0, *labels])[inst])
        anns = by_image[img["id"]]
        assert [a["category_id"] for a in anns] == labels
        for k, ann in enumerate(anns, 1):
            m = coco_mask.decode(ann["segmentation"]).astype(bool)  # pycocotools as the independent decoder
            assert np.array_equal(m, inst == k)
            ys, xs = np.nonzero(m)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["area"] == m.sum() and ann["iscrowd"] == 0
        counts.append(len(labels))
    return counts


def test_shapes_layouts_agree(shapes: Path) -> None:
    counts = _check_consistent(shapes, "train", 4) + _check_consistent(shapes, "val", 4)
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) > 1


def test_digits_layouts_agree(digits: Path) -> None:
    assert (digits / "classes.txt").read_text().split() == list(DIGIT_CLASSES)
    counts = _check_consistent(digits, "train", 11)
    assert counts == [2] * 8  # two digits per image
    image = Image.open(next((digits / "images" / "val").glob("*.png")))
    assert image.mode == "RGB" and image.size == (64, 64)


def test_passes_the_doctor(shapes: Path, digits: Path) -> None:
    checks = pytest.importorskip("seglab.data.semantic.checks")
    if not hasattr(checks, "check_dataset"):
        pytest.skip("seglab.data.semantic.checks.check_dataset not written yet")
    assert checks.check_dataset(shapes) == []
    assert checks.check_dataset(digits) == []
    instance_checks = pytest.importorskip("seglab.data.instance.checks")
    assert instance_checks.check_instance_dataset(shapes, None, 10**8) == []
    assert instance_checks.check_instance_dataset(digits, None, 10**8) == []


def test_rerun_replaces_and_refuses_foreign_folders(tmp_path: Path) -> None:
    root = make_shapes(tmp_path / "ds", n_train=4, n_val=1, size=48)
    make_shapes(root, n_train=2, n_val=1, size=48)  # a smaller rerun leaves no stale pairs behind
    assert len(list((root / "images" / "train").iterdir())) == 2
    assert len(list((root / "masks" / "train").iterdir())) == 4
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not made by `seglab data synth`"):
        make_shapes(foreign, n_train=1, n_val=1)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_too_small_images_and_negative_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="size: shapes images need at least .* got 8"):
        make_shapes(tmp_path / "s", n_train=1, n_val=1, size=8)
    with pytest.raises(ConfigError, match="expected a count >= 0, got -1"):
        make_digits(tmp_path / "d", n_train=-1, n_val=1)
    assert not (tmp_path / "s").exists() and not (tmp_path / "d").exists()


def test_progress_callback_counts_every_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    make_shapes(tmp_path / "p", n_train=2, n_val=1, size=32, callback=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
