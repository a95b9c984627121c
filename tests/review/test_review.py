"""`seglab review` as a library: each per-image number equals `seglab evaluate` on a one-image split, for every
task and for saved predictions; the label-error ranking finds synthetic label noise; bad input is refused."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seglab.checkpoint import CheckpointInfo, load_checkpoint
from seglab.errors import SeglabError
from seglab.inference import evaluate_checkpoint
from seglab.inference.scoring import score_predictions
from seglab.review import review, review_checkpoint, review_predictions

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(out: Path) -> dict[str, dict]:
    return {r["stem"]: r for r in json.loads((out / "images.json").read_text())["images"]}


def _close(a: float | None, b: float) -> bool:
    return (a is None and math.isnan(b)) or (a is not None and a == pytest.approx(b, abs=1e-6))


def test_semantic_rows_equal_evaluate_on_one_image(semantic_run: dict, tmp_path: Path, helpers) -> None:
    model, info = load_checkpoint(semantic_run["ckpt"])
    result = review_checkpoint(model, info, semantic_run["data"], "val", tmp_path / "review")
    rows = _rows(result.out)
    assert len(rows) == 4 and result.page.is_file()
    for stem in ("s0", "s2"):
        one = helpers.one_image_semantic(semantic_run["data"], stem, tmp_path / f"one_{stem}")
        m = evaluate_checkpoint(model, info, one, "one").metrics
        row = rows[stem]
        for key in ("mean_iou", "pixel_accuracy", "boundary_iou"):
            assert _close(row[key], m[key]), (stem, key)
        assert all(_close(a, b) for a, b in zip(row["per_class_iou"], m["per_class_iou"], strict=True))
        assert row["pixel_error_pct"] == pytest.approx(100 * (1 - m["pixel_accuracy"]))


def test_files_csv_order_is_worst_first(semantic_run: dict, tmp_path: Path) -> None:
    out = review(semantic_run["run"], semantic_run["data"], "val", tmp_path / "r").out
    record = json.loads((out / "images.json").read_text())
    with (out / "images.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["image"] for r in table] == [r["stem"] for r in record["images"]]
    values = [float(r["mIoU"]) for r in table]
    assert values == sorted(values)
    assert "IoU square" in table[0] and "confident wrong px" in table[0]
    html = (out / "index.html").read_text()
    assert "http" not in html and "<script src" not in html and "stylesheet" not in html  # nothing to fetch
    for r in record["images"]:
        assert all((out / r["files"][k]).is_file() for k in ("thumb", "image", "layers")) and r["files"]["count"] == 4
    assert record["dataset"]["reliability"] is not None and len(record["dataset"]["reliability"]) == 15


def test_instance_rows_equal_evaluate_on_one_image(instance_run: dict, tmp_path: Path, helpers) -> None:
    from seglab.data.instance.coco import open_instance_split

    dataset = open_instance_split(instance_run["data"], "val")
    model = helpers.InstanceOracle(dataset)
    info = CheckpointInfo.from_dict(instance_run["state"], "oracle.pt")
    out = review_checkpoint(model, info, instance_run["data"], "val", tmp_path / "review").out
    rows = _rows(out)
    checked = 0
    for i in (0, 1, 2):
        _, target = dataset[i]
        image_id = int(target["image_id"])
        stem = Path(dataset.images[i]["file_name"]).stem
        one = helpers.one_image_instance(instance_run["data"], image_id, tmp_path / f"one_{i}")
        m = evaluate_checkpoint(model, info, one, "one").metrics
        assert _close(rows[stem]["mask_AP"], m["mask_AP"]) and _close(rows[stem]["box_AP"], m["box_AP"])
        checked += 0 < m["mask_AP"] < 1
        # the oracle's flaws by hand: objects j % 3 == 0 found, == 1 shifted 3 px, == 2 missed, one extra square
        n = len(target["labels"])
        kinds = rows[stem]["kinds"]
        assert kinds["missed"] >= n // 3 and kinds["tp"] + kinds["missed"] == n
        assert sum(kinds.values()) - kinds["missed"] == n - n // 3 + 1  # every kept detection has one kind
    assert checked  # the comparison was not only of zeros and ones


def test_panoptic_rows_equal_evaluate_on_one_image(panoptic_case: dict, tmp_path: Path, helpers) -> None:
    model, info, split = panoptic_case["model"], panoptic_case["info"], panoptic_case["split"]
    out = review_checkpoint(model, info, panoptic_case["data"], "val", tmp_path / "review").out
    rows = _rows(out)
    for i in range(2):
        stem = split.stem(i)
        one = helpers.one_image_panoptic(panoptic_case["data"], stem, tmp_path / f"one_{i}")
        m = evaluate_checkpoint(model, info, one, "one").metrics
        for key in ("PQ", "SQ", "RQ", "mean_iou"):
            assert _close(rows[stem][key], m[key]), (stem, key)
        assert 0 < m["PQ"] < 1


def test_saved_semantic_predictions_equal_evaluate_predictions(semantic_run: dict, tmp_path: Path, helpers) -> None:
    data = semantic_run["data"]
    pred = tmp_path / "pred"
    pred.mkdir()
    rng = np.random.default_rng(1)
    for p in sorted((data / "labels" / "val").glob("*.png")):
        label = np.array(Image.open(p))
        guess = np.where(rng.random(label.shape) < 0.2, rng.integers(0, 3, label.shape), label % 3)
        Image.fromarray(guess.astype(np.uint8)).save(pred / p.name)
    result = review_predictions(pred, data, "val", tmp_path / "review")
    rows = _rows(result.out)
    one = helpers.one_image_semantic(data, "s1", tmp_path / "one")
    (tmp_path / "pred_one").mkdir()
    (tmp_path / "pred_one" / "s1.png").write_bytes((pred / "s1.png").read_bytes())
    m = score_predictions(tmp_path / "pred_one", one, "one").metrics
    assert _close(rows["s1"]["mean_iou"], m["mean_iou"]) and 0 < m["mean_iou"] < 1
    record = json.loads((result.out / "images.json").read_text())
    assert not record["has_confidence"] and record["dataset"]["reliability"] is None


def test_saved_instance_results(instance_run: dict, tmp_path: Path, helpers) -> None:
    from seglab.data.instance.coco import open_instance_split
    from seglab.inference import detect_dataset

    data = instance_run["data"]
    dataset = open_instance_split(data, "val")
    dets = detect_dataset(helpers.InstanceOracle(dataset), dataset, cat_ids=instance_run["state"]["cat_ids"])
    results = tmp_path / "results.json"
    results.write_text(json.dumps(dets))
    rows = _rows(review_predictions(results, data, "val", tmp_path / "review").out)
    _, target = dataset[0]
    image_id = int(target["image_id"])
    one = helpers.one_image_instance(data, image_id, tmp_path / "one")
    one_results = tmp_path / "one.json"
    one_results.write_text(json.dumps([d for d in dets if d["image_id"] == image_id]))
    m = score_predictions(one_results, one, "one").metrics
    stem = Path(dataset.images[0]["file_name"]).stem
    assert _close(rows[stem]["mask_AP"], m["mask_AP"])
    assert rows[stem]["kinds"]["background"] + rows[stem]["kinds"]["tp"] >= 1


def test_saved_panoptic_predictions(panoptic_case: dict, tmp_path: Path) -> None:
    from seglab.inference.panoptic_writer import encode_ids

    split = panoptic_case["split"]
    pred = tmp_path / "pred"
    pred.mkdir()
    anns = []
    for i in range(len(split)):
        _, answer = panoptic_case["model"].answers[i]
        Image.fromarray(encode_ids(answer["ids"].numpy())).save(pred / f"{split.stem(i)}.png")
        anns.append({"image_id": i + 1, "file_name": f"{split.stem(i)}.png",
                     "segments_info": [{"id": s["id"], "category_id": split.cat_ids[s["category"]]}
                                       for s in answer["segments"]]})
    (pred / "panoptic.json").write_text(json.dumps({"annotations": anns}))
    rows = _rows(review_predictions(pred, panoptic_case["data"], "val", tmp_path / "review").out)
    model_rows = _rows(review_checkpoint(panoptic_case["model"], panoptic_case["info"], panoptic_case["data"], "val",
                                         tmp_path / "model_review").out)
    for stem, row in rows.items():  # the saved files hold what the model said: the same PQ
        assert row["PQ"] == pytest.approx(model_rows[stem]["PQ"])


class ColourModel(nn.Module):
    """A confident 'model' that reads the class from the colour: red 1, blue 2, else 0 (logits x 20)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[-1.0, -1, -1], [2, -1, -1], [-1, -1, 2]])[:, :, None, None] * 20)
            self.conv.bias.copy_(torch.tensor([10.0, -10, -10]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _noisy_labels(root: Path, n: int = 30, corrupted: tuple[int, ...] = (3, 17, 25)) -> Path:
    """Images with a red square (1) and a blue disc (2) on gray, and a patch of in-between colours where the
    model is unsure and partly wrong; in ``corrupted`` images the disc is labelled as a square."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    for part in ("images", "labels"):
        (root / part / "val").mkdir(parents=True)
    (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    for i in range(n):
        image = np.full((48, 48, 3), 0.45, np.float32) + rng.normal(0, 0.03, (48, 48, 3))
        label = np.zeros((48, 48), np.uint8)
        y, x = rng.integers(2, 20, 2)
        label[y:y + 12, x:x + 12] = 1
        cy, cx = rng.integers(30, 40, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 36
        label[disc] = 2
        image[label == 1] = (0.9, 0.1, 0.1)
        image[disc] = (0.1, 0.1, 0.9)
        py, px = rng.integers(0, 40, 2)  # an unsure patch: labelled square, coloured half-way
        label[py:py + 6, px:px + 6] = 1
        image[py:py + 6, px:px + 6] = (0.62, 0.42, 0.42) + rng.normal(0, 0.03, (6, 6, 3))
        if i in corrupted:
            label[disc] = 1
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / "images" / "val" / f"n{i:02d}.png")
        Image.fromarray(label).save(root / "labels" / "val" / f"n{i:02d}.png")
    return root


def test_label_error_ranking_finds_relabelled_regions(tmp_path: Path) -> None:
    corrupted = {"n03", "n17", "n25"}  # 10 % of 30 images
    data = _noisy_labels(tmp_path / "data")
    info = CheckpointInfo(path="colour.pt", task="semantic", model="colour", num_classes=3, options={},
                          classes=["background", "square", "disc"], cat_ids=[0, 1, 2], mean=[0.0] * 3, std=[1.0] * 3)
    out = review_checkpoint(ColourModel(), info, data, "val", tmp_path / "review").out
    record = json.loads((out / "images.json").read_text())
    by_index = {r["index"]: r for r in record["images"]}
    ranked = [by_index[i]["stem"] for i in record["label_errors"]]
    top = set(ranked[: len(by_index) // 10])
    assert len(top & corrupted) >= 0.8 * len(corrupted)
    # the clean images do have errors, only not confident ones
    clean = [r for r in record["images"] if r["stem"] not in corrupted]
    assert sum(r["pixel_error_pct"] > 0 for r in clean) >= len(clean) // 2


def test_bad_input_is_refused(semantic_run: dict, tmp_path: Path) -> None:
    with pytest.raises(SeglabError, match="not both and not neither"):
        review(None, semantic_run["data"])
    with pytest.raises(SeglabError, match="not both"):
        review(semantic_run["run"], semantic_run["data"], predictions=tmp_path)
    with pytest.raises(SeglabError, match="--tta"):
        review(None, semantic_run["data"], predictions=tmp_path, tta="hflip")
    with pytest.raises(SeglabError, match="no predictions found"):
        review(None, semantic_run["data"], predictions=tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SeglabError, match="not a directory|is a file|file"):
        review(semantic_run["run"], semantic_run["data"], out=blocker)
