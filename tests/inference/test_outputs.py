"""``predict_files``: every file ``seglab predict`` writes, checked against plain torch, plus clear refusals."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as pycoco_mask

from seglab.checkpoint import CheckpointInfo, load_checkpoint
from seglab.errors import ConfigError
from seglab.inference.outputs import PredictOptions, check_options, predict_files
from seglab.inference.tiling import TileOptions

pytestmark = pytest.mark.usefixtures("one_thread")  # detection graphs: one thread is fastest on 2 shared cores


@pytest.fixture(scope="module")
def semantic(semantic_run: dict) -> tuple[torch.nn.Module, CheckpointInfo]:
    return load_checkpoint(semantic_run["ckpt"])


@pytest.fixture(scope="module")
def instance(instance_run: dict) -> tuple[torch.nn.Module, CheckpointInfo]:
    return load_checkpoint(instance_run["ckpt"])


# --- semantic checkpoints ------------------------------------------------------------------------------

def test_index_pngs_probs_and_csv(semantic_run, semantic, direct_labels, tmp_path) -> None:
    folder = semantic_run["data"] / "images" / "val"
    out = tmp_path / "pred"
    options = PredictOptions(probs=True, tiles=TileOptions(batch_size=2))
    result = predict_files(*semantic, [folder / "s0.png", str(folder / "s[12].png"), folder], out, options)
    assert result.written == 4 and result.failures == [] and result.summary == out / "predictions.csv"
    assert result.detections is None
    for src in sorted(folder.iterdir()):
        with Image.open(out / src.name) as im:
            assert im.mode == "P" and im.size == Image.open(src).size
            assert im.getpalette()[3:6] == [250, 10, 10]  # the checkpoint's palette
            got = torch.from_numpy(np.array(im)).long()
        assert torch.equal(got, direct_labels(semantic_run["model"], src))
        probs = np.load(out / f"{src.stem}_probs.npy")
        assert probs.dtype == np.float16 and probs.shape == (3, *got.shape)
        np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=2e-3)
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["file"] for r in rows] == [str(p) for p in sorted(folder.iterdir())]  # each file once
    shares = [sum(float(r[f"share_{c}"]) for c in semantic_run["classes"]) for r in rows]
    assert all(r["status"] == "ok" for r in rows) and np.allclose(shares, 1.0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["color", "overlay", "panel"])
def test_picture_formats(semantic_run, semantic, tmp_path, fmt) -> None:
    src = semantic_run["data"] / "images" / "val" / "s2.png"
    out = tmp_path / fmt
    assert predict_files(*semantic, [src], out, PredictOptions(format=fmt)).written == 1
    assert not (out / "s2.png").exists()  # <stem>.png is the index mask; pictures are <stem>_<format>.png
    with Image.open(out / f"s2_{fmt}.png") as im:
        assert im.mode in ("RGB", "RGBA")
        if fmt != "panel":
            assert im.size == (44, 28)
        else:
            assert im.size == (600, 360)  # input | prediction, 3 in each, 100 dpi, + legend


def test_corrupt_inputs_are_reported_and_the_rest_written(semantic_run, semantic, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = semantic_run["data"] / "images" / "val" / "s0.png"
    (folder / "a_good.png").write_bytes(good.read_bytes())
    (folder / "b_broken.png").write_bytes(good.read_bytes()[:60])  # truncated PNG
    (folder / "c_good.jpg").write_bytes(b"")  # empty file
    Image.open(good).save(folder / "d_good.jpg")
    out = tmp_path / "out"
    result = predict_files(*semantic, [folder, str(tmp_path / "missing*.png")], out,
                           PredictOptions(tiles=TileOptions(tile=16)))
    assert result.written == 2
    failed = " ".join(f"{p}: {reason}" for p, reason in result.failures)
    assert len(result.failures) == 3
    assert "b_broken.png" in failed and "c_good.jpg" in failed and "missing*.png" in failed
    assert sorted(p.name for p in out.glob("*.png")) == ["a_good.png", "d_good.png"]
    rows = {Path(r["file"]).name: r["status"] for r in csv.DictReader((out / "predictions.csv").open())}
    assert rows["a_good.png"] == "ok" and rows["d_good.jpg"] == "ok"
    assert rows["b_broken.png"].startswith("error") and rows["c_good.jpg"].startswith("error")


def test_features_and_bad_format(semantic_run, semantic, tmp_path) -> None:
    src = semantic_run["data"] / "images" / "val" / "s0.png"
    out = tmp_path / "f"
    predict_files(*semantic, [src], out, PredictOptions(features="stem"))
    assert (out / "s0_features.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="--format"):
        PredictOptions(format="jpeg")


def test_output_names_never_collide(semantic_run, semantic, direct_labels, tmp_path) -> None:
    """An input named like another input's output (``s0_features.png``) or with a taken stem gets ``-2``."""
    val = semantic_run["data"] / "images" / "val"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(val / "s0.png", a / "s0.png")
    shutil.copy(val / "s1.png", a / "s0_features.png")
    Image.open(val / "s2.png").save(b / "s0.bmp")
    out = tmp_path / "out"
    result = predict_files(*semantic, [a, b], out, PredictOptions(features="stem", probs=True))
    assert result.written == 3 and not result.failures
    stems = ["s0", "s0_features-2", "s0-2"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["predictions.csv"] + [f"{s}{end}" for s in stems for end in (".png", "_probs.npy", "_features.png")])
    rows = {Path(r["file"]).name: r["output"] for r in csv.DictReader((out / "predictions.csv").open())}
    assert rows == {"s0.png": "s0.png", "s0_features.png": "s0_features-2.png", "s0.bmp": "s0-2.png"}
    for src, stem in ((val / "s1.png", "s0_features-2"), (val / "s2.png", "s0-2")):
        got = np.asarray(Image.open(out / f"{stem}.png"))
        assert np.array_equal(got, direct_labels(semantic[0], src).numpy())


