"""Without the extra: every SAM command says how to install it and exits 2; the rest of seglab is unaffected.

``segment_anything`` is hidden by putting ``None`` in ``sys.modules`` (an import then raises ImportError), so
these tests run the same with or without the package installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from seglab.cli import main


@pytest.fixture
def no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segment_anything", None)


@pytest.mark.parametrize("args", [
    ["annotate", "imgs", "--out", "ds", "--sam-checkpoint", "sam.pth", "--auto"],
    ["sam", "prompt", "imgs", "--prompts", "p.csv", "--out", "o", "--sam-checkpoint", "sam.pth"],
    ["sam", "auto", "imgs", "--out", "o", "--sam-checkpoint", "sam.pth"],
])
def test_sam_commands_say_how_to_install(no_extra: None, args: list[str], tmp_path: Path, capsys,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Segment Anything is not installed" in err and "pip install 'seglab[sam]'" in err
    assert "Traceback" not in err and not (tmp_path / "ds").exists()


def test_predict_refine_sam_says_how_to_install(no_extra: None, semantic_run: dict, tmp_path: Path, capsys) -> None:
    args = ["predict", str(semantic_run["ckpt"]), str(semantic_run["data"] / "images" / "val"), "--out",
            str(tmp_path / "p"), "--refine", "sam", "--sam-checkpoint", "sam.pth"]
    assert main(args) == 2
    assert "pip install 'seglab[sam]'" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "p").exists()


def test_the_package_imports_and_lists_types_without_it(no_extra: None, capsys) -> None:
    import seglab.sam as sam

    assert main(["sam", "types"]) == 0
    assert "vit_b: sam_vit_b_01ec64.pth (about 375 MB)" in capsys.readouterr().out
    with pytest.raises(sam.SamNotInstalled, match="pip install"):
        sam.require_segment_anything()
