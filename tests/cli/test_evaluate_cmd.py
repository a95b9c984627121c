"""`seglab evaluate` end to end: the tables, the JSON (the library's record) and DDP runs with torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from seglab.cli import main


def test_semantic_evaluate_table_and_json(semantic_run, tmp_path, capsys) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.inference.evaluation import evaluate_checkpoint
    from seglab.inference.tiling import TileOptions

    out = tmp_path / "m.json"
    assert main(["evaluate", str(semantic_run["run"]), "--data", str(semantic_run["data"]), "--json", str(out),
                 "--tta", "flip", "--tile", "16", "--overlap", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "square" in printed
    record = json.loads(out.read_text())
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "mean_dice", "fw_iou", "per_class_iou",
                "per_class_dice", "confusion_matrix"):
        assert key in record
    assert record["classes"] == semantic_run["classes"] and record["num_images"] == 4
    model, info = load_checkpoint(semantic_run["run"])
    library = evaluate_checkpoint(model, info, semantic_run["data"], "val", tta="flip",
                                  tiles=TileOptions(tile=16, overlap=0.5)).record()
    assert record == json.loads(json.dumps(library))  # the flags reach the library; its record is the JSON


@pytest.mark.usefixtures("one_thread")
def test_instance_evaluate_tables_json_and_detections(instance_run, tmp_path, capsys) -> None:
    out, dets = tmp_path / "m.json", tmp_path / "dets.json"
    assert main(["evaluate", str(instance_run["ckpt"].parent), "--data", str(instance_run["data"]), "--json",
                 str(out), "--detections", str(dets)]) == 0
    printed = capsys.readouterr().out
    assert "mask AP" in printed and "triangle" in printed and "detections written to" in printed
    record = json.loads(out.read_text())
    assert record["task"] == "instance" and record["num_images"] == 5
    assert 0.0 <= record["mask_AP"] <= 1.0 and [c["name"] for c in record["per_class"]] == instance_run["classes"][1:]
    detections = json.loads(dets.read_text())
    assert isinstance(detections, list) and {d["image_id"] for d in detections} <= set(range(1, 6))


def test_semantic_evaluate_same_numbers_on_two_ddp_processes(semantic_run, tmp_path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    args = ["evaluate", str(semantic_run["ckpt"]), "--data", str(semantic_run["data"]), "--device", "cpu"]
    assert main(args + ["--json", str(one)]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "seglab", *args, "--json", str(two)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["mean_iou"] == b["mean_iou"]


@pytest.mark.usefixtures("one_thread")
def test_instance_evaluate_same_numbers_on_two_ddp_processes(instance_run, tmp_path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    args = ["evaluate", str(instance_run["ckpt"]), "--data", str(instance_run["data"]), "--device", "cpu"]
    assert main(args + ["--json", str(one), "--detections", str(tmp_path / "d1.json")]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "seglab", *args, "--json", str(two), "--detections", str(tmp_path / "d2.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["mask_AP"] == pytest.approx(b["mask_AP"], abs=1e-9) and a["per_class"] == b["per_class"]
    d1, d2 = (json.loads((tmp_path / f"d{i}.json").read_text()) for i in (1, 2))
    assert sorted(d["image_id"] for d in d1) == sorted(d["image_id"] for d in d2)  # every image once, ids kept


def test_messages_blame_the_checkpoint_not_a_flag_never_given(semantic_run, tmp_path, capsys) -> None:
    import shutil

    data = shutil.copytree(semantic_run["data"], tmp_path / "data")
    (data / "classes.txt").write_text("a\nb\nc\nd\n")  # the checkpoint was trained for 3 classes
    assert main(["evaluate", str(semantic_run["run"]), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "names 4 classes but the checkpoint" in err and "--num-classes is" not in err


def test_evaluate_prints_fractions_like_training(semantic_run, capsys) -> None:
    import re

    assert main(["evaluate", str(semantic_run["run"]), "--data", str(semantic_run["data"])]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "mIoU" in line)
    assert re.search(r"\b0\.\d{4}\b|\b1\.0000\b", row), row