def test_semantic_checkpoint_refuses_score_threshold(semantic, tmp_path) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    with pytest.raises(ConfigError, match="semantic checkpoint"):
        predict_files(*semantic, [image], tmp_path / "p", PredictOptions(score_threshold=0.3))
    with pytest.raises(ConfigError, match="semantic checkpoint"):
        check_options(semantic[1], PredictOptions(), {"score_threshold": 0.3})
    assert not (tmp_path / "p").exists()


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_recursive_mirrors_subfolders_and_skips_its_own_output(semantic_run, semantic, direct_labels,
                                                               tmp_path) -> None:
    """``recursive``: ``in/street/a.png`` -> ``out/street/a.png``; equal names in two subfolders stay apart;
    hidden folders and the output folder inside the input folder are not walked."""
    val = semantic_run["data"] / "images" / "val"
    src = tmp_path / "in"
    for rel, name in (("s0.png", "s0.png"), ("street/s0.png", "s1.png"), ("street/night/s0.jpg", "s2.png"),
                      ("park/s3.png", "s3.png"), (".cache/s1.png", "s1.png")):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.open(val / name).save(src / rel)
    out = src / "pred"  # inside the input folder: a rerun must not predict its own outputs
    result = predict_files(*semantic, [src], out, PredictOptions(probs=True), recursive=True)
    assert result.written == 4 and not result.failures
    stems = ["s0", "park/s3", "street/s0", "street/night/s0"]
    assert _tree(out) == sorted(["predictions.csv"] + [f"{s}{end}" for s in stems for end in (".png", "_probs.npy")])
    for stem, name in zip(stems, ("s0.png", "s3.png", "s1.png", "s2.png"), strict=True):
        got = np.asarray(Image.open(out / f"{stem}.png"))
        assert np.array_equal(got, direct_labels(semantic[0], val / name).numpy())
    rows = {r["file"]: r["output"] for r in csv.DictReader((out / "predictions.csv").open())}
    assert rows[str(src / "street" / "night" / "s0.jpg")] == "street/night/s0.png"
    # a glob is mirrored below its first folder without wildcards; without recursive everything is flat
    glob_out = tmp_path / "glob"
    predict_files(*semantic, [str(src / "street" / "**" / "*.*")], glob_out, recursive=True)
    assert _tree(glob_out) == ["night/s0.png", "predictions.csv", "s0.png"]
    flat = tmp_path / "flat"
    predict_files(*semantic, [src / "street", src / "street" / "night"], flat)
    assert _tree(flat) == ["predictions.csv", "s0-2.png", "s0.png"]


