"""`seglab export` end to end: one semantic and one instance checkpoint, with --check and its report."""

from __future__ import annotations

import pytest

from seglab.cli import main


def test_semantic_export_onnx_with_check(semantic_run, tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    from seglab.export import read_metadata

    out = tmp_path / "m.onnx"
    assert main(["export", str(semantic_run["run"]), "--format", "onnx", "--out", str(out), "--check"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "max |onnx - pytorch|" in printed and "dynamic batch/height/width" in printed
    meta = read_metadata(out)
    assert meta["seglab.classes"] == semantic_run["classes"] and meta["seglab.model"]["name"] == "unet"


@pytest.mark.usefixtures("one_thread")
def test_instance_export_checked_on_a_real_image(instance_run, tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    from seglab.export import read_metadata

    image = sorted((instance_run["data"] / "images" / "val").iterdir())[0]
    out = tmp_path / "a.onnx"
    assert main(["export", str(instance_run["ckpt"]), "--out", str(out), "--check", "--check-image", str(image)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "one 64x64 RGB image per call" in printed and "check: max |onnx - pytorch|" in printed
    assert "1 image(s) at 64x64" in printed and "detections compared" in printed
    meta = read_metadata(out)
    assert meta["seglab.task"] == "instance" and meta["seglab.classes"] == instance_run["classes"]
