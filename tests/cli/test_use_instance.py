"""`seglab evaluate / predict` on instance checkpoints, checked against pycocotools and plain torch."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as pycoco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from seglab.cli import main
from seglab.data.synthetic import make_shapes
from seglab.engine.checkpoint import save_checkpoint
from seglab.models import build_model

TINY = {"min_size": 64, "max_size": 64, "fpn_channels": 16, "box_batch_size_per_image": 16, "mask_head_layers": 1}
CLASSES = ["background", "circle", "square", "triangle"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # detection graphs are many small ops: one thread is fastest on 2 shared cores
    yield
    torch.set_num_threads(n)


def _info(path: Path, cat_ids: list[int] | None = None) -> dict:
    return {"task": "instance", "model": {"name": "maskrcnn_resnet18_fpn", "num_classes": 4, "options": TINY},
            "classes": CLASSES, "cat_ids": cat_ids or [0, 1, 2, 3], "in_channels": 3, "mean": [0.0] * 3,
            "std": [1.0] * 3, "ignore_index": 255, "config": {}, "epoch": 1, "step": 1, "metrics": {},
            "palette": None, "path": str(path)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Shapes data (COCO + mask folders) and a tiny random-weight Mask R-CNN checkpoint."""
    root = tmp_path_factory.mktemp("inst")
    data = make_shapes(root / "data", n_train=2, n_val=5, size=64, seed=3)
    torch.manual_seed(0)
    model = build_model("maskrcnn_resnet18_fpn", 4, **TINY).eval()
    model.roi_heads.score_thresh = 0.0  # random weights: keep every detection so there is something to check
    ckpt = root / "run" / "best.pt"
    info = _info(ckpt)
    save_checkpoint(ckpt, {**{k: v for k, v in info.items() if k != "path"}, "model_state": model.state_dict()})
    return {"root": root, "data": data, "ckpt": ckpt, "model": model}