def test_several_formats_in_one_pass(semantic_run, semantic, tmp_path) -> None:
    """``index,overlay,color``: the index mask is ``<stem>.png``, each picture ``<stem>_<format>.png``, equal to
    what a one-format run writes."""
    src = semantic_run["data"] / "images" / "val" / "s2.png"
    out = tmp_path / "all"
    result = predict_files(*semantic, [src], out, PredictOptions(format="index,overlay,color"))
    assert result.written == 1
    assert _tree(out) == ["predictions.csv", "s2.png", "s2_color.png", "s2_overlay.png"]
    row = next(csv.DictReader((out / "predictions.csv").open()))
    assert row["output"] == "s2.png;s2_overlay.png;s2_color.png"
    for fmt in ("index", "overlay", "color"):
        one = tmp_path / fmt
        predict_files(*semantic, [src], one, PredictOptions(format=fmt))
        name = "s2.png" if fmt == "index" else f"s2_{fmt}.png"
        with Image.open(out / name) as a, Image.open(one / name) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    pictures = tmp_path / "pictures"  # several formats without index: no <stem>.png
    predict_files(*semantic, [src], pictures, PredictOptions(format="panel,overlay"))
    assert _tree(pictures) == ["predictions.csv", "s2_overlay.png", "s2_panel.png"]
    assert PredictOptions(format=" index , panel").formats == ("index", "panel")


@pytest.mark.parametrize("spec, message", [("jpeg", "'jpeg' is not one of index"),
                                           ("index,index", "names index twice"), ("", "'' is not one of")])
