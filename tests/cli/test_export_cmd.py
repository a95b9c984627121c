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
    assert "max |onnx - pytorch|" in printed and "dynamic axes batch/height/width" in printed
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
    assert "one RGB image of any size per call, scaled to a short side of 64 px" in printed
    assert "check: max |onnx - pytorch|" in printed
    assert "1 image(s) at their own sizes" in printed and "detections compared" in printed
    meta = read_metadata(out)
    assert meta["seglab.task"] == "instance" and meta["seglab.classes"] == instance_run["classes"]


def test_semantic_export_opset_and_half(semantic_run, tmp_path, capsys) -> None:
    """``--opset 19 --half``: the graph has the opset, named axes and float16 weights, and runs within the
    printed difference of the float32 PyTorch model."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    import torch

    out = tmp_path / "h.onnx"
    assert main(["export", str(semantic_run["ckpt"]), "--out", str(out), "--opset", "19", "--half"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "(onnx, opset 19, float16 weights, dynamic axes batch/height/width" in printed
    diff = float(printed.split("max |onnx - pytorch| = ")[1].split()[0])
    assert "(tolerance 0.01)" in printed and diff <= 1e-2
    proto = onnx.load(str(out))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [19]
    for value in (proto.graph.input[0], proto.graph.output[0]):
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "", "height", "width"]
    assert {t.data_type for t in proto.graph.initializer if len(t.dims) == 4} == {onnx.TensorProto.FLOAT16}
    x = torch.rand(1, 3, 40, 52)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = semantic_run["model"](x).numpy()
    assert np.abs(got - ref).max() <= 1e-2


@pytest.mark.parametrize("where", ["under_a_file", "no_permission", "read_only"])
def test_unwritable_export_path_is_a_clear_error(semantic_run, tmp_path, capsys, monkeypatch, where) -> None:
    """Refused before exporting (the exporter is never called), one line naming --out and the cause."""
    import os
    import types

    import torch

    from seglab import fileio

    blocker = tmp_path / "a_file"
    blocker.write_text("keep")
    folder = tmp_path / "locked"
    folder.mkdir()
    out = {"under_a_file": blocker / "m.onnx"}.get(where, folder / "m.onnx")
    if where == "no_permission":  # chmod does not stop root, so the permission answer is stubbed
        monkeypatch.setattr(fileio.os, "access", lambda path, mode: not mode & os.W_OK)
    if where == "read_only":
        monkeypatch.setattr(fileio.os, "statvfs", lambda path: types.SimpleNamespace(f_flag=os.ST_RDONLY))

    def never(*args, **kwargs):
        raise AssertionError("exported although the output path cannot be written")

    monkeypatch.setattr(torch.onnx, "export", never)
    assert main(["export", str(semantic_run["ckpt"]), "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    expected = {"under_a_file": f"--out {out}: {blocker} is a file, not a folder",
                "no_permission": f"--out {out}: permission denied (cannot create files in {folder})",
                "read_only": f"--out {out}: {folder} is on a read-only file system"}[where]
    assert expected in err and "Traceback" not in err, err
    assert blocker.read_text() == "keep" and list(folder.iterdir()) == []
