"""The SAM commands end to end with the tiny SAM saved as a weight file (``--sam-model tiny``).

What the files hold is checked in the library tests; here: flags reach the library, the CLI writes what the
library writes, and every user error exits 2 with one message that names the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("segment_anything")

from seglab.cli import main  # noqa: E402

PROMPTS = "image,class,x1,y1,x2,y2\nim0.png,square,4,3,22,20\nim1.png,disc,26,16,44,36\n"


def _sam(tiny_file: Path) -> list[str]:
    return ["--sam-checkpoint", str(tiny_file), "--sam-model", "tiny", "--device", "cpu"]


def _text(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def test_annotate_from_prompts_then_data_check(tiny_file: Path, image_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "p.csv").write_text(PROMPTS)
    out = tmp_path / "ds"
    prompts = str(tmp_path / "p.csv")
    assert main(["annotate", str(image_dir), "--out", str(out), "--boxes", prompts, *_sam(tiny_file)]) == 0
    text = _text(capsys)
    assert f"wrote {out} (instance layout; train: 4 image(s)" in text and "val: 1 image(s)" in text
    assert f"seglab data check {out} --task instance" in text
    assert main(["data", "check", str(out)]) == 0
    assert json.loads((out / "annotate.json").read_text())["sam_model"] == "tiny"


def test_annotate_from_runs_and_auto(tiny_file: Path, semantic_run: dict, tmp_path: Path, capsys) -> None:
    images = str(semantic_run["data"] / "images" / "val")
    out = tmp_path / "run_ds"
    assert main(["annotate", images, "--out", str(out), "--from-run", str(semantic_run["run"]), "--layout",
                 "semantic", "--min-area", "4", *_sam(tiny_file)]) == 0
    assert main(["data", "check", str(out)]) == 0
    assert (out / "classes.txt").read_text() == "background\nsquare\nbar\n"
    auto = tmp_path / "auto_ds"
    assert main(["annotate", images, "--out", str(auto), "--auto", "--classify", str(semantic_run["run"]),
                 "--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
                 "--val-fraction", "0", *_sam(tiny_file)]) == 0
    record = json.loads((auto / "annotate.json").read_text())
    assert record["options"]["points_per_side"] == 3 and record["options"]["pred_iou_thresh"] == 0.0
    assert record["options"]["box_nms_thresh"] == 0.7 and record["classifier"]["task"] == "semantic"
    assert main(["data", "check", str(auto)]) == 0


def test_sam_prompt_and_auto_write_every_format(tiny_file: Path, image_dir: Path, tmp_path: Path, capsys) -> None:
    from seglab.data.instance.checks import load_coco

    (tmp_path / "p.csv").write_text(PROMPTS)
    out = tmp_path / "o"
    args = ["sam", "prompt", str(image_dir), "--prompts", str(tmp_path / "p.csv"), "--out", str(out),
            "--save", "instances,label,review,coco", *_sam(tiny_file)]
    assert main(args) == 0
    text = _text(capsys)
    assert "on 5 image(s)" in text and "(2 image embedding(s))" in text  # im0, im1 have prompts
    assert {p.name for p in out.iterdir()} >= {"im0.png", "im0.json", "im0_label.png", "im0_review.png", "coco.json"}
    index = load_coco(out / "coco.json", image_dir)
    assert index.categories == {1: "disc", 2: "square"} and len(index.images) == 5
    assert main(args) == 2 and "--exist-ok" in _text(capsys)
    assert main([*args, "--exist-ok"]) == 0
    auto = tmp_path / "a"
    assert main(["sam", "auto", str(image_dir / "im0.png"), "--out", str(auto), "--points-per-side", "2",
                 "--save", "instances", *_sam(tiny_file)]) == 0
    assert sorted(p.name for p in auto.iterdir()) == ["im0.json", "im0.png"]


@pytest.mark.parametrize("task", ["semantic", "instance"])
def test_predict_refine_sam_writes_what_the_library_writes(task: str, tiny_file: Path, tiny_sam, semantic_run: dict,
                                                          instance_run: dict, tmp_path: Path, capsys) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.inference import PredictOptions, predict_files
    from seglab.sam import SamRefiner

    run = semantic_run if task == "semantic" else instance_run
    folder = run["data"] / "images" / "val"
    out = tmp_path / "cli"
    extra = ["--score-threshold", "0"] if task == "instance" else []
    assert main(["predict", str(run["ckpt"]), str(folder), "--out", str(out), "--refine", "sam", *extra,
                 *_sam(tiny_file)]) == 0
    assert "SAM redrew" in _text(capsys)
    model, info = load_checkpoint(run["ckpt"])
    options = PredictOptions(refine=SamRefiner(tiny_sam, task), score_threshold=0.0 if extra else None)
    predict_files(model, info, [folder], tmp_path / "lib", options)
    for src in sorted(folder.iterdir()):
        with Image.open(out / f"{src.stem}.png") as a, Image.open(tmp_path / "lib" / f"{src.stem}.png") as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))


TINY = ["--sam-checkpoint", "CKPT", "--sam-model", "tiny"]


@pytest.mark.parametrize(("args", "words"), [
    (["--sam-checkpoint", "missing.pth", "--auto"], "missing.pth: not found. --sam-model vit_b reads "
                                                    "sam_vit_b_01ec64.pth"),
    (["--sam-checkpoint", "CKPT", "--sam-model", "vit_x", "--auto"], "--sam-model 'vit_x' is not a SAM model type"),
    (["--sam-checkpoint", "CKPT", "--sam-model", "vit_h", "--auto"], "holds a tiny model (2 blocks of width 32), "
                                                                     "but --sam-model vit_h expects 32 blocks"),
    ([*TINY, "--prompts", "good.csv", "--auto"], "give exactly one source of objects"),
    (TINY, "give exactly one source of objects"),
    ([*TINY, "--prompts", "good.csv", "--classify", "run"], "--classify names the masks of --auto"),
    ([*TINY, "--prompts", "good.csv", "--points-per-side", "4"], "--points-per-side: automatic-mask options apply"),
    ([*TINY, "--prompts", "bad.csv"], "bad.csv:4: box [9.0, 2.0, 3.0, 4.0] is empty or reversed"),
    ([*TINY, "--auto", "--layout", "coco"], "--layout 'coco'"),
    ([*TINY, "--prompts", "good.csv", "--score-threshold", "0.3"], "--score-threshold filters the detections"),
])
def test_annotate_errors_exit_2(args: list[str], words: str, tiny_file: Path, image_dir: Path, tmp_path: Path,
                                capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.csv").write_text(PROMPTS)
    (tmp_path / "bad.csv").write_text(PROMPTS + "im2.png,disc,9,2,3,4\n")
    args = [str(tiny_file) if a == "CKPT" else a for a in args]
    assert main(["annotate", str(image_dir), "--out", "ds", *args]) == 2
    text = _text(capsys)
    assert words in text and "Traceback" not in text and not (tmp_path / "ds").exists()


def test_predict_refine_flag_errors(semantic_run: dict, tiny_file: Path, tmp_path: Path, capsys) -> None:
    base = ["predict", str(semantic_run["ckpt"]), str(semantic_run["data"] / "images" / "val"), "--out",
            str(tmp_path / "p")]
    assert main([*base, "--sam-checkpoint", str(tiny_file)]) == 2
    assert "--sam-checkpoint is read by --refine sam" in _text(capsys)
    assert main([*base, "--refine", "crf"]) == 2 and "the one refiner is sam" in _text(capsys)
    assert main([*base, "--refine", "sam"]) == 2 and "--refine sam needs --sam-checkpoint PATH" in _text(capsys)
    assert not (tmp_path / "p").exists()


def test_evaluate_refine_sam_reports_what_the_library_reports(tiny_file: Path, tiny_sam, semantic_run: dict,
                                                               tmp_path: Path, capsys) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.sam import evaluate_refinement

    out = tmp_path / "refine.json"
    args = ["evaluate", str(semantic_run["ckpt"]), "--data", str(semantic_run["data"]), "--refine", "sam"]
    assert main([*args, "--json", str(out), *_sam(tiny_file)]) == 0
    text = _text(capsys)
    assert "SAM refinement" in text and "boundary_iou" in text
    model, info = load_checkpoint(semantic_run["ckpt"])
    expected = evaluate_refinement(model, info, semantic_run["data"], "val", tiny_sam)
    saved = json.loads(out.read_text())
    for side in ("before", "after"):
        for key in ("mean_iou", "boundary_iou"):
            assert saved[side][key] == pytest.approx(expected[side][key], abs=1e-9)
    assert main([*args, "--tta", "flip", *_sam(tiny_file)]) == 2 and "--tta" in _text(capsys)
    assert main(args) == 2 and "--refine sam needs --sam-checkpoint" in _text(capsys)
