"""`seglab evaluate --predictions` with untrusted files: every bad field is a clear error (exit 2, the file and
record named), never a traceback, and nothing outside the predictions folder is read.

Box-only results are scored for box AP and checked against pycocotools.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main


def _evaluate(capsys: pytest.CaptureFixture[str], predictions: Path, data: Path, split: str) -> tuple[int, str]:
    rc = main(["evaluate", "--predictions", str(predictions), "--data", str(data), "--split", split])
    captured = capsys.readouterr()
    return rc, " ".join((captured.out + captured.err).split())


def _detections(coco_root: Path) -> tuple[dict, list[dict]]:
    gt = json.loads((coco_root / "annotations" / "instances_train.json").read_text())
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.5 + 0.1 * (i % 4),
             "bbox": a["bbox"], "segmentation": a["segmentation"]} for i, a in enumerate(gt["annotations"])]
    return gt, dets


def _size(gt: dict) -> list[int]:
    return [gt["images"][0]["height"], gt["images"][0]["width"]]


BAD_DETECTIONS = [
    (lambda d, s: d[1].update(segmentation={"size": s, "counts": "!!!not-rle"}), "RLE counts string is malformed"),
    (lambda d, s: d[1].update(segmentation={"size": s, "counts": [5, 7]}), "RLE counts cover 12 pixels"),
    (lambda d, s: d[1].update(segmentation={"size": [s[0] + 1, s[1]], "counts": [1]}), "RLE mask size"),
    (lambda d, s: d[1].update(segmentation={"size": s, "counts": [-3, 3]}), "non-negative integers"),
    (lambda d, s: d[1].update(score="high"), "score must be a finite number; got 'high'"),
    (lambda d, s: d[1].update(score=float("nan")), "score must be a finite number; got nan"),
    (lambda d, s: d[1].update(score=True), "score must be a finite number"),
    (lambda d, s: d[1].update(image_id="1"), "image_id must be an integer"),
    (lambda d, s: d[1].update(bbox=[0, 0, -4, 2]), "bbox must be 4 finite numbers"),
    (lambda d, s: d[1].pop("segmentation"), "has no segmentation while other detections have one"),
    (lambda d, s: d.append(7), "must be an object"),
]


@pytest.mark.parametrize(("change", "words"), BAD_DETECTIONS)
def test_bad_coco_results_are_named(coco_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    change, words: str) -> None:
    gt, dets = _detections(coco_root)
    change(dets, _size(gt))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(dets))  # NaN is written as the NaN literal, which JSON readers accept
    rc, out = _evaluate(capsys, results, coco_root, "train")
    assert rc == 2, out
    assert words in out and str(results) in out
    assert f"detection {len(dets) - 1 if words == 'must be an object' else 1}" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("kind", ["instance", "panoptic"])
def test_deeply_nested_json_is_refused(tmp_path: Path, coco_root: Path, capsys: pytest.CaptureFixture[str],
                                       kind: str) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    if kind == "instance":
        path, data, split = tmp_path / "results.json", coco_root, "train"
        path.write_text(deep)
    else:
        data, path, _ = _panoptic(tmp_path)
        split = "val"
        (path / "panoptic.json").write_text('{"annotations": ' + deep + "}")
    rc, out = _evaluate(capsys, path, data, split)
    assert rc == 2 and "nested too deeply" in out and "Traceback" not in out


def test_box_only_results_get_box_ap(coco_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = _detections(coco_root)
    boxes = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
    boxes[0]["bbox"] = [boxes[0]["bbox"][0] + 3, *boxes[0]["bbox"][1:]]  # one shifted box: AP below 1
    results, out_json = tmp_path / "boxes.json", tmp_path / "m.json"
    results.write_text(json.dumps(boxes))
    assert main(["evaluate", "--predictions", str(results), "--data", str(coco_root), "--split", "train",
                 "--json", str(out_json)]) == 0
    got = json.loads(out_json.read_text())
    coco = COCO(str(coco_root / "annotations" / "instances_train.json"))
    ev = COCOeval(coco, coco.loadRes([dict(b) for b in boxes]), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert got["box_AP"] == pytest.approx(ev.stats[0], abs=1e-6) and got["box_AP"] < 1
    assert got["mask_AP"] is None or got["mask_AP"] != got["mask_AP"]  # undefined: no masks given


def _panoptic(tmp_path: Path) -> tuple[Path, Path, dict]:
    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.data.panoptic.synthetic import make_panoptic
    from seglab.inference.panoptic_writer import encode_ids

    data = make_panoptic(tmp_path / "pan", n_train=1, n_val=1, size=32, seed=1)
    split = open_panoptic_split(data, "val")
    pred = tmp_path / "pred"
    pred.mkdir()
    _, ids, segments = split.load(0)
    Image.fromarray(encode_ids(ids)).save(pred / f"{split.stem(0)}.png")
    record = {"annotations": [{"image_id": 1, "file_name": f"{split.stem(0)}.png", "segments_info": [
        {"id": s["id"], "category_id": split.cat_ids[s["category"]]} for s in segments]}]}
    return data, pred, record


def test_panoptic_file_name_outside_the_folder_is_not_read(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    data, pred, record = _panoptic(tmp_path)
    name = record["annotations"][0]["file_name"]
    (pred / name).rename(tmp_path / name)  # the real PNG now sits outside the predictions folder
    record["annotations"][0]["file_name"] = f"../{name}"
    (pred / "panoptic.json").write_text(json.dumps(record))
    rc, out = _evaluate(capsys, pred, data, "val")
    assert rc == 2 and "leads out of" in out and "annotation 0" in out and "panoptic.json" in out


@pytest.mark.parametrize(("change", "words"), [
    (lambda s: s.update(score="x"), "score 'x'; a score must be a finite number"),
    (lambda s: s.update(score=float("inf")), "a score must be a finite number"),
    (lambda s: s.update(id=0), "ids are 1..16777215"),
])
def test_panoptic_segment_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str], change, words: str) -> None:
    data, pred, record = _panoptic(tmp_path)
    change(record["annotations"][0]["segments_info"][0])
    (pred / "panoptic.json").write_text(json.dumps(record))
    rc, out = _evaluate(capsys, pred, data, "val")
    assert rc == 2 and words in out and "segment 0" in out


def test_rgb_prediction_pngs_get_a_fix_that_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    (data / "images" / "val").mkdir(parents=True)
    (data / "labels" / "val").mkdir(parents=True)
    (data / "classes.txt").write_text("a\nb\n")
    (data / "palette.txt").write_text("0 0 0\n255 0 0\n")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(data / "images" / "val" / "x.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(data / "labels" / "val" / "x.png")
    pred = tmp_path / "pred"
    pred.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(pred / "x.png")
    rc, out = _evaluate(capsys, pred, data, "val")
    assert rc == 2
    assert f"seglab data convert rgb-to-index {pred} --palette {data / 'palette.txt'} --out {pred}_index" in out
    # the converted folder is what --predictions then scores: the fix applies as written
    assert main(["data", "convert", "rgb-to-index", str(pred), "--palette", str(data / "palette.txt"),
                 "--out", f"{pred}_index"]) == 0
    capsys.readouterr()
    assert _evaluate(capsys, Path(f"{pred}_index"), data, "val")[0] == 0
