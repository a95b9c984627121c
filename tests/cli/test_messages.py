"""Messages that must not mislead (issue 26, reliability 7), each through the CLI: exit 2, no traceback, a fix
that exists.

A checkpoint from a newer seglab names the versions (not "did you mean 'unet'?"); a garbage ``.pt`` never
passes on torch's advice to turn the safe loader off; ``--opset 999`` is refused before torch's converter
logs a traceback; a negative ``--min-area`` is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seglab import __version__
from seglab.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, " ".join((captured.out + captured.err).split())


def test_a_checkpoint_from_a_newer_seglab_names_the_versions(semantic_run: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from seglab.checkpoint import save_checkpoint

    state = torch.load(semantic_run["ckpt"], weights_only=True)
    state.update(seglab_version="99.1.0", model={"name": "unet_v99", "num_classes": 3, "options": {}})
    save_checkpoint(tmp_path / "new.pt", state)
    rc, out = _run(capsys, "evaluate", str(tmp_path / "new.pt"), "--data", str(semantic_run["data"]))
    assert rc == 2 and "Traceback" not in out
    assert "seglab 99.1.0" in out and f"this seglab {__version__}" in out and "pip install -U seglab" in out
    assert "did you mean" not in out


@pytest.mark.parametrize("content", [os.urandom(256), b"\x80\x02}q\x00X\x01\x00\x00\x00ac__builtin__\neval\nq\x01."])
def test_a_garbage_pt_file_never_advises_turning_the_safe_loader_off(tmp_path: Path, content: bytes,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.pt").write_bytes(content)
    (tmp_path / "x.png").write_bytes(b"")
    rc, out = _run(capsys, "predict", str(tmp_path / "model.pt"), str(tmp_path / "x.png"), "--out",
                   str(tmp_path / "out"))
    assert rc == 2 and "cannot load checkpoint" in out and "model.pt" in out
    assert "weights_only" not in out and "arbitrary code" not in out.lower()


def test_opset_past_the_installed_onnx_is_refused_without_a_traceback(semantic_run: dict, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnx")
    rc, out = _run(capsys, "export", str(semantic_run["ckpt"]), "--out", str(tmp_path / "m.onnx"), "--opset", "999")
    assert rc == 2 and "--opset 999" in out and "knows opsets up to" in out
    assert "Traceback" not in out and not (tmp_path / "m.onnx").exists()


def test_negative_min_area_is_refused(tmp_path: Path, make_dataset, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset(n=2)
    rc, out = _run(capsys, "data", "convert", "semantic-to-panoptic", str(root), "--out", str(tmp_path / "pan"),
                   "--things", "car", "--min-area", "-5")
    assert rc == 2 and "--min-area" in out and "-5" in out and not (tmp_path / "pan").exists()


def test_negative_min_area_of_a_run_source_is_refused(semantic_run: dict) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.errors import ConfigError
    from seglab.sam.sources import ModelSource

    model, info = load_checkpoint(semantic_run["ckpt"])
    with pytest.raises(ConfigError, match="--min-area"):
        ModelSource(model, info, min_area=-5)
