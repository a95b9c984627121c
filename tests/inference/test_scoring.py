"""`seglab evaluate --predictions`: saved outputs scored against hand-computed numbers and pycocotools."""

from __future__ import annotations

import json
import re
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


def test_semantic_predictions_without_classes_txt(tmp_path: Path) -> None:
    data = _semantic_data(tmp_path / "data")
    (data / "classes.txt").unlink()
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    Image.fromarray(np.array([[0] * 4, [0] * 4, [1] * 4, [1] * 4], np.uint8)).save(pred_dir / "x.png")
    result = score_predictions(pred_dir, data, "val")  # 2 classes from the labels' values
    assert result.metrics["per_class_iou"] == pytest.approx([1.0, 1.0]) and result.info.classes == ["class_0",
                                                                                                  "class_1"]
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(pred_dir / "x.png")
    with pytest.raises(DataError, match="value 255 is not a class index"):
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
    with pytest.raises(DataError, match="detection 0 .*image_id 999 is not an image of"):
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


def _panoptic_truth_as_prediction(tmp_path: Path, cat_offset: int = 0) -> tuple[Path, Path]:
    """A tiny synthetic panoptic dataset and its own val annotations written as a prediction folder."""
    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.data.panoptic.synthetic import make_panoptic
    from seglab.inference.panoptic_writer import encode_ids

    data = make_panoptic(tmp_path / "pan", n_train=1, n_val=2, size=32, seed=1)
    split = open_panoptic_split(data, "val")
    pred = tmp_path / "pred"
    pred.mkdir()
    anns = []
    for i in range(len(split)):
        _, ids, segments = split.load(i)
        Image.fromarray(encode_ids(ids)).save(pred / f"{split.stem(i)}.png")
        anns.append({"image_id": i + 1, "file_name": f"{split.stem(i)}.png",
                     "segments_info": [{"id": s["id"], "category_id": split.cat_ids[s["category"]] + cat_offset}
                                       for s in segments]})
    cats = [{"id": c + cat_offset, "name": n} for c, n in zip(split.cat_ids, split.classes, strict=True)]
    (pred / "panoptic.json").write_text(json.dumps({"annotations": anns, "categories": cats}))
    return data, pred


def test_panoptic_truth_scores_one_and_categories_match_by_name(tmp_path: Path) -> None:
    data, pred = _panoptic_truth_as_prediction(tmp_path, cat_offset=100)  # other ids, the same names
    metrics = score_predictions(pred, data, "val").metrics
    assert metrics["PQ"] == pytest.approx(1.0) and metrics["mean_iou"] == pytest.approx(1.0)


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r["annotations"].append(dict(r["annotations"][0])), "two annotations for"),
    (lambda r: r["annotations"][0]["segments_info"][0].pop("category_id"), "integer id and category_id"),
    (lambda r: r.update(annotations="x"), "not a COCO panoptic file"),
    (lambda r: r["categories"][0].update(name="lava"), "categories ['lava'] are not classes"),
    (lambda r: r["annotations"][0]["segments_info"].pop(), "segment ids"),
])
def test_panoptic_predictions_bad_input(tmp_path: Path, change, words: str) -> None:
    data, pred = _panoptic_truth_as_prediction(tmp_path)
    record = json.loads((pred / "panoptic.json").read_text())
    change(record)
    (pred / "panoptic.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=re.escape(words)) as info:
        score_predictions(pred, data, "val")
    assert "panoptic.json" in str(info.value)
