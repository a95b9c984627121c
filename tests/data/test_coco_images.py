"""One checker of COCO ``images[]`` records: each broken record, and the instance and panoptic doctors saying
the same words about it (they share ``seglab.data.coco_images``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seglab.data.coco_images import image_record_problem
from seglab.data.instance.checks import index_coco
from seglab.data.panoptic.format import index_coco_panoptic

GOOD = {"id": 1, "file_name": "a.png", "width": 4, "height": 3}

CASES = {
    "not an object": ([7], "images[0] must be an object with id, file_name, width, height; got 7"),
    "text id": ([{**GOOD, "id": "1"}], "images[0] must be an object with id"),
    "duplicate id": ([GOOD, {**GOOD, "file_name": "b.png"}], "images[1] (id 1): duplicate image id 1 ('b.png')"),
    # the first record is broken (no size) yet its id is taken: the second reuse is still a duplicate
    "duplicate of a broken record": ([{**GOOD, "width": 0}, GOOD], "images[1] (id 1): duplicate image id 1"),
    "zero width": ([{**GOOD, "width": 0}], "images[0] (id 1): width and height must be positive integers; got "
                                           "width=0, height=3"),
    "float height": ([{**GOOD, "height": 3.5}], "width and height must be positive integers"),
    "bomb": ([{**GOOD, "width": 100, "height": 100}], "claims 100x100 = 10,000 pixels, above the 50 limit"),
    "escaping name": ([{**GOOD, "file_name": "../a.png"}], "images[0] (id 1): "),
    "absolute name": ([{**GOOD, "file_name": "/etc/passwd"}], "images[0] (id 1): "),
}


def _problems(records: list, images_dir: Path | None) -> list[tuple[str, str]]:
    seen: set[int] = set()
    return [p for i, im in enumerate(records) if (p := image_record_problem(i, im, seen, images_dir, 50))]


def test_a_good_record_passes_and_its_id_is_taken(tmp_path: Path) -> None:
    seen: set[int] = set()
    assert image_record_problem(0, GOOD, seen, tmp_path, 50) is None
    assert seen == {1}


def test_file_names_are_not_checked_without_an_images_folder() -> None:
    assert _problems([{**GOOD, "file_name": "../a.png"}], None) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_broken_record_is_named_with_a_fix(tmp_path: Path, case: str) -> None:
    records, expected = CASES[case]
    problem, fix = _problems(records, tmp_path)[-1]
    assert expected in problem and fix


@pytest.mark.parametrize("case", sorted(CASES))
def test_instance_and_panoptic_doctors_report_the_same_record_problem(tmp_path: Path, case: str) -> None:
    records, expected = CASES[case]
    path = tmp_path / "x.json"
    doc = {"images": records, "annotations": [], "categories": []}
    instance = index_coco(doc, path, tmp_path, 50).problems
    # panoptic also wants an annotation per usable image: only the images[] rows are compared
    panoptic = [p for p in index_coco_panoptic(doc, path, tmp_path, tmp_path / "png", 50).problems
                if p.problem.startswith("images[")]
    assert expected in instance[-1].problem
    assert [(p.problem, p.fix) for p in instance] == [(p.problem, p.fix) for p in panoptic]
    assert {p.path for p in instance + panoptic} == {path}
