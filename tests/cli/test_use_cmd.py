"""`seglab evaluate / predict / export` on a tiny checkpoint made in the fixture (random weights, seconds)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.engine.checkpoint import save_checkpoint
from seglab.models import build_model

CLASSES = ["background", "square", "bar"]
MEAN, STD = [0.45, 0.5, 0.55], [0.2, 0.25, 0.3]
OPTIONS = {"base_channels": 8, "depth": 2}


def _state(model: torch.nn.Module, task: str = "semantic") -> dict:
    return {"task": task, "model": {"name": "unet", "num_classes": 3, "options": OPTIONS},
            "model_state": model.state_dict(), "classes": CLASSES, "in_channels": 3, "mean": MEAN,
            "std": STD, "ignore_index": 255, "config": {"data": {"crop_size": 48}}, "epoch": 1, "step": 10,
            "metrics": {}, "palette": [[0, 0, 0], [250, 10, 10], [10, 250, 10]]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A 4-image val split (one 16-bit-free RGB PNG + label each) and a tiny U-Net checkpoint."""
    root = tmp_path_factory.mktemp("use")
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "images" / "val").mkdir(parents=True)
    (data / "labels" / "val").mkdir(parents=True)
    (data / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for i, (h, w) in enumerate(((32, 40), (32, 40), (28, 44), (36, 36))):
        label = np.zeros((h, w), np.uint8)
        label[4:14, 5:15] = 1
        label[20:24, :] = 2
        label[0, :] = 255
        image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        image[label == 1] += np.uint8(150)
        image[label == 2, 2] = 250
        Image.fromarray(image).save(data / "images" / "val" / f"s{i}.png")
        Image.fromarray(label).save(data / "labels" / "val" / f"s{i}.png")
    torch.manual_seed(0)
    model = build_model("unet", 3, **OPTIONS).eval()
    run = root / "run"
    save_checkpoint(run / "best.pt", _state(model))
    return {"root": root, "data": data, "run": run, "ckpt": run / "best.pt", "model": model}


def _direct(model: torch.nn.Module, path: Path) -> torch.Tensor:
    """Reference prediction with plain torch: read, scale, normalize, forward, argmax."""
    x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    with torch.no_grad():
        return model(x[None]).argmax(1)[0]


def test_evaluate_table_and_json_match_torchmetrics(setup, tmp_path, capsys) -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    out = tmp_path / "m.json"
    assert main(["evaluate", str(setup["run"]), "--data", str(setup["data"]), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "square" in printed
    record = json.loads(out.read_text())
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "mean_dice", "fw_iou", "per_class_iou",
                "per_class_dice", "confusion_matrix"):
        assert key in record
    assert record["classes"] == CLASSES and record["num_images"] == 4
    images = sorted((setup["data"] / "images" / "val").iterdir())
    preds = torch.cat([_direct(setup["model"], p).flatten() for p in images])
    target = torch.cat([torch.from_numpy(np.array(Image.open(setup["data"] / "labels" / "val" / p.name)))
                        .long().flatten() for p in images])
    ref = MulticlassJaccardIndex(3, average="none", ignore_index=255)(preds, target)
    present = [i for i in range(3) if record["per_class_iou"][i] is not None]
    np.testing.assert_allclose([record["per_class_iou"][i] for i in present], ref[present].numpy(), atol=1e-6)
    assert sum(map(sum, record["confusion_matrix"])) == int((target != 255).sum())


def test_evaluate_with_tta_and_tiles_runs(setup, tmp_path) -> None:
    out = tmp_path / "m.json"
    args = ["evaluate", str(setup["ckpt"]), "--data", str(setup["data"]), "--json", str(out)]
    assert main(args + ["--tta", "flip", "--tile", "16"]) == 0
    assert 0.0 <= json.loads(out.read_text())["pixel_accuracy"] <= 1.0


def test_evaluate_missing_checkpoint_is_a_clear_error(setup, tmp_path, capsys) -> None:
    assert main(["evaluate", str(tmp_path / "nope.pt"), "--data", str(setup["data"])]) == 2
    assert "not found" in capsys.readouterr().err


def test_predict_index_pngs_probs_and_csv(setup, tmp_path) -> None:
    folder = setup["data"] / "images" / "val"
    out = tmp_path / "pred"
    args = ["predict", str(setup["ckpt"]), str(folder / "s0.png"), str(folder / "s[12].png"),
            str(folder), "--out", str(out), "--probs", "--batch-size", "2"]
    assert main(args) == 0
    for src in sorted(folder.iterdir()):
        with Image.open(out / src.name) as im:
            assert im.mode == "P" and im.size == Image.open(src).size
            assert im.getpalette()[3:6] == [250, 10, 10]  # the checkpoint's palette
            got = torch.from_numpy(np.array(im)).long()
        assert torch.equal(got, _direct(setup["model"], src))
        probs = np.load(out / f"{src.stem}_probs.npy")
        assert probs.dtype == np.float16 and probs.shape == (3, *got.shape)
        np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=2e-3)
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["file"] for r in rows] == [str(p) for p in sorted(folder.iterdir())]  # each file once
    shares = [sum(float(r[f"share_{c}"]) for c in CLASSES) for r in rows]
    assert all(r["status"] == "ok" for r in rows) and np.allclose(shares, 1.0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["color", "overlay", "panel"])
