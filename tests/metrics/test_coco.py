"""COCO AP through faster-coco-eval, checked against pycocotools and hand-computed cases."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as pycoco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from seglab.errors import ConfigError, DataError
from seglab.metrics.coco import STAT_NAMES, evaluate, predictions_to_coco, targets_to_coco


def _rle(mask: np.ndarray) -> dict:
    r = pycoco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode()}


def _ellipse(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(2, h / 2), rng.uniform(2, w / 2)
    yy, xx = np.mgrid[:h, :w]
    m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m if m.any() else np.pad(np.ones((1, 1), bool), ((0, h - 1), (0, w - 1)))


def _box(m: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(m)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def random_coco(rng: np.random.Generator, n_images: int = 12) -> tuple[dict, list[dict]]:
    """Random ground truth (3 categories, crowd regions) and detections (jittered GT + false positives)."""
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        h, w = int(rng.integers(40, 140)), int(rng.integers(40, 140))
        images.append({"id": i, "width": w, "height": h})
        for _ in range(int(rng.integers(0, 7))):
            m, crowd = _ellipse(rng, h, w), int(rng.random() < 0.15)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(rng.integers(1, 4)),
                         "segmentation": _rle(m), "area": float(m.sum()), "bbox": _box(m), "iscrowd": crowd})
            if rng.random() < 0.8:  # a detection near this object, sometimes of the wrong class
                shift = np.roll(m, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), (0, 1))
                cat = anns[-1]["category_id"] if rng.random() < 0.85 else int(rng.integers(1, 4))
                dets.append({"image_id": i, "category_id": cat, "score": float(rng.random()),
                             "segmentation": _rle(shift), "bbox": [v + rng.normal(0, 1.5) for v in _box(shift)]})
        for _ in range(int(rng.integers(0, 4))):  # false positives
            m = _ellipse(rng, h, w)
            dets.append({"image_id": i, "category_id": int(rng.integers(1, 4)), "score": float(rng.random()),
                         "segmentation": _rle(m), "bbox": _box(m)})
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycocotools_stats(gt: dict, dets: list[dict], iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools(iou_type: str, seed: int) -> None:
    gt, dets = random_coco(np.random.default_rng(seed))
    assert any(a["iscrowd"] for a in gt["annotations"])
    if iou_type == "bbox":
        dets = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
    ours = evaluate(gt, dets, iou_type)
    ref = pycocotools_stats(gt, dets, iou_type)
    assert list(ours) == list(STAT_NAMES)
    np.testing.assert_allclose([ours[k] for k in STAT_NAMES], ref[:12], atol=1e-6, rtol=0)
    assert 0.05 < ours["AP50"] < 0.99  # a meaningful, non-degenerate case


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_per_class_ap_matches_pycocotools_one_category_at_a_time(iou_type: str) -> None:
    gt, dets = random_coco(np.random.default_rng(3))
    gt["categories"].append({"id": 7, "name": "never annotated"})
    ours = evaluate(gt, dets, iou_type, per_class=True)["per_class_AP"]
    assert sorted(ours) == [1, 2, 3, 7] and math.isnan(ours[7])
    for cat in (1, 2, 3):  # pycocotools restricted to one category: its AP is that category's AP
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = copy.deepcopy(gt)
            coco.createIndex()
            ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), iou_type)
            ev.params.catIds = [cat]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ours[cat] == pytest.approx(ev.stats[0], abs=1e-6)


def test_hand_computed_ap(tmp_path: Path) -> None:
    m = np.zeros((50, 50), bool)
    m[10:30, 10:30] = True
    gt = {"images": [{"id": 1, "width": 50, "height": 50}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle(m), "area": 400.0,
                           "bbox": [10, 10, 20, 20], "iscrowd": 0}],
          "categories": [{"id": 1, "name": "x"}]}
    far = np.zeros((50, 50), bool)
    far[40:48, 40:48] = True
    hit = {"image_id": 1, "category_id": 1, "segmentation": _rle(m), "bbox": [10, 10, 20, 20]}
    miss = {"image_id": 1, "category_id": 1, "segmentation": _rle(far), "bbox": [40, 40, 8, 8]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    # true positive ranked first: precision 1 at every recall -> AP 1
    assert evaluate(path, [dict(hit, score=0.9), dict(miss, score=0.8)])["AP"] == pytest.approx(1.0)
    # false positive ranked first: precision 1/2 at recall 1 -> every one of the 101 points is 0.5
    res = evaluate(path, [dict(hit, score=0.7), dict(miss, score=0.8)], "bbox")
    assert res["AP"] == pytest.approx(0.5) and res["AR1"] == 0.0 and res["AR10"] == 1.0
    assert res["APs"] == pytest.approx(0.5) and res["APm"] == -1.0  # 400 px < 32^2: a "small" object only
    assert evaluate(gt, [])["AP"] == 0.0


def test_evaluate_is_silent_and_leaves_inputs_alone(capsys: pytest.CaptureFixture) -> None:
    gt, dets = random_coco(np.random.default_rng(5), 3)
    before = copy.deepcopy((gt, dets))
    evaluate(gt, dets)
    evaluate(gt, dets, "bbox")
    out = capsys.readouterr()
    assert out.out == "" and out.err == "" and (gt, dets) == before


def test_evaluate_errors(tmp_path: Path) -> None:
    gt, dets = random_coco(np.random.default_rng(3), 2)
    with pytest.raises(ConfigError, match="iou_type"):
        evaluate(gt, dets, "keypoints")
    with pytest.raises(DataError, match="image ids not in the ground truth"):
        evaluate(gt, [dict(dets[0], image_id=99)])
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    with pytest.raises(DataError, match="line 1, column 13"):
        evaluate(bad, dets)
    with pytest.raises(DataError, match="segmentation"):
        evaluate(gt, [{k: v for k, v in dets[0].items() if k != "segmentation"}], "segm")


def _outputs() -> list[dict]:
    masks = torch.zeros(3, 1, 20, 30)
    masks[0, 0, 2:8, 3:9] = 0.9
    masks[1, 0, 10:15, 0:30] = 0.6
    masks[2, 0, 0:20, 25:30] = 0.4  # below the mask threshold everywhere
    return [{"boxes": torch.tensor([[3.0, 2.0, 9.0, 8.0], [0.0, 10.0, 30.0, 15.0], [25.0, 0.0, 30.0, 20.0]]),
             "labels": torch.tensor([1, 2, 1]), "scores": torch.tensor([0.95, 0.5, 0.2]), "masks": masks}]


def test_predictions_to_coco() -> None:
    res = predictions_to_coco(_outputs(), [42], score_threshold=0.3, mask_threshold=0.5, cat_ids=[0, 7, 9])
    assert [(r["image_id"], r["category_id"], round(r["score"], 2)) for r in res] == [(42, 7, 0.95), (42, 9, 0.5)]
    assert res[0]["bbox"] == [3.0, 2.0, 6.0, 6.0]
    expected = np.zeros((20, 30), np.uint8)
    expected[2:8, 3:9] = 1
    np.testing.assert_array_equal(pycoco_mask.decode(dict(res[0]["segmentation"],
                                                          counts=res[0]["segmentation"]["counts"].encode())),
                                  expected)
    json.dumps(res)  # JSON-ready
    res = predictions_to_coco(_outputs(), [1])
    assert len(res) == 3 and pycoco_mask.area(dict(res[2]["segmentation"], counts=res[2]["segmentation"]
                                                   ["counts"].encode())) == 0


def test_perfect_predictions_from_targets_score_one() -> None:
    out = _outputs()[0]
    masks = (out["masks"][:2, 0] > 0.5).to(torch.uint8)
    target = {"boxes": out["boxes"][:2], "labels": out["labels"][:2], "masks": masks, "image_id": 5}
    gt = targets_to_coco([target], ["background", "a", "b"], cat_ids=[0, 7, 9])
    assert [c["id"] for c in gt["categories"]] == [7, 9] and gt["images"] == [{"id": 5, "width": 30, "height": 20}]
    assert [a["area"] for a in gt["annotations"]] == [36.0, 150.0]
    perfect = [{"boxes": out["boxes"][:2], "labels": out["labels"][:2], "scores": out["scores"][:2],
                "masks": out["masks"][:2]}]
    dets = predictions_to_coco(perfect, [5], cat_ids=[0, 7, 9])
    for iou_type in ("segm", "bbox"):
        assert evaluate(gt, dets, iou_type)["AP"] == pytest.approx(1.0)
    swapped = predictions_to_coco(perfect, [5], cat_ids=[0, 9, 7])
    assert evaluate(gt, swapped)["AP"] == 0.0


@pytest.mark.parametrize(("images", "field"), [
    ([7], r"images\[0\]"), ([{"id": 1, "file_name": "a.png", "width": "wide", "height": 4}], "width"),
])
def test_a_malformed_ground_truth_file_is_a_data_error(tmp_path: Path, images: list, field: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    with pytest.raises(DataError, match=f"gt.json.*{field}"):
        evaluate(path, [], iou_type="bbox")
