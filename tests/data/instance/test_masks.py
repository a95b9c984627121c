"""InstanceMaskFolder: categories from classes.txt (background line or not), the single-category shortcut."""

from __future__ import annotations

from pathlib import Path

import pytest

from seglab.data.instance.checks import check_instance_dataset
from seglab.data.instance.masks import InstanceMaskFolder
from seglab.data.io import DEFAULT_MAX_PIXELS
from seglab.errors import DataError


def test_mask_folder_single_category_needs_no_json(mask_root: Path) -> None:
    (mask_root / "classes.txt").write_text("thing\n")  # one category: id 1, no background line
    for p in (mask_root / "masks" / "train").glob("*.json"):
        p.unlink()
    assert check_instance_dataset(mask_root, ["train"], DEFAULT_MAX_PIXELS) == []
    ds = InstanceMaskFolder(mask_root, "train")
    assert ds.classes == ["background", "thing"] and ds[1][1]["labels"].tolist() == [1, 1, 1]


def test_classes_without_background_line_start_at_id_1(mask_root: Path) -> None:
    (mask_root / "classes.txt").write_text("circle\nsquare\ntriangle\n")  # COCO style: line i = id i + 1
    ds = InstanceMaskFolder(mask_root, "train")
    assert ds.cat_ids == [0, 1, 2, 3] and ds.classes == ["background", "circle", "square", "triangle"]


def test_without_classes_file_categories_come_from_the_json(mask_root: Path) -> None:
    (mask_root / "classes.txt").unlink()
    ds = InstanceMaskFolder(mask_root, "train")
    assert ds.cat_ids == [0, 1, 2, 3] and ds.classes == ["background", "class_1", "class_2", "class_3"]
    assert ds.image_categories() == [{1, 3}, {1, 2}, set()]


def test_blank_line_in_classes_file_is_refused(mask_root: Path) -> None:
    (mask_root / "classes.txt").write_text("background\ncircle\n\nsquare\n")
    with pytest.raises(DataError, match=r"classes\.txt:3: line 3 is blank"):
        InstanceMaskFolder(mask_root, "train")
    problems = check_instance_dataset(mask_root, ["train"], DEFAULT_MAX_PIXELS)
    assert [(Path(p.path).name, p.problem.startswith("line 3 is blank")) for p in problems] == [("classes.txt", True)]


def test_missing_json_with_several_categories(mask_root: Path) -> None:
    (mask_root / "masks" / "train" / "a.json").unlink()
    ds = InstanceMaskFolder(mask_root, "train")
    with pytest.raises(DataError, match=r"a\.json: missing"):
        ds[0]


def test_no_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images"):
        InstanceMaskFolder(tmp_path, "train")


def test_an_item_never_allocates_more_than_the_mask_budget(mask_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seglab.data.instance.masks as M

    folder = InstanceMaskFolder(mask_root, "train")
    image, target = folder[0]  # within budget
    n, h, w = target["masks"].shape
    monkeypatch.setattr(M, "MAX_MASK_BYTES", n * h * w - 1)
    with pytest.raises(DataError, match=r"instance ids .* would need .* GiB"):
        folder[0]