def test_predict_picture_formats(setup, tmp_path, fmt) -> None:
    src = setup["data"] / "images" / "val" / "s2.png"
    out = tmp_path / fmt
    assert main(["predict", str(setup["ckpt"]), str(src), "--out", str(out), "--format", fmt]) == 0
    with Image.open(out / "s2.png") as im:
        assert im.mode in ("RGB", "RGBA")
        if fmt != "panel":
            assert im.size == (44, 28)
        else:
            assert im.size == (600, 360)  # input | prediction, 3 in each, 100 dpi, + legend


def test_predict_corrupt_input_reports_and_processes_the_rest(setup, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = setup["data"] / "images" / "val" / "s0.png"
    (folder / "a_good.png").write_bytes(good.read_bytes())
    (folder / "b_broken.png").write_bytes(good.read_bytes()[:60])  # truncated PNG
    (folder / "c_good.jpg").write_bytes(b"")  # empty file
    Image.open(good).save(folder / "d_good.jpg")
    out = tmp_path / "out"
    code = main(["predict", str(setup["ckpt"]), str(folder), str(tmp_path / "missing*.png"), "--out", str(out),
                 "--tile", "16"])
    assert code == 2
    err = capsys.readouterr().err
    assert "b_broken.png" in err and "c_good.jpg" in err and "missing*.png" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["a_good.png", "d_good.png"]
    rows = {Path(r["file"]).name: r["status"] for r in csv.DictReader((out / "predictions.csv").open())}
    assert rows["a_good.png"] == "ok" and rows["d_good.jpg"] == "ok"
    assert rows["b_broken.png"].startswith("error") and rows["c_good.jpg"].startswith("error")


def test_predict_features_and_bad_format(setup, tmp_path, capsys) -> None:
    src = setup["data"] / "images" / "val" / "s0.png"
    out = tmp_path / "f"
    assert main(["predict", str(setup["ckpt"]), str(src), "--out", str(out), "--features", "stem"]) == 0
    assert (out / "s0_features.png").stat().st_size > 0
    assert main(["predict", str(setup["ckpt"]), str(src), "--out", str(out), "--format", "jpeg"]) == 2
    assert "--format" in capsys.readouterr().err


def test_export_onnx_with_check_and_metadata(setup, tmp_path, capsys) -> None:
    ort = pytest.importorskip("onnxruntime")
    from seglab.export import read_metadata

    out = tmp_path / "m.onnx"
    assert main(["export", str(setup["run"]), "--format", "onnx", "--out", str(out), "--check"]) == 0
    assert "max |onnx - pytorch|" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["seglab.classes"] == CLASSES and meta["seglab.mean"] == MEAN and meta["seglab.std"] == STD
    assert meta["seglab.input_size"] == [48, 48] and meta["seglab.model"]["name"] == "unet"
    x = torch.rand(1, 3, 64, 96)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = setup["model"](x).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_export_torchscript_default_path(setup, tmp_path) -> None:
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(setup["ckpt"].read_bytes())
    assert main(["export", str(ckpt), "--format", "torchscript"]) == 0
    assert (tmp_path / "best.torchscript.pt").stat().st_size > 0


def test_inconsistent_instance_checkpoint_is_refused(setup, tmp_path, capsys) -> None:
    ckpt = tmp_path / "inst.pt"
    save_checkpoint(ckpt, _state(setup["model"], task="instance"))  # a U-Net labelled as an instance model
    image = sorted((setup["data"] / "images" / "val").iterdir())[0]
    for args in (["export", str(ckpt), "--out", str(tmp_path / "x.onnx")],
                 ["predict", str(ckpt), str(image), "--out", str(tmp_path / "p")],
                 ["evaluate", str(ckpt), "--data", str(setup["data"])]):
        assert main(args) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "not a detector" in err and "inconsistent" in err, err
    assert not (tmp_path / "x.onnx").exists()


def test_evaluate_same_numbers_on_two_ddp_processes(setup, tmp_path) -> None:
    import subprocess
    import sys

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    args = ["evaluate", str(setup["ckpt"]), "--data", str(setup["data"]), "--device", "cpu"]
    assert main(args + ["--json", str(one)]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "seglab", *args, "--json", str(two)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["mean_iou"] == b["mean_iou"]
