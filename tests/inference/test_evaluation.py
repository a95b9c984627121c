"""``evaluate_checkpoint``: semantic metrics vs torchmetrics, instance AP vs pycocotools, clear refusals."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as pycoco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from seglab.checkpoint import CheckpointInfo, load_checkpoint
from seglab.errors import ConfigError
from seglab.inference.evaluation import evaluate_checkpoint
from seglab.inference.outputs import PredictOptions, predict_files
from seglab.inference.tiling import TileOptions

pytestmark = pytest.mark.usefixtures("one_thread")  # detection graphs: one thread is fastest on 2 shared cores


def test_semantic_evaluation_matches_torchmetrics(semantic_run, direct_labels) -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    model, info = load_checkpoint(semantic_run["run"])
    result = evaluate_checkpoint(model, info, semantic_run["data"], "val")
    record = result.record()
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "mean_dice", "fw_iou", "per_class_iou",
                "per_class_dice", "confusion_matrix"):
        assert key in record
    assert record["classes"] == semantic_run["classes"] and record["num_images"] == 4 == result.num_images
    json.dumps(record, allow_nan=False)  # the record is standard JSON (NaN became null)
    images = sorted((semantic_run["data"] / "images" / "val").iterdir())
    preds = torch.cat([direct_labels(semantic_run["model"], p).flatten() for p in images])
    target = torch.cat([torch.from_numpy(np.array(Image.open(semantic_run["data"] / "labels" / "val" / p.name)))
                        .long().flatten() for p in images])
    ref = MulticlassJaccardIndex(3, average="none", ignore_index=255)(preds, target)
    present = [i for i in range(3) if record["per_class_iou"][i] is not None]
    np.testing.assert_allclose([record["per_class_iou"][i] for i in present], ref[present].numpy(), atol=1e-6)
    assert sum(map(sum, record["confusion_matrix"])) == int((target != 255).sum())


def test_semantic_evaluation_with_tta_and_tiles(semantic_run) -> None:
    model, info = load_checkpoint(semantic_run["ckpt"])
    result = evaluate_checkpoint(model, info, semantic_run["data"], "val", tta="flip", tiles=TileOptions(tile=16))
    assert 0.0 <= result.record()["pixel_accuracy"] <= 1.0


def _reference_stats(data: Path, oracle, iou_type: str) -> tuple[np.ndarray, dict[int, float]]:
    """pycocotools on the COCO file and the oracle's answers encoded with pycocotools (no seglab code)."""
    coco = json.loads((data / "annotations" / "instances_val.json").read_text())
    by_name = {im["file_name"]: im["id"] for im in coco["images"]}
    dets = []
    for im, (_, ans) in zip(coco["images"], oracle.answers, strict=True):
        for k in range(len(ans["labels"])):
            m = np.asfortranarray(ans["masks"][k, 0].numpy().astype(np.uint8))
            rle = pycoco_mask.encode(m)
            rle["counts"] = rle["counts"].decode()
            x1, y1, x2, y2 = ans["boxes"][k].tolist()
            dets.append({"image_id": by_name[im["file_name"]], "score": float(ans["scores"][k]),
                         "category_id": oracle.cat_ids[int(ans["labels"][k]) - 1], "segmentation": rle,
                         "bbox": [x1, y1, x2 - x1, y2 - y1]})
    per_class = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / "annotations" / "instances_val.json"))
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        for cat in oracle.cat_ids:
            one = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), iou_type)
            one.params.catIds = [cat]
            one.evaluate()
            one.accumulate()
            one.summarize()
            per_class[cat] = one.stats[0]
    return ev.stats, per_class


