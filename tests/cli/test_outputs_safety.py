"""Every command that writes files: it never replaces an input, and a file system that refuses a write
(full disk, read-only, permission denied, a folder or a file in the way) is one clear line with exit 2 and no
temp file left behind.

Inputs are checked byte for byte afterwards. Tests run as root, whom permission bits do not stop, so a full
disk is made real by temp files that are symlinks to ``/dev/full`` (the kernel fails every write with
ENOSPC); read-only and permission failures come from a patched ``os.replace`` / ``mkstemp`` raising the
errno the kernel would.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab import fileio
from seglab.cli import main


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch) -> None:
    """Error lines 300 columns wide: rich wraps at 80 off a terminal, splitting long tmp paths."""
    from seglab.cli.app import console, err_console

    monkeypatch.setattr(console, "_width", 300)
    monkeypatch.setattr(err_console, "_width", 300)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, " ".join((captured.out + captured.err).split())


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (names and bytes): equal snapshots mean nothing was written or changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp" in p.name]


@pytest.fixture
def imgs(semantic_run: dict, tmp_path: Path) -> Path:
    """A copy of the semantic val images in ``tmp_path/imgs`` (the session fixture stays read only)."""
    folder = tmp_path / "imgs"
    shutil.copytree(semantic_run["data"] / "images" / "val", folder)
    return folder


@pytest.fixture
def ckpt(semantic_run: dict, tmp_path: Path) -> Path:
    """A copy of the semantic checkpoint in ``tmp_path/run/best.pt``."""
    (tmp_path / "run").mkdir()
    return Path(shutil.copy(semantic_run["ckpt"], tmp_path / "run" / "best.pt"))


@pytest.fixture
def full_disk(monkeypatch) -> None:
    """Every atomic write lands on /dev/full: writes fail with ENOSPC in the kernel, as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")

    def mkstemp(prefix: str = "", suffix: str = "", dir: str | None = None) -> tuple[int, str]:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(fileio, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))


def _refuse_rename(monkeypatch, code: int) -> None:
    def replace(src, dst):
        raise OSError(code, os.strerror(code), str(src))

    monkeypatch.setattr(fileio.os, "replace", replace)


# --- outputs never replace inputs -----------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["same", "dot", "symlink"])
@pytest.mark.parametrize("extra", [[], ["--probs", "--save", "color,index"]])
def test_predict_into_its_input_folder_is_refused(ckpt, imgs, tmp_path, monkeypatch, capsys, spelling,
                                                   extra) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(imgs, target_is_directory=True)
    out = {"same": "imgs", "dot": "./imgs/", "symlink": "link"}[spelling]
    before = _snapshot(imgs)
    rc, text = _run(capsys, "predict", ckpt, "imgs", "--out", out, *extra)
    assert rc == 2 and "Traceback" not in text
    assert re.search(r"would overwrite the input imgs/s\d\.png.*Pass another --out", text), text
    assert _snapshot(imgs) == before


def test_predict_refuses_before_writing_anything(ckpt, imgs, tmp_path, capsys) -> None:
    """The first input writes elsewhere, the last one would replace an input: nothing at all is written."""
    other = tmp_path / "other"
    other.mkdir()
    Image.open(imgs / "s0.png").save(other / "a.jpg")
    before = _snapshot(tmp_path)
    rc, text = _run(capsys, "predict", ckpt, other / "a.jpg", imgs / "s3.png", "--out", imgs)
    assert rc == 2 and "s3.png" in text
    assert _snapshot(tmp_path) == before


