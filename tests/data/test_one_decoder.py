"""Every image decode goes through ``seglab.data.io``: no other module opens an image with Pillow, so what a
pixel means (stored orientation, 16-bit and float scaling, NaN) is decided once. An upload to ``seglab serve``
is read as ``seglab predict`` reads the same file."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.io import read_image

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "seglab"
DECODER = PACKAGE / "data" / "io.py"  # the only module allowed to call Image.open


def _pil_opens(path: Path) -> list[int]:
    """Lines of ``Image.open(...)`` / ``PIL.Image.open(...)`` calls and of ``from PIL.Image import open``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open":
            owner = node.func.value
            if (isinstance(owner, ast.Name) and owner.id == "Image") or (
                    isinstance(owner, ast.Attribute) and owner.attr == "Image"):
                lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "PIL.Image" and any(
                a.name == "open" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_data_io_opens_images_with_pillow() -> None:
    found = [f"{p.relative_to(PACKAGE.parent)}:{line}" for p in sorted(PACKAGE.rglob("*.py")) if p != DECODER
             for line in _pil_opens(p)]
    assert not found, "decode images with seglab.data.io (open_image / decode_image / read_image):\n" + "\n".join(found)


def test_the_scan_sees_a_pil_open(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import PIL.Image\nfrom PIL import Image\nImage.open('a')\nPIL.Image.open('b')\n"
                 "s = \"Image.open('c')\"\n")
    assert _pil_opens(f) == [3, 4]  # the call in a string (a fix message) is not a decode
    assert _pil_opens(DECODER), "data/io.py must hold the one Image.open"


@pytest.mark.parametrize("channels", [1, 3])
def test_an_upload_decodes_as_predict_reads_the_file(tmp_path: Path, channels: int) -> None:
    from seglab.deploy.server import decode

    a = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, np.nan]], np.float32)  # one NaN: the range is the finite pixels'
    Image.fromarray(a, mode="F").save(tmp_path / "x.tif")
    got = decode((tmp_path / "x.tif").read_bytes(), channels, 100)
    np.testing.assert_array_equal(got, read_image(tmp_path / "x.tif", channels=channels))
    # by hand: 0..4 -> 0, 63.75, 127.5, 191.25, 255 rounded half to even; NaN reads 0
    np.testing.assert_array_equal(got[..., 0], [[0, 64, 128], [191, 255, 0]])
    b = np.array([[0, 1000], [3000, 4000]], np.uint16)
    buf = io.BytesIO()
    Image.fromarray(b).save(buf, format="PNG")
    (tmp_path / "y.png").write_bytes(buf.getvalue())
    np.testing.assert_array_equal(decode(buf.getvalue(), channels, 100), read_image(tmp_path / "y.png", channels))
