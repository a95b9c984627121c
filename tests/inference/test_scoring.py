"""`seglab evaluate --predictions`: saved outputs scored against hand-computed numbers and pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.errors import DataError
from seglab.inference.scoring import prediction_kind, score_predictions


def _semantic_data(root: Path) -> Path:
    """One 4x4 val image: truth rows 0,1 = class 0, rows 2,3 = class 1, one ignore pixel."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "classes.txt").write_text("a\nb\n")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "val" / "x.png")
    label = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 255]], np.uint8)
    Image.fromarray(label).save(root / "labels" / "val" / "x.png")
    return root


def test_semantic_predictions_scored_by_hand(tmp_path: Path) -> None:
    data = _semantic_data(tmp_path / "data")
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    # prediction: rows 0..2 class 0, row 3 class 1 (the ignore pixel predicted 0: not counted)
    pred = np.array([[0] * 4, [0] * 4, [0] * 4, [1, 1, 1, 0]], np.uint8)
    Image.fromarray(pred).save(pred_dir / "x.png")
    assert prediction_kind(pred_dir) == "semantic"
    result = score_predictions(pred_dir, data, "val")
    # class 0: tp 8, fp 4 (row 2), fn 0 -> IoU 8/12; class 1: tp 3, fp 0, fn 4 -> IoU 3/7 (15 counted pixels)
    assert result.metrics["per_class_iou"] == pytest.approx([8 / 12, 3 / 7])
    assert result.metrics["mean_iou"] == pytest.approx((8 / 12 + 3 / 7) / 2)
    assert result.metrics["pixel_accuracy"] == pytest.approx(11 / 15)
    assert result.record()["task"] == "semantic"


def test_semantic_predictions_missing_or_wrong(tmp_path: Path) -> None:
    data = _semantic_data(tmp_path / "data")
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(pred_dir / "other.png")
    with pytest.raises(DataError, match="no prediction for 1 of 1 images"):
        score_predictions(pred_dir, data, "val")
    Image.fromarray(np.zeros((3, 4), np.uint8)).save(pred_dir / "x.png")
    with pytest.raises(DataError, match="Predict at the label's size"):
        score_predictions(pred_dir, data, "val")
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(pred_dir / "x.png")
    with pytest.raises(DataError, match="value 7 is not a class index"):
        score_predictions(pred_dir, data, "val")


def test_instance_results_match_pycocotools(coco_root: Path, tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_file = coco_root / "annotations" / "instances_train.json"
    gt = json.loads(gt_file.read_text())
    rng = np.random.default_rng(0)
    dets = []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        dets.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": float(rng.random()),
                     "bbox": [x + float(rng.integers(0, 2)), y, w, h], "segmentation": ann["segmentation"]})
    dets.append({"image_id": gt["images"][0]["id"], "category_id": gt["annotations"][0]["category_id"],
                 "score": 0.9, "bbox": [0, 0, 2, 2], "segmentation": gt["annotations"][-1]["segmentation"]})
    results = tmp_path / "results.json"
    results.write_text(json.dumps(dets))
    assert prediction_kind(results) == "instance"
    ours = score_predictions(results, coco_root, "train").metrics
    coco = COCO(str(gt_file))
    for iou_type, prefix in (("segm", "mask"), ("bbox", "box")):
        ev = COCOeval(coco, coco.loadRes([dict(d) for d in dets]), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ours[f"{prefix}_AP"] == pytest.approx(ev.stats[0], abs=1e-6)
        assert ours[f"{prefix}_AP50"] == pytest.approx(ev.stats[1], abs=1e-6)


def test_instance_results_with_unknown_ids(coco_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": 999, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(DataError, match="names an image id or category id"):
        score_predictions(results, coco_root, "train")


def test_cli_predictions_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _semantic_data(tmp_path / "data")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--predictions", str(empty), "--data", str(data)]) == 2
    assert "no predictions found" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(empty), "--data", str(data), "--tta", "flip"]) == 2
    assert "--tta" in capsys.readouterr().err


def test_cli_scores_semantic_predictions(tmp_path: Path) -> None:
    data = _semantic_data(tmp_path / "data")
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    Image.fromarray(np.array(Image.open(data / "labels" / "val" / "x.png")) % 255).save(pred_dir / "x.png")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--predictions", str(pred_dir), "--data", str(data), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mean_iou"] == pytest.approx(1.0)
