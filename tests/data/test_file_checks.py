"""Per-file inspection of the dataset doctor (the whole-dataset cases are in test_checks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.file_checks import inspect_image, inspect_label


def test_clean_files_report_size_and_values(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray((np.arange(48).reshape(6, 8) % 3).astype(np.uint8)).save(tmp_path / "l.png")
    image, label = inspect_image(tmp_path / "i.png", True, 10**6), inspect_label(tmp_path / "l.png", True, 10**6)
    assert image.findings == [] and image.size == (8, 6)
    assert label.findings == [] and label.size == (8, 6) and label.values.tolist() == [0, 1, 2]
    assert not label.wide and inspect_label(tmp_path / "l.png", False, 10**6).values is None


def test_findings_never_raise(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"nope")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    [(problem, fix)] = inspect_image(tmp_path / "junk.png", False, 10**6).findings
    assert "not an image file" in problem and "remove it" in fix
    [(problem, fix)] = inspect_label(tmp_path / "rgb.png", True, 10**6).findings
    assert "RGB color label" in problem and "seglab data convert rgb-to-index" in fix
    [(problem, fix)] = inspect_image(tmp_path / "rgb.png", False, 40).findings
    assert "above the 40 limit" in problem and fix.endswith("--max-pixels 48")
