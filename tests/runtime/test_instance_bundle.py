"""An instance bundle predicts what the checkpoint predicts: the same id maps, records, tables and COCO results.

The reference is ``seglab.inference.predict_files`` (torch, what ``seglab predict RUN`` runs) on pictures of
several sizes, so the detector's resize, done outside the graph by the runtime, is exercised; the bundle side is
``seglab.runtime`` (onnxruntime + numpy). The RLE encoder is checked against the COCO mask API and the resize
rule against torchvision's own transform.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.errors import ConfigError, ModelError
from seglab.runtime.instance import detector_size, encode_rle

SIZES = [(61, 83), (90, 70), (64, 64), (40, 130), (78, 83)]


@pytest.mark.parametrize("min_size,max_size", [(64, 64), (64, 40), (800, 1333), (320, 320)])
def test_detector_size_is_torchvisions_resize(min_size: int, max_size: int, rng: np.random.Generator) -> None:
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    t = GeneralizedRCNNTransform(min_size, max_size, [0.5] * 3, [0.25] * 3).eval()
    sizes = SIZES + [(1, 5), (333, 500), (480, 640), (1024, 2048), (99, 100)] + \
        [tuple(int(v) for v in rng.integers(16, 700, 2)) for _ in range(40)]
    for h, w in sizes:
        image, _ = t.resize(torch.zeros(3, h, w))
        assert detector_size(h, w, min_size, max_size) == tuple(image.shape[-2:]), (h, w)


def test_rle_strings_equal_the_coco_mask_api(rng: np.random.Generator) -> None:
    from pycocotools import mask as coco_mask

    masks = [rng.random((h, w)) < p for h, w, p in [(7, 5, 0.5), (30, 41, 0.1), (64, 64, 0.9), (3, 200, 0.5)]]
    long_runs = np.zeros((300, 200), bool)
    long_runs[20:280, 10:150] = True  # runs of thousands of pixels: several 5-bit groups, negative differences
    long_runs[100:110, 30:40] = False
    first = np.zeros((4, 4), bool)
    first[0, 0] = True  # the first run is foreground: the counts start with an empty background run
    masks += [long_runs, first, np.zeros((5, 6), bool), np.ones((6, 5), bool)]
    for m in masks:
        ref = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
        got = encode_rle(m)
        assert got == {"size": [int(v) for v in ref["size"]], "counts": ref["counts"].decode()}


@pytest.fixture(scope="module")
def pictures(instance_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shapes val pictures at five sizes (the detector scales each one differently)."""
    out = tmp_path_factory.mktemp("pictures")
    for path, (h, w) in zip(sorted((instance_run["data"] / "images" / "val").iterdir()), SIZES, strict=True):
        Image.open(path).convert("RGB").resize((w, h), Image.BILINEAR).save(out / f"{path.stem}.png")
    return out


def _run_with_resize(instance_run: dict, folder: Path, resize: int) -> Path:
    """The instance checkpoint trained at ``data.resize`` = ``resize`` (the same weights, the config says so)."""
    from seglab.checkpoint import save_checkpoint

    ckpt = folder / "run" / "best.pt"
    save_checkpoint(ckpt, {**instance_run["state"], "config": {"data": {"resize": resize}},
                           "model_state": instance_run["model"].state_dict()})
    return ckpt


@pytest.mark.parametrize("resize", [None, 48], ids=["native", "data.resize"])
def test_instance_files_equal_torch_predict(instance_run: dict, instance_bundle: Path, pictures: Path,
                                            tmp_path: Path, resize: int | None) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.export import export_checkpoint
    from seglab.inference import PredictOptions, predict_files
    from seglab.runtime import RuntimeOptions, load_bundle, predict_bundle_files

    ckpt, bundle_file = instance_run["ckpt"], instance_bundle
    if resize:
        ckpt = _run_with_resize(instance_run, tmp_path, resize)
        bundle_file = export_checkpoint(*load_checkpoint(ckpt), tmp_path / "scaled.onnx").path
    ref, got = tmp_path / "torch", tmp_path / "onnx"
    model, info = load_checkpoint(ckpt)
    predict_files(model, info, [pictures], ref, PredictOptions(format="index,color", score_threshold=0.0))
    bundle = load_bundle(bundle_file)
    assert bundle.resize == resize
    result = predict_bundle_files(bundle, [pictures], got, format="index,color",
                                  options=RuntimeOptions(score_threshold=0.0))
    assert result.written == 5 and not result.failures and result.detections == got / "predictions.json"
    names = sorted(p.name for p in ref.iterdir())
    assert names == sorted(p.name for p in got.iterdir()) and len(names) == 5 * 3 + 2
    for name in (n for n in names if n.endswith(".png")):
        a, b = Image.open(ref / name), Image.open(got / name)
        assert a.size == b.size and a.mode == b.mode and a.getpalette() == b.getpalette(), name
        assert np.array_equal(np.asarray(a), np.asarray(b)), name
    for name in (n for n in names if n.endswith(".json") and n != "predictions.json"):
        a, b = (json.loads((d / name).read_text()) for d in (ref, got))
        assert a["labels"] == b["labels"] and a["classes"] == b["classes"] and len(a["labels"]) > 0, name
        np.testing.assert_allclose(a["scores"], b["scores"], atol=2e-4)
    rows = [list(csv.DictReader(open(d / "predictions.csv"))) for d in (ref, got)]
    assert rows[0] == rows[1]
    a, b = (json.loads((d / "predictions.json").read_text()) for d in (ref, got))
    assert len(a) == len(b) > 5
    for x, y in zip(a, b, strict=True):
        assert (x["image_id"], x["category_id"], x["segmentation"]) == (y["image_id"], y["category_id"],
                                                                       y["segmentation"])
        assert abs(x["score"] - y["score"]) < 1e-4 and np.allclose(x["bbox"], y["bbox"], atol=1e-2)


def test_instance_bundle_refuses_semantic_options(instance_bundle: Path, semantic_bundle: Path, pictures: Path,
                                                  tmp_path: Path) -> None:
    from seglab.runtime import Bundle, RuntimeOptions, load_bundle, predict_bundle_files

    detector = load_bundle(instance_bundle)
    for options, flag in ((RuntimeOptions(tile=32), "--tile"), (RuntimeOptions(tta="flip"), "--tta")):
        with pytest.raises(ConfigError, match=flag):
            predict_bundle_files(detector, [pictures], tmp_path / "a", options=options)
    with pytest.raises(ConfigError, match="--score-threshold"):
        predict_bundle_files(load_bundle(semantic_bundle), [pictures], tmp_path / "a",
                             options=RuntimeOptions(score_threshold=0.3))
    with pytest.raises(ConfigError, match="score_threshold"):
        predict_bundle_files(detector, [pictures], tmp_path / "a", options=RuntimeOptions(score_threshold=1.5))
    old = Bundle(path=instance_bundle, session=detector.session, meta={}, task="instance")  # no seglab.detector
    with pytest.raises(ModelError, match="re-export"):
        predict_bundle_files(old, [pictures], tmp_path / "b")
    panoptic = Bundle(path=instance_bundle, session=None, meta={}, task="panoptic")
    with pytest.raises(ModelError, match="semantic and instance bundles"):
        predict_bundle_files(panoptic, [pictures], tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")