@pytest.mark.parametrize("layout", ["coco", "mask_folder"])
def test_instance_evaluation_matches_pycocotools(instance_run, oracle, tmp_path: Path, layout: str) -> None:
    data = instance_run["data"]
    info = CheckpointInfo.from_dict(instance_run["state"], "oracle.pt")
    if layout == "mask_folder":  # same data without the COCO file: ground truth built from the PNGs
        shutil.copytree(data, tmp_path / "d", ignore=shutil.ignore_patterns("annotations"))
        data_arg = tmp_path / "d"
    else:
        data_arg = data
    result = evaluate_checkpoint(oracle, info, data_arg, "val")
    record = result.record()
    assert record["task"] == "instance" and record["num_images"] == 5
    assert record["checkpoint"] == "oracle.pt" and record["classes"] == instance_run["classes"]
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"]
    for prefix, iou_type in (("mask", "segm"), ("box", "bbox")):
        ref, per_class = _reference_stats(data, oracle, iou_type)
        for k in ("AP", "AP50", "AP75", "AR100"):
            assert record[f"{prefix}_{k}"] == pytest.approx(ref[names.index(k)], abs=1e-6), (prefix, k)
        listed = [(c["category_id"], c["name"]) for c in record["per_class"]]
        assert listed == list(zip(oracle.cat_ids, instance_run["classes"][1:], strict=True))
        for row in record["per_class"]:
            assert row[f"{prefix}_AP"] == pytest.approx(per_class[row["category_id"]], abs=1e-6)
    assert 0.2 < record["mask_AP"] < 0.8  # a non-degenerate case: hits, near misses, misses, a false positive
    assert len(result.detections) == sum(len(a["labels"]) for _, a in oracle.answers)
    json.dumps(result.detections)  # COCO results, as `seglab evaluate --detections` writes them


def test_instance_evaluation_refuses_other_categories(instance_run) -> None:
    info = CheckpointInfo.from_dict({**instance_run["state"], "cat_ids": [0, 5, 6, 7]}, "other.pt")
    with pytest.raises(ConfigError) as e:
        evaluate_checkpoint(instance_run["model"], info, instance_run["data"], "val")
    err = " ".join(str(e.value).split())
    assert "differ from the checkpoint" in err and "5: 'circle'" in err


@pytest.mark.parametrize("kwargs, message", [
    ({"tiles": TileOptions(tile=32)}, "--tile: .* instance checkpoint"),
    ({"tta": "flip"}, "--tta: .* instance checkpoint"),
    ({"tiles": TileOptions(overlap=0.5)}, "--overlap: .* instance checkpoint"),
])
def test_instance_evaluation_refuses_semantic_options(instance_run, kwargs: dict, message: str) -> None:
    info = CheckpointInfo.from_dict(instance_run["state"], instance_run["ckpt"])
    with pytest.raises(ConfigError) as e:
        evaluate_checkpoint(instance_run["model"], info, instance_run["data"], "val", **kwargs)
    assert re.search(message, " ".join(str(e.value).split())), str(e.value)


def test_instance_evaluation_names_a_missing_split(instance_run) -> None:
    info = CheckpointInfo.from_dict(instance_run["state"], instance_run["ckpt"])
    with pytest.raises(ConfigError, match="instances_test.json"):
        evaluate_checkpoint(instance_run["model"], info, instance_run["data"], "test")


def test_no_detections_and_empty_images(instance_run, blind, tmp_path: Path) -> None:
    """A model that finds nothing scores 0 (not a crash); an image without instances is scored and written."""
    from seglab.data.instance.coco import InstanceMaskFolder

    data = tmp_path / "d"
    shutil.copytree(instance_run["data"], data, ignore=shutil.ignore_patterns("annotations"))
    first = sorted((data / "masks" / "val").glob("*.png"))[0]
    Image.fromarray(np.zeros(np.asarray(Image.open(first)).shape, np.uint8)).save(first)
    first.with_suffix(".json").write_text('{"labels": []}')
    assert len(InstanceMaskFolder(data, "val")[0][1]["labels"]) == 0
    info = CheckpointInfo.from_dict(instance_run["state"], "ckpt.pt")
    record = evaluate_checkpoint(blind, info, data, "val").record()
    assert record["mask_AP"] == 0.0 and record["box_AP"] == 0.0
    pred = tmp_path / "p"
    result = predict_files(blind, info, [data / "images" / "val"], pred, PredictOptions(format="overlay"))
    assert result.failures == [] and result.written == 5
    assert json.loads((pred / "predictions.json").read_text()) == []
    ids = np.asarray(Image.open(pred / first.name))
    assert not ids.any() and json.loads(first.with_name(first.stem + ".json").read_text()) == {"labels": []}
    assert json.loads((pred / f"{first.stem}.json").read_text())["labels"] == []
