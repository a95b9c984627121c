"""Training's preflight: every file decoded before epoch 1, all-ignore splits refused, clean scans remembered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import preflight as P
from seglab.data.semantic.dataset import SegmentationFolder
from seglab.errors import DataError


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_image_is_found_before_training(tiny_data: Path) -> None:
    victim = tiny_data / "images" / "train" / "train_005.png"
    _truncate(victim)
    with pytest.raises(DataError, match=r"(?s)train_005.png: corrupt or truncated.*seglab data check"):
        SegmentationFolder(tiny_data, "train", num_classes=3)


def test_all_ignore_labels_are_refused(tiny_data: Path) -> None:
    for label in (tiny_data / "labels" / "val").glob("*.png"):
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(label)
    SegmentationFolder(tiny_data, "train", num_classes=3)  # the other split is fine
    with pytest.raises(DataError, match=r"labels/val: every pixel of every label is the ignore value 255"):
        SegmentationFolder(tiny_data, "val", num_classes=3)


def test_a_clean_scan_is_remembered_until_a_file_changes(tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = P.check_dataset
    monkeypatch.setattr(P, "check_dataset", lambda *a, **k: calls.append(k["fast"]) or real(*a, **k))
    SegmentationFolder(tiny_data, "train", num_classes=3)
    SegmentationFolder(tiny_data, "train", num_classes=3)
    assert calls == [False]  # one full scan, then the cache
    SegmentationFolder(tiny_data, "train", num_classes=3, ignore_index=254)
    assert calls == [False, False]  # other settings, other verdict
    _truncate(tiny_data / "images" / "train" / "train_000.png")  # size and mtime change
    with pytest.raises(DataError, match="train_000.png"):
        SegmentationFolder(tiny_data, "train", num_classes=3)
    assert len(calls) == 3


def test_the_cache_never_touches_the_dataset(tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))
    before = sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*"))
    SegmentationFolder(tiny_data, "train", num_classes=3)
    assert sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*")) == before
    assert len(list((tmp_path / "cache" / "preflight").iterdir())) == 1


@pytest.mark.parametrize("layout", ["coco", "masks"])
def test_instance_training_decodes_every_image_first(layout: str, request: pytest.FixtureRequest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from seglab.data.instance.coco import open_instance_split

    root = request.getfixturevalue("coco_root" if layout == "coco" else "mask_root")
    assert (root / "annotations").exists() == (layout == "coco")
    calls = []
    real = P.check_instance_dataset
    monkeypatch.setattr(P, "check_instance_dataset", lambda *a, **k: calls.append(k["decode"]) or real(*a, **k))
    open_instance_split(root, "train")
    open_instance_split(root, "train")
    assert calls == [True]  # decoded once, then remembered
    victim = sorted((root / "images" / "train").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{victim.name}.*corrupt or truncated"):
        open_instance_split(root, "train")