def test_export_over_its_checkpoint_is_refused(ckpt, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    before = ckpt.read_bytes()
    for source, out in ((ckpt, ckpt), ("run", "./run/best.pt"), ("run/best.pt", "run/../run/best.pt")):
        rc, text = _run(capsys, "export", source, "--format", "torchscript", "--out", out)
        assert rc == 2 and "Traceback" not in text
        assert "would overwrite the input run/best.pt" in text or f"input {ckpt}" in text, text
    assert ckpt.read_bytes() == before and sorted(os.listdir(ckpt.parent)) == ["best.pt"]


def test_evaluate_json_over_an_input_is_refused(semantic_run, ckpt, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(semantic_run["data"], data)
    before, ckpt_bytes = _snapshot(data), ckpt.read_bytes()
    for target in (ckpt, data / "classes.txt", data / "labels" / "val" / "s1.png"):
        rc, text = _run(capsys, "evaluate", ckpt, "--data", data, "--json", target)
        assert rc == 2 and "Traceback" not in text
        assert f"--json: writing {target} would overwrite the input" in text, text
        assert "mIoU" not in text  # refused before evaluating
    assert _snapshot(data) == before and ckpt.read_bytes() == ckpt_bytes
    rc, text = _run(capsys, "evaluate", ckpt, "--data", data, "--json", data / "metrics.json")
    assert rc == 0 and (data / "metrics.json").is_file()  # a new file beside the dataset is no input


def test_evaluate_json_and_detections_on_one_file(instance_run, tmp_path, capsys) -> None:
    same = tmp_path / "m.json"
    rc, text = _run(capsys, "evaluate", instance_run["ckpt"], "--data", instance_run["data"], "--json", same,
                    "--detections", same)
    assert rc == 2 and "--json and --detections name the same file" in text and not same.exists()


def test_convert_never_replaces_its_input(index_labels, tmp_path, capsys) -> None:
    before = _snapshot(index_labels)
    (tmp_path / "link").symlink_to(index_labels, target_is_directory=True)
    rc, text = _run(capsys, "data", "convert", "palette-to-l", index_labels, "--out", tmp_path / "link")
    assert rc == 2 and "never overwrite their input" in text
    Image.open(index_labels / "a.png").save(index_labels / "a.tif")  # two labels of one stem: a.png, a.tif
    before = _snapshot(index_labels)
    rc, text = _run(capsys, "data", "convert", "binary", index_labels, "--out", tmp_path / "out")
    assert rc == 2 and re.search(r"a\.(png|tif) and .*a\.(png|tif) would both be written as .*a\.png", text)
    assert _snapshot(index_labels) == before and not (tmp_path / "out").exists()


def test_instance_converters_never_replace_images(coco_root, capsys) -> None:
    before = _snapshot(coco_root)
    image = sorted((coco_root / "images" / "train").iterdir())[0]
    rc, text = _run(capsys, "data", "convert", "masks-to-coco", coco_root, "--split", "train", "--out", image,
                    "--force")
    assert rc == 2 and f"would overwrite the input {image}" in text
    rc, text = _run(capsys, "data", "convert", "coco-to-masks", coco_root, "--split", "train", "--out",
                    coco_root / "images" / "train", "--force")
    assert rc == 2 and "would overwrite the input" in text and "Traceback" not in text
    assert _snapshot(coco_root) == before


def test_the_python_converters_protect_their_inputs_too(coco_root) -> None:
    from seglab.data.instance.convert import coco_to_masks, masks_to_coco
    from seglab.errors import OutputError

    before = _snapshot(coco_root)
    image = sorted((coco_root / "images" / "train").iterdir())[0]
    with pytest.raises(OutputError, match="would overwrite the input"):
        masks_to_coco(coco_root, "train", image, overwrite=True)
    with pytest.raises(OutputError, match="would overwrite the input"):
        coco_to_masks(coco_root, "train", coco_root / "images" / "train", overwrite=True)
    assert _snapshot(coco_root) == before


def test_stats_json_and_synth_out_are_checked_before_the_work(index_labels, semantic_run, tmp_path, capsys) -> None:
    data = semantic_run["data"]
    before = _snapshot(data)
    label = sorted((data / "labels" / "val").iterdir())[0]
    rc, text = _run(capsys, "data", "stats", data, "--split", "val", "--json", label)
    assert rc == 2 and "would overwrite the input" in text and _snapshot(data) == before
    (tmp_path / "afile").write_text("x")
    rc, text = _run(capsys, "data", "synth", "--out", tmp_path / "afile", "--n-train", "1", "--n-val", "1")
    assert rc == 2 and "is a file" in text and (tmp_path / "afile").read_text() == "x"


# --- file-system failures -------------------------------------------------------------------------------

def test_outputs_of_the_wrong_kind(ckpt, imgs, semantic_run, index_labels, tmp_path, capsys) -> None:
    a_file, a_dir = tmp_path / "taken.txt", tmp_path / "folder"
    a_file.write_text("keep")
    a_dir.mkdir()
    cases = [
        (["predict", ckpt, imgs, "--out", a_file], f"--out {a_file}: exists and is a file, not a folder"),
        (["predict", ckpt, imgs, "--out", a_file / "sub"], f"{a_file} is a file, not a folder"),
        (["export", ckpt, "--out", a_dir], f"--out {a_dir}: is a directory"),
        (["evaluate", ckpt, "--data", semantic_run["data"], "--json", a_dir], f"--json {a_dir}: is a directory"),
        (["data", "convert", "palette-to-l", index_labels, "--out", a_file], "exists and is a file"),
    ]
    for args, message in cases:
        rc, text = _run(capsys, *args)
        assert rc == 2 and message in text and "Traceback" not in text, text
    assert a_file.read_text() == "keep" and list(a_dir.iterdir()) == []


@pytest.mark.usefixtures("full_disk")
def test_predict_on_a_full_disk(ckpt, imgs, tmp_path, capsys) -> None:
    out = tmp_path / "pred"
    rc, text = _run(capsys, "predict", ckpt, imgs, "--out", out, "--probs")
    assert rc == 2 and "Traceback" not in text
    assert re.search(rf"cannot write {out}/\S+: no space left on device", text), text
    assert _temps(tmp_path) == [] and not (out / "predictions.csv").exists()


@pytest.mark.usefixtures("full_disk")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_on_a_full_disk(ckpt, tmp_path, capsys, fmt) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    out = tmp_path / f"m.{fmt}"
    rc, text = _run(capsys, "export", ckpt, "--format", fmt, "--out", out)
    assert rc == 2 and f"cannot write {out}: no space left on device" in text, text
    assert _temps(tmp_path) == [] and not out.exists()


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied")])
def test_evaluate_json_on_a_file_system_that_refuses(semantic_run, ckpt, tmp_path, monkeypatch, capsys, code,
                                                     cause) -> None:
    _refuse_rename(monkeypatch, code)
    out = tmp_path / "m.json"
    rc, text = _run(capsys, "evaluate", ckpt, "--data", semantic_run["data"], "--json", out)
    assert rc == 2 and f"cannot write {out}: {cause}" in text and "Traceback" not in text
    assert list(tmp_path.glob("*.json")) == [] and _temps(tmp_path) == []


def test_a_stray_os_error_is_one_line_unless_debug(ckpt, tmp_path, monkeypatch, capsys) -> None:
    import seglab.checkpoint

    def denied(path, device="cpu"):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(seglab.checkpoint, "load_checkpoint", denied)
    rc, text = _run(capsys, "export", ckpt, "--out", tmp_path / "m.onnx")
    assert rc == 2 and text == f"error: {ckpt}: permission denied. Run with --debug for the traceback."
    monkeypatch.setenv("SEGLAB_DEBUG", "")  # --debug sets it for the process; undone after the test
    with pytest.raises(PermissionError):
        main(["--debug", "export", str(ckpt), "--out", str(tmp_path / "m.onnx")])


def test_predictions_get_the_umask_permissions(ckpt, imgs, tmp_path, capsys) -> None:
    old = os.umask(0o027)
    try:
        assert _run(capsys, "predict", ckpt, imgs / "s0.png", "--out", tmp_path / "p", "--probs")[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "p").iterdir()}
    assert modes == {"s0.png": 0o640, "s0_probs.npy": 0o640, "predictions.csv": 0o640}
    assert np.load(tmp_path / "p" / "s0_probs.npy").shape[0] == 3