class Oracle(nn.Module):
    """A stand-in detector answering from the ground truth with known flaws (non-trivial, known AP).

    Per image, instance j of the COCO file is: j % 3 == 0 found exactly (score 0.9), j % 3 == 1 found
    shifted by 3 px (score 0.6), j % 3 == 2 missed; plus one false-positive square (score 0.7).
    """

    def __init__(self, data: Path) -> None:
        super().__init__()
        self.rpn = self.roi_heads = nn.Identity()  # what torchvision detectors have
        self.anchor = nn.Parameter(torch.zeros(1))
        coco = json.loads((data / "annotations" / "instances_val.json").read_text())
        self.cat_ids = sorted(c["id"] for c in coco["categories"])
        self.answers = []
        for im in coco["images"]:
            pixels = np.asarray(Image.open(data / "images" / "val" / im["file_name"]).convert("RGB"))
            anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
            self.answers.append((torch.from_numpy(pixels.copy()), self._answer(anns, im["height"], im["width"])))

    def _answer(self, anns: list[dict], h: int, w: int) -> dict[str, torch.Tensor]:
        masks, labels, scores = [], [], []
        for j, a in enumerate(anns):
            rle = pycoco_mask.frPyObjects(a["segmentation"], h, w) if isinstance(a["segmentation"], list) \
                else a["segmentation"]
            m = pycoco_mask.decode(pycoco_mask.merge(rle) if isinstance(rle, list) else rle).astype(bool)
            if j % 3 == 2:
                continue
            if j % 3 == 1:
                m = np.roll(m, 3, axis=1)
            masks.append(m)
            labels.append(self.cat_ids.index(a["category_id"]) + 1)
            scores.append(0.9 if j % 3 == 0 else 0.6)
        fp = np.zeros((h, w), bool)
        fp[2:12, 2:12] = True
        masks.append(fp)
        labels.append(1)
        scores.append(0.7)
        m = torch.from_numpy(np.stack(masks))
        boxes = []
        for k in m:
            ys, xs = torch.nonzero(k, as_tuple=True)
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
        boxes = torch.tensor(boxes)
        return {"boxes": boxes, "labels": torch.tensor(labels), "scores": torch.tensor(scores),
                "masks": m[:, None].float()}

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for x in images:
            pixels = (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu()
            out.append(next(a for p, a in self.answers if torch.equal(p, pixels)))
        return out


def _reference_stats(data: Path, oracle: Oracle, iou_type: str) -> tuple[np.ndarray, dict[int, float]]:
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
def test_evaluate_matches_pycocotools(setup, tmp_path: Path, monkeypatch, capsys, layout: str) -> None:
    data = setup["data"]
    oracle = Oracle(data)
    monkeypatch.setattr("seglab.engine.checkpoint.load_checkpoint",
                        lambda path, device="cpu": (oracle, _info(Path(path))))
    if layout == "mask_folder":  # same data without the COCO file: ground truth built from the PNGs
        shutil.copytree(data, tmp_path / "d", ignore=shutil.ignore_patterns("annotations"))
        data_arg = tmp_path / "d"
    else:
        data_arg = data
    out, dets = tmp_path / "m.json", tmp_path / "dets.json"
    assert main(["evaluate", "ckpt.pt", "--data", str(data_arg), "--json", str(out), "--detections",
                 str(dets), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "mask AP" in printed and "triangle" in printed
    record = json.loads(out.read_text())
    assert record["task"] == "instance" and record["num_images"] == 5
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"]
    for prefix, iou_type in (("mask", "segm"), ("box", "bbox")):
        ref, per_class = _reference_stats(data, oracle, iou_type)
        for k in ("AP", "AP50", "AP75", "AR100"):
            assert record[f"{prefix}_{k}"] == pytest.approx(ref[names.index(k)], abs=1e-6), (prefix, k)
        listed = [(c["category_id"], c["name"]) for c in record["per_class"]]
        assert listed == list(zip(oracle.cat_ids, CLASSES[1:], strict=True))
        for row in record["per_class"]:
            assert row[f"{prefix}_AP"] == pytest.approx(per_class[row["category_id"]], abs=1e-6)
    assert 0.2 < record["mask_AP"] < 0.8  # a non-degenerate case: hits, near misses, misses, a false positive
    assert len(json.loads(dets.read_text())) == sum(len(a["labels"]) for _, a in oracle.answers)


def test_evaluate_real_checkpoint(setup, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert main(["evaluate", str(setup["ckpt"].parent), "--data", str(setup["data"]), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert 0.0 <= record["mask_AP"] <= 1.0 and [c["name"] for c in record["per_class"]] == CLASSES[1:]


def test_predict_writes_ids_json_and_coco_results(setup, tmp_path: Path) -> None:
    images = sorted((setup["data"] / "images" / "val").iterdir())[:3]
    out = tmp_path / "pred"
    assert main(["predict", str(setup["ckpt"]), *map(str, images), "--out", str(out), "--score-threshold", "0.2",
                 "--format", "overlay", "--batch-size", "1"]) == 0  # batch 1: bit-equal to the reference
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    results = json.loads((out / "predictions.json").read_text())
    model = setup["model"]
    total = 0
    for i, (path, row) in enumerate(zip(images, rows, strict=True), 1):
        assert row["status"] == "ok" and row["image_id"] == str(i)
        x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            ref = model([x])[0]
        keep = ref["scores"] >= 0.2
        order = torch.argsort(ref["scores"][keep], descending=True, stable=True)
        masks = (ref["masks"][keep][order, 0] > 0.5).numpy()
        labels, scores = ref["labels"][keep][order], ref["scores"][keep][order]
        assert int(row["detections"]) == len(labels) > 0
        ids = np.asarray(Image.open(out / f"{path.stem}.png"))
        record = json.loads((out / f"{path.stem}.json").read_text())
        assert int(row["instances"]) == ids.max() == len(record["labels"]) == len(record["scores"])
        for c in (1, 2, 3):  # cat ids equal labels here
            assert int(row[f"count_{CLASSES[c]}"]) == record["labels"].count(c)
        # every painted pixel belongs to the highest-scoring detection covering it
        covered = masks.any(0)
        assert np.array_equal(ids > 0, covered)
        winner = np.argmax(masks, axis=0)  # masks are sorted by score: the first True is the best
        previous = -1
        for k, score in enumerate(record["scores"], 1):
            j = int(winner[ids == k][0])  # the detection id k stands for; ids follow the score order
            assert j > previous and np.array_equal(ids == k, covered & (winner == j))
            assert score == pytest.approx(float(scores[j]), abs=1e-4)
            assert record["labels"][k - 1] == int(labels[j]) and record["classes"][k - 1] == CLASSES[int(labels[j])]
            previous = j
        mine = [r for r in results if r["image_id"] == i]
        assert len(mine) == len(labels)
        for r, m in zip(mine, masks, strict=True):
            assert np.array_equal(pycoco_mask.decode(r["segmentation"]).astype(bool), m)
        assert (out / f"{path.stem}_overlay.png").is_file()
        total += len(labels)
    assert len(results) == total


def test_predicted_masks_read_back_as_an_instance_folder(setup, tmp_path: Path) -> None:
    from seglab.data.coco import InstanceMaskFolder

    out = tmp_path / "ds" / "masks" / "val"
    assert main(["predict", str(setup["ckpt"]), str(setup["data"] / "images" / "val"), "--out", str(out),
                 "--score-threshold", "0.25", "--format", "panel"]) == 0
    shutil.copytree(setup["data"] / "images", tmp_path / "ds" / "images")
    shutil.copy(setup["data"] / "classes.txt", tmp_path / "ds" / "classes.txt")
    ds = InstanceMaskFolder(tmp_path / "ds", "val")
    for i in range(len(ds)):
        stem = ds.image_paths[i].stem
        _, target = ds[i]
        ids = np.asarray(Image.open(out / f"{stem}.png"))
        assert len(target["labels"]) == ids.max()
        assert (out / f"{stem}_panel.png").is_file()
    for fmt in ("color", "index"):
        assert main(["predict", str(setup["ckpt"]), str(ds.image_paths[0]), "--out", str(tmp_path / fmt),
                     "--format", fmt]) == 0
    assert (tmp_path / "color" / f"{ds.image_paths[0].stem}_color.png").is_file()
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == sorted(
        [f"{ds.image_paths[0].stem}.png", f"{ds.image_paths[0].stem}.json", "predictions.csv", "predictions.json"])


@pytest.mark.parametrize("args, message", [
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--tile", "32"], "--tile: .* instance checkpoint"),
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--tta", "flip", "--probs"], "--tta, --probs"),
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--score-threshold", "1.5"], "score_threshold"),
    (["predict", "{ckpt}", "{image}", "--out", "{tmp}/p", "--overlap", "0.5", "--blend", "linear"],
     "--overlap, --blend"),
    (["export", "{ckpt}", "--format", "torchscript", "--out", "{tmp}/m.pt"], "ONNX only"),
    (["evaluate", "{ckpt}", "--data", "{data}", "--tile", "32"], "--tile: .* instance checkpoint"),
    (["evaluate", "{ckpt}", "--data", "{data}", "--split", "test"], "instances_test.json"),
])
def test_instance_usage_errors(setup, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    import re

    image = sorted((setup["data"] / "images" / "val").iterdir())[0]
    filled = [a.format(ckpt=setup["ckpt"], image=image, tmp=tmp_path, data=setup["data"]) for a in args]
    assert main(filled) == 2
    err = capsys.readouterr().err
    assert re.search(message, " ".join(err.split())), err
    assert "Traceback" not in err


def test_evaluate_refuses_other_categories(setup, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "other.pt"
    state = torch.load(setup["ckpt"], weights_only=True)
    state["cat_ids"] = [0, 5, 6, 7]
    torch.save(state, ckpt)
    assert main(["evaluate", str(ckpt), "--data", str(setup["data"])]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "differ from the checkpoint" in err and "5: 'circle'" in err


def test_semantic_checkpoints_refuse_instance_options(tmp_path: Path, capsys) -> None:
    model = build_model("unet", 2, base_channels=4, depth=2)
    ckpt = tmp_path / "s.pt"
    save_checkpoint(ckpt, {"task": "semantic", "model": {"name": "unet", "num_classes": 2,
                                                         "options": {"base_channels": 4, "depth": 2}},
                           "model_state": model.state_dict(), "classes": ["bg", "fg"], "in_channels": 3})
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    assert main(["predict", str(ckpt), str(image), "--out", str(tmp_path / "p"), "--score-threshold", "0.3"]) == 2
    assert "semantic checkpoint" in capsys.readouterr().err


def test_export_instance_checkpoint(setup, tmp_path: Path, capsys) -> None:
    from seglab.export import read_metadata

    out = tmp_path / "m.onnx"
    assert main(["export", str(setup["ckpt"]), "--out", str(out), "--check"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "one 64x64 RGB image per call" in printed and "check: max |onnx - pytorch|" in printed
    meta = read_metadata(out)
    assert meta["seglab.task"] == "instance" and meta["seglab.classes"] == CLASSES


def test_evaluate_same_numbers_on_two_ddp_processes(setup, tmp_path: Path) -> None:
    import subprocess
    import sys

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    args = ["evaluate", str(setup["ckpt"]), "--data", str(setup["data"]), "--device", "cpu"]
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


def test_no_detections_and_empty_images(setup, tmp_path: Path, monkeypatch) -> None:
    """A model that finds nothing scores 0 (not a crash); an image without instances is scored and written."""
    from seglab.data.coco import InstanceMaskFolder

    data = tmp_path / "d"
    shutil.copytree(setup["data"], data, ignore=shutil.ignore_patterns("annotations"))
    first = sorted((data / "masks" / "val").glob("*.png"))[0]
    Image.fromarray(np.zeros(np.asarray(Image.open(first)).shape, np.uint8)).save(first)
    first.with_suffix(".json").write_text('{"labels": []}')
    assert len(InstanceMaskFolder(data, "val")[0][1]["labels"]) == 0

    class Blind(nn.Module):
        rpn = roi_heads = None

        def __init__(self) -> None:
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros(1))

        def forward(self, images):
            return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                     "scores": torch.zeros(0), "masks": torch.zeros(0, 1, *x.shape[-2:])} for x in images]

    monkeypatch.setattr("seglab.engine.checkpoint.load_checkpoint",
                        lambda path, device="cpu": (Blind(), _info(Path(path))))
    out = tmp_path / "m.json"
    assert main(["evaluate", "ckpt.pt", "--data", str(data), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["mask_AP"] == 0.0 and record["box_AP"] == 0.0
    pred = tmp_path / "p"
    assert main(["predict", "ckpt.pt", str(data / "images" / "val"), "--out", str(pred), "--format", "overlay"]) == 0
    assert json.loads((pred / "predictions.json").read_text()) == []
    ids = np.asarray(Image.open(pred / first.name))
    assert not ids.any() and json.loads(first.with_name(first.stem + ".json").read_text()) == {"labels": []}
    assert json.loads((pred / f"{first.stem}.json").read_text())["labels"] == []


def test_predict_reports_unreadable_inputs_and_writes_the_rest(setup, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = sorted((setup["data"] / "images" / "val").iterdir())[0]
    out = tmp_path / "p"
    assert main(["predict", str(setup["ckpt"]), str(bad), str(good), "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "broken.png" in err and "1 input(s) failed" in err and "Traceback" not in err
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out / "predictions.csv"))}
    assert rows["broken.png"]["status"].startswith("error") and rows[good.name]["status"] == "ok"
    assert {r["image_id"] for r in json.loads((out / "predictions.json").read_text())} <= {1}
    assert rows[good.name]["image_id"] == "1"


def test_export_check_on_real_images_and_small_max_size(setup, tmp_path: Path, capsys) -> None:
    from seglab.export import export_model

    image = sorted((setup["data"] / "images" / "val").iterdir())[0]
    assert main(["export", str(setup["ckpt"]), "--out", str(tmp_path / "a.onnx"), "--check", "--check-image",
                 str(image)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 image(s) at 64x64" in printed and "detections compared" in printed
    torch.manual_seed(0)  # max_size below min_size: the side that passes the resize unchanged is max_size
    model = build_model("maskrcnn_resnet18_fpn", 4, **{**TINY, "min_size": 64, "max_size": 40}).eval()
    result = export_model(model, tmp_path / "b.onnx", task="instance", check=True, tolerance=1e-3)
    assert result.max_abs_diff < 1e-3 and result.detections_compared > 0
