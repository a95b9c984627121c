"""The panoptic task end to end on tiny synthetic data: train, evaluate, predict, score the saved predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main


@pytest.fixture(scope="module")
def panoptic_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    from seglab.data.panoptic.synthetic import make_panoptic
    from seglab.engine.trainer import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("panoptic")
        data = make_panoptic(root / "data", n_train=8, n_val=2, size=64, seed=0)
        summary = train(data=str(data), epochs=1, batch_size=4, out=str(root / "run"), workers=0, crop_size=64,
                        options={"min_size": 64, "max_size": 64}, num_samples=2)
    finally:
        torch.set_num_threads(threads)
    return {"data": Path(data), "run": Path(summary["out"]), "root": root, "summary": summary}


def test_training_writes_a_panoptic_checkpoint(panoptic_run: dict) -> None:
    from seglab.checkpoint import load_checkpoint

    last = panoptic_run["summary"]["last"]
    for key in ("PQ", "PQ_th", "PQ_st", "mean_iou", "mask_AP", "train_loss_semantic"):
        assert key in last
    assert 0.0 <= last["PQ"] <= 1.0
    _, info = load_checkpoint(panoptic_run["run"])
    assert info.task == "panoptic" and info.model == "panoptic_fpn_resnet18"  # chosen for panoptic data
    classes = (panoptic_run["data"] / "classes.txt").read_text().split()
    things = json.loads((panoptic_run["data"] / "panoptic.json").read_text())["things"]
    assert info.classes == classes
    assert [info.classes[c] for c in info.options["thing_classes"]] == things
    assert (panoptic_run["run"] / "samples").is_dir() and (panoptic_run["run"] / "train_batch.png").is_file()


def test_evaluate_predict_and_saved_predictions_agree(panoptic_run: dict, capsys: pytest.CaptureFixture) -> None:
    run, data, root = panoptic_run["run"], panoptic_run["data"], panoptic_run["root"]
    assert main(["evaluate", str(run), "--data", str(data), "--json", str(root / "m.json")]) == 0
    model_metrics = json.loads((root / "m.json").read_text())
    assert "PQ" in capsys.readouterr().out
    pred = root / "pred"
    assert main(["predict", str(run), str(data / "images" / "val"), "--out", str(pred),
                 "--save", "index,overlay,color,panel"]) == 0
    record = json.loads((pred / "panoptic.json").read_text())
    assert len(record["images"]) == 2 and {c["name"] for c in record["categories"]} == set(model_metrics["classes"])
    for ann in record["annotations"]:
        rgb = np.asarray(Image.open(pred / ann["file_name"]).convert("RGB"), np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        listed = {s["id"] for s in ann["segments_info"]}
        assert set(np.unique(ids)) - {0} == listed  # every segment in the PNG is listed, and only those
        for s in ann["segments_info"]:
            assert s["area"] == int((ids == s["id"]).sum())
        assert (pred / ann["file_name"].replace(".png", "_overlay.png")).is_file()
    assert main(["evaluate", "--predictions", str(pred), "--data", str(data), "--json", str(root / "s.json")]) == 0
    saved = json.loads((root / "s.json").read_text())
    for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "mean_iou", "pixel_accuracy"):
        assert saved[key] == pytest.approx(model_metrics[key], abs=1e-9, nan_ok=True)


def test_semantic_only_options_are_refused(panoptic_run: dict, capsys: pytest.CaptureFixture) -> None:
    run, data = panoptic_run["run"], panoptic_run["data"]
    assert main(["evaluate", str(run), "--data", str(data), "--tta", "flip"]) == 2
    assert "panoptic checkpoint" in capsys.readouterr().err
    assert main(["predict", str(run), str(data / "images" / "val"), "--out", str(panoptic_run["root"] / "p2"),
                 "--probs"]) == 2
    assert main(["predict", str(run), str(data / "images" / "val"), "--out", str(panoptic_run["root"] / "p3"),
                 "--score-threshold", "0.3"]) == 2
    assert "its merge keeps instances scoring >= 0.5" in capsys.readouterr().err


def test_onnx_export_matches_pytorch(panoptic_run: dict, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    from seglab.export import read_metadata

    out = panoptic_run["root"] / "model.onnx"
    assert main(["export", str(panoptic_run["run"]), "--out", str(out), "--check"]) == 0
    assert "semantic maps" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["seglab.task"] == "panoptic" and meta["seglab.input_size"] == [64, 64]
    assert meta["seglab.thing_classes"] == [3, 4, 5]
    assert main(["export", str(panoptic_run["run"]), "--out", str(panoptic_run["root"] / "m.pt"), "--format",
                 "torchscript"]) == 2


def test_thing_classes_that_contradict_the_data_are_refused(panoptic_run: dict) -> None:
    from seglab.engine.build import merge_model_options
    from seglab.errors import ConfigError

    assert merge_model_options({"min_size": 64}, {"thing_classes": [3, 4, 5]}) == {"min_size": 64,
                                                                                   "thing_classes": [3, 4, 5]}
    assert merge_model_options({"thing_classes": [3, 4, 5]}, {"thing_classes": [3, 4, 5]})["thing_classes"] == [3, 4, 5]
    with pytest.raises(ConfigError, match="the data fixes thing_classes"):
        merge_model_options({"thing_classes": [0]}, {"thing_classes": [3, 4, 5]})


def test_a_panoptic_ablation_report_leads_with_pq(panoptic_run: dict, tmp_path: Path) -> None:
    """Issue 26: the ablation report had no panoptic headline, so a panoptic ablation trained every run and then
    ended in a bare KeyError."""
    from seglab.ablate.report import write_report
    from seglab.ablate.runner import RunResult

    run = str(panoptic_run["run"])
    results = [RunResult(name, {"train.lr": lr}, 0, run, {"PQ": pq, "PQ_th": pq / 2, "PQ_st": pq}, 0.1, 5.0, 1)
               for name, lr, pq in (("lr=0.001", 0.001, 0.30), ("lr=0.002", 0.002, 0.35))]
    report = write_report(results, tmp_path / "abl", "panoptic").read_text()
    assert "| variant | PQ | PQ_th | PQ_st |" in report and "| lr=0.002 | PQ | +0.0500 |" in report
    assert (tmp_path / "abl" / "curves.png").is_file()


def test_a_served_panoptic_run_answers_its_segments(panoptic_run: dict) -> None:
    """`seglab serve RUN` on a panoptic run: one RLE mask per segment, disjoint, equal to the segment-id map that
    ``predict_panoptic`` (what `seglab predict RUN` writes) gives, with the segment's class and thing flag."""
    from pycocotools import mask as coco_mask

    from seglab.checkpoint import load_checkpoint
    from seglab.deploy.predictors import load_predictor
    from seglab.inference.panoptic import predict_panoptic

    image = np.asarray(Image.open(sorted((panoptic_run["data"] / "images" / "val").iterdir())[0]).convert("RGB"))
    predictor = load_predictor(panoptic_run["run"])
    assert predictor.task == "panoptic" and predictor.backend == "torch"
    out = json.loads(json.dumps(predictor.predict(image)))
    model, info = load_checkpoint(panoptic_run["run"])
    [(_, _, ref)] = list(predict_panoptic(model, [(0, image)], batch_size=1))
    ids = ref["ids"].numpy()
    segments = [s for s in ref["segments"] if (ids == int(s["id"])).any()]
    assert len(out["masks"]) == len(segments) > 0 and (out["height"], out["width"]) == image.shape[:2]
    masks = [coco_mask.decode({**m, "counts": m["counts"].encode()}).astype(bool) for m in out["masks"]]
    assert sum(m.astype(int) for m in masks).max() == 1  # disjoint
    for m, s, name, thing in zip(masks, segments, out["classes"], out["isthing"], strict=True):
        assert np.array_equal(m, ids == int(s["id"])) and name == info.classes[int(s["category"])]
        assert thing == bool(s.get("isthing", False))
