"""`seglab predict` end to end (one semantic, one instance run) and every command's usage errors.

What the files hold is checked in tests/inference/test_outputs.py (the library); here: the flags reach it,
the CLI writes what the library writes, and user errors exit 2 with one message and no traceback.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main


def test_semantic_predict_writes_what_the_library_writes(semantic_run, tmp_path, capsys) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.inference.outputs import PredictOptions, predict_files
    from seglab.inference.tiling import TileOptions

    folder = semantic_run["data"] / "images" / "val"
    out = tmp_path / "pred"
    args = ["predict", str(semantic_run["ckpt"]), str(folder / "s0.png"), str(folder / "s[12].png"),
            str(folder), "--out", str(out), "--probs", "--batch-size", "2"]
    assert main(args) == 0
    assert f"4 prediction(s) written to {out}" in " ".join(capsys.readouterr().out.split())
    ref = tmp_path / "ref"
    predict_files(*load_checkpoint(semantic_run["ckpt"]), [folder / "s0.png", str(folder / "s[12].png"), folder],
                  ref, PredictOptions(probs=True, tiles=TileOptions(batch_size=2)))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    for src in sorted(folder.iterdir()):
        with Image.open(out / src.name) as a, Image.open(ref / src.name) as b:
            assert a.mode == b.mode == "P" and a.getpalette() == b.getpalette()
            assert np.array_equal(np.asarray(a), np.asarray(b))
        assert np.array_equal(np.load(out / f"{src.stem}_probs.npy"), np.load(ref / f"{src.stem}_probs.npy"))
    assert (out / "predictions.csv").read_text() == (ref / "predictions.csv").read_text()


def test_recursive_several_formats_and_rerun(semantic_run, tmp_path, capsys) -> None:
    """``-r --save index,overlay``: subfolders mirrored, both pictures per image, equal to the library's; a
    rerun is refused (nothing touched) until ``--exist-ok``, which says what it replaced and what it left."""
    from seglab.checkpoint import load_checkpoint
    from seglab.inference.outputs import PredictOptions, predict_files

    val = semantic_run["data"] / "images" / "val"
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    shutil.copy(val / "s0.png", src / "s0.png")
    shutil.copy(val / "s1.png", src / "a" / "s0.png")
    shutil.copy(val / "s2.png", src / "a" / "b" / "s2.png")
    out = tmp_path / "pred"
    args = ["predict", str(semantic_run["ckpt"]), str(src), "--out", str(out), "-r", "--save", "index,overlay"]
    assert main(args) == 0
    assert "3 prediction(s) written" in " ".join(capsys.readouterr().out.split())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    stems = ["a/b/s2", "a/s0", "s0"]
    assert files == sorted(["predictions.csv"] + [f"{s}{e}" for s in stems for e in (".png", "_overlay.png")])
    ref = tmp_path / "ref"
    predict_files(*load_checkpoint(semantic_run["ckpt"]), [src], ref, PredictOptions(format="index,overlay"),
                  recursive=True)
    for name in files:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    (out / "keep.txt").write_text("mine")
    stamp = (out / "a" / "s0.png").stat().st_mtime_ns
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds 7 file(s) of an earlier run" in err and "Pass --exist-ok" in err and "Traceback" not in err
    assert (out / "a" / "s0.png").stat().st_mtime_ns == stamp
    assert main([*args[:-1], "overlay", "--exist-ok"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    # --save overlay alone writes the 3 <stem>_overlay.png pictures again: with predictions.csv 4 files replaced
    assert f"{out} already held files: 4 replaced by this run (--exist-ok), 4 other(s) left as they are" in said
    assert (out / "keep.txt").read_text() == "mine"
    with Image.open(out / "s0_overlay.png") as im:
        assert im.mode == "RGB"
    with Image.open(out / "s0.png") as im:
        assert im.mode == "P"  # the index mask of the first run, left as it was
    assert main([*args, "--format", "color"]) == 2
    assert "--format is a synonym of --save" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_instance_predict_reports_unreadable_inputs_and_writes_the_rest(instance_run, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = sorted((instance_run["data"] / "images" / "val").iterdir())[0]
    out = tmp_path / "p"
    assert main(["predict", str(instance_run["ckpt"]), str(bad), str(good), "--out", str(out),
                 "--score-threshold", "0.2", "--format", "overlay"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "broken.png" in err and "1 input(s) failed" in err and "Traceback" not in err
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out / "predictions.csv"))}
    assert rows["broken.png"]["status"].startswith("error") and rows[good.name]["status"] == "ok"
    assert {r["image_id"] for r in json.loads((out / "predictions.json").read_text())} <= {1}
    assert rows[good.name]["image_id"] == "1"
    assert (out / f"{good.stem}.png").is_file() and (out / f"{good.stem}.json").is_file()
    assert (out / f"{good.stem}_overlay.png").is_file()


@pytest.mark.parametrize("args, message", [
    # instance checkpoints refuse semantic-only options, name the missing split, export to ONNX only
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--tile", "32"], "--tile: .* instance checkpoint"),
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--tta", "flip", "--probs"], "--tta, --probs"),
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--score-threshold", "1.5"], "score_threshold"),
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--overlap", "0.5", "--blend", "linear"],
     "--overlap, --blend"),
    (["export", "{ckpt}", "--format", "torchscript", "--out", "{tmp}/m.pt"], "ONNX only"),
    (["evaluate", "{ckpt}", "--data", "{data}", "--tile", "32"], "--tile: .* instance checkpoint"),
    (["evaluate", "{ckpt}", "--data", "{data}", "--split", "test"], "instances_test.json"),
    (["evaluate", "{other}", "--data", "{data}"], "differ from the checkpoint.*5: 'circle'"),
    # semantic checkpoints refuse instance-only options; bad values and missing files are named
    (["predict", "{sem}", "{sem_image}", "--out", "{tmp}/p", "--score-threshold", "0.3"], "semantic checkpoint"),
    (["predict", "{sem}", "{sem_image}", "--out", "{tmp}/p", "--format", "jpeg"], "--format"),
    (["evaluate", "{tmp}/nope.pt", "--data", "{sem_data}"], "not found"),
    # a U-Net saved as task 'instance' is refused by every command
    (["export", "{bad}", "--out", "{tmp}/x.onnx"], "not a detector.*inconsistent"),
    (["predict", "{bad}", "{sem_image}", "--out", "{tmp}/p"], "not a detector.*inconsistent"),
    (["evaluate", "{bad}", "--data", "{sem_data}"], "not a detector.*inconsistent"),
])
def test_usage_errors(instance_run, semantic_run, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    image = sorted((instance_run["data"] / "images" / "val").iterdir())[0]
    filled = [a.format(ckpt=instance_run["ckpt"], image=image, tmp=tmp_path, data=instance_run["data"],
                       sem=semantic_run["ckpt"], sem_image=semantic_run["data"] / "images" / "val" / "s0.png",
                       sem_data=semantic_run["data"], bad=semantic_run["inconsistent"],
                       other=instance_run["other_categories"]) for a in args]
    assert main(filled) == 2
    err = capsys.readouterr().err
    assert re.search(message, " ".join(err.split())), err
    assert "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "m.pt").exists()