def test_bad_formats_are_refused(spec, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PredictOptions(format=spec)


def test_rerun_into_the_same_out(semantic_run, semantic, tmp_path) -> None:
    """A second run into ``out`` is refused before anything is written, unless ``exist_ok``: then it replaces
    the files it writes and leaves the others as they are."""
    from seglab.errors import OutputError

    val = semantic_run["data"] / "images" / "val"
    out = tmp_path / "pred"
    first = predict_files(*semantic, [val / "s0.png", val / "s1.png"], out, PredictOptions(probs=True))
    assert (first.replaced, first.kept) == (0, 0)
    (out / "notes.txt").write_text("mine")
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(OutputError) as e:
        predict_files(*semantic, [val / "s0.png", val / "s1.png"], out)
    message = " ".join(str(e.value).split())
    assert f"--out {out} holds 3 file(s) of an earlier run" in message
    assert "predictions.csv, s0.png, s1.png" in message and "--exist-ok" in message
    assert "(3 other file(s) there would be left as they are)" in message  # s0/s1_probs.npy, notes.txt
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    again = predict_files(*semantic, [val / "s0.png", val / "s1.png"], out, exist_ok=True)
    assert (again.written, again.replaced, again.kept) == (2, 3, 3)
    assert (out / "notes.txt").read_text() == "mine" and (out / "s0_probs.npy").stat().st_mtime_ns == \
        before[out / "s0_probs.npy"]
    new = predict_files(*semantic, [val / "s2.png"], tmp_path / "notes_only", exist_ok=False)
    assert (new.replaced, new.kept) == (0, 0)


# --- instance checkpoints ------------------------------------------------------------------------------

def test_instance_ids_json_and_coco_results(instance_run, instance, tmp_path: Path) -> None:
    images = sorted((instance_run["data"] / "images" / "val").iterdir())[:3]
    out = tmp_path / "pred"
    options = PredictOptions(score_threshold=0.2, format="overlay",
                             tiles=TileOptions(batch_size=1))  # batch 1: bit-equal to the reference
    result = predict_files(*instance, images, out, options)
    assert result.written == 3 and result.failures == [] and result.detections == out / "predictions.json"
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    results = json.loads((out / "predictions.json").read_text())
    model, classes = instance_run["model"], instance_run["classes"]
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
            assert int(row[f"count_{classes[c]}"]) == record["labels"].count(c)
        # every painted pixel belongs to the highest-scoring detection covering it
        covered = masks.any(0)
        assert np.array_equal(ids > 0, covered)
        winner = np.argmax(masks, axis=0)  # masks are sorted by score: the first True is the best
        previous = -1
        for k, score in enumerate(record["scores"], 1):
            j = int(winner[ids == k][0])  # the detection id k stands for; ids follow the score order
            assert j > previous and np.array_equal(ids == k, covered & (winner == j))
            assert score == pytest.approx(float(scores[j]), abs=1e-4)
            assert record["labels"][k - 1] == int(labels[j]) and record["classes"][k - 1] == classes[int(labels[j])]
            previous = j
        mine = [r for r in results if r["image_id"] == i]
        assert len(mine) == len(labels)
        for r, m in zip(mine, masks, strict=True):
            assert np.array_equal(pycoco_mask.decode(r["segmentation"]).astype(bool), m)
        assert (out / f"{path.stem}_overlay.png").is_file()
        total += len(labels)
    assert len(results) == total


def test_predicted_masks_read_back_as_an_instance_folder(instance_run, instance, tmp_path: Path) -> None:
    from seglab.data.instance.coco import InstanceMaskFolder

    data = instance_run["data"]
    out = tmp_path / "ds" / "masks" / "val"
    predict_files(*instance, [data / "images" / "val"], out, PredictOptions(score_threshold=0.25, format="panel"))
    shutil.copytree(data / "images", tmp_path / "ds" / "images")
    shutil.copy(data / "classes.txt", tmp_path / "ds" / "classes.txt")
    ds = InstanceMaskFolder(tmp_path / "ds", "val")
    for i in range(len(ds)):
        stem = ds.image_paths[i].stem
        _, target = ds[i]
        ids = np.asarray(Image.open(out / f"{stem}.png"))
        assert len(target["labels"]) == ids.max()
        assert (out / f"{stem}_panel.png").is_file()
    for fmt in ("color", "index", "index,color,overlay"):
        predict_files(*instance, [ds.image_paths[0]], tmp_path / fmt, PredictOptions(format=fmt))
    stem = ds.image_paths[0].stem
    assert (tmp_path / "color" / f"{stem}_color.png").is_file()
    common = [f"{stem}.png", f"{stem}.json", "predictions.csv", "predictions.json"]
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == sorted(common)
    assert sorted(p.name for p in (tmp_path / "index,color,overlay").iterdir()) == sorted(
        common + [f"{stem}_color.png", f"{stem}_overlay.png"])
    for name in (f"{stem}.png", f"{stem}_color.png"):  # several formats: the same pictures as one at a time
        assert (tmp_path / "index,color,overlay" / name).read_bytes() == \
            (tmp_path / ("index" if name == f"{stem}.png" else "color") / name).read_bytes()


def test_instance_unreadable_inputs_are_reported_and_the_rest_written(instance_run, instance, tmp_path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = sorted((instance_run["data"] / "images" / "val").iterdir())[0]
    out = tmp_path / "p"
    result = predict_files(*instance, [bad, good], out)
    assert result.written == 1 and [Path(p).name for p, _ in result.failures] == ["broken.png"]
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out / "predictions.csv"))}
    assert rows["broken.png"]["status"].startswith("error") and rows[good.name]["status"] == "ok"
    assert {r["image_id"] for r in json.loads((out / "predictions.json").read_text())} <= {1}
    assert rows[good.name]["image_id"] == "1"


@pytest.mark.parametrize("options, message", [
    ({"tiles": TileOptions(tile=32)}, "--tile: .* instance checkpoint"),
    ({"tta": "flip", "probs": True}, "--tta, --probs"),
    ({"score_threshold": 1.5}, "score_threshold"),
    ({"tiles": TileOptions(overlap=0.5, blend="linear")}, "--overlap, --blend"),
    ({"features": "stem"}, "--features: .* instance checkpoint"),
])
def test_instance_checkpoint_refuses_options(instance_run, instance, tmp_path, options, message) -> None:
    image = sorted((instance_run["data"] / "images" / "val").iterdir())[0]
    with pytest.raises(ConfigError) as e:
        predict_files(*instance, [image], tmp_path / "p", PredictOptions(**options))
    assert re.search(message, " ".join(str(e.value).split())), str(e.value)
    assert not (tmp_path / "p").exists()  # refused before anything is written
