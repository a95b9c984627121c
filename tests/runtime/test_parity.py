"""The bundle predicts what the checkpoint predicts: identical class maps, whole, tiled and with TTA.

The reference is ``seglab.inference.predict_files`` (torch, the code ``seglab predict RUN`` runs); the
bundle side is ``seglab.runtime`` (onnxruntime + numpy). Both write index PNGs, compared pixel for pixel.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")


def _torch_outputs(semantic_run: dict, out: Path, fmt: str = "index", **tiles) -> Path:
    from seglab.checkpoint import load_checkpoint
    from seglab.inference import PredictOptions, TileOptions, predict_files

    model, info = load_checkpoint(semantic_run["ckpt"])
    tta = tiles.pop("tta", None)
    options = PredictOptions(format=fmt, tiles=TileOptions(**tiles), tta=tta)
    predict_files(model, info, [semantic_run["data"] / "images" / "val"], out, options)
    return out


def _bundle_outputs(bundle_path: Path, semantic_run: dict, out: Path, fmt: str = "index", **tiles) -> Path:
    from seglab.runtime import RuntimeOptions, load_bundle, predict_bundle_files

    bundle = load_bundle(bundle_path)
    predict_bundle_files(bundle, [semantic_run["data"] / "images" / "val"], out, format=fmt,
                         options=RuntimeOptions(**tiles))
    return out


@pytest.mark.parametrize("tiles", [{}, {"tile": 16, "overlap": 0.25}, {"tile": 20, "overlap": 0.5, "blend": "linear"},
                                   {"tta": "flip"}, {"tile": 16, "tta": "hflip,vflip"},
                                   {"tta": "flip,scales=0.75,1,1.5"}],
                         ids=["whole", "tiled", "tiled-linear", "flip", "tiled-flips", "scales"])
def test_class_maps_equal_torch_predict(bundle_path: Path, semantic_run: dict, tmp_path: Path, tiles: dict) -> None:
    ref = _torch_outputs(semantic_run, tmp_path / "torch", **dict(tiles))
    got = _bundle_outputs(bundle_path, semantic_run, tmp_path / "onnx", **dict(tiles))
    names = sorted(p.name for p in ref.glob("*.png"))
    assert names == sorted(p.name for p in got.glob("*.png")) and len(names) == 4
    for name in names:
        a, b = Image.open(ref / name), Image.open(got / name)
        assert a.mode == b.mode == "P" and a.getpalette() == b.getpalette()
        assert np.array_equal(np.asarray(a), np.asarray(b)), name
    # predictions.csv: the same rows (file, output, size, class shares)
    rows = [list(csv.DictReader(open(d / "predictions.csv"))) for d in (ref, got)]
    assert rows[0] == rows[1]


def test_color_pictures_equal_torch_predict(bundle_path: Path, semantic_run: dict, tmp_path: Path) -> None:
    ref = _torch_outputs(semantic_run, tmp_path / "torch", fmt="index,color")
    got = _bundle_outputs(bundle_path, semantic_run, tmp_path / "onnx", fmt="index,color")
    for p in ref.glob("*_color.png"):
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(got / p.name)))


def test_bundle_metadata_holds_what_prediction_needs(bundle_path: Path, semantic_run: dict) -> None:
    from seglab.runtime import load_bundle

    b = load_bundle(bundle_path)
    assert b.task == "semantic" and b.classes == semantic_run["classes"] and b.in_channels == 3
    assert b.mean == semantic_run["mean"] and b.std == semantic_run["std"] and b.ignore_index == 255
    assert b.palette.shape == (256, 3) and b.palette[1].tolist() == [250, 10, 10]  # the checkpoint's palette
    assert b.tile == {"tile": None, "overlap": 0.25, "blend": "gaussian", "tta": None} and b.resize is None
    assert b.meta["seglab.stride"] == 4  # depth-2 U-Net: two 2x poolings


@pytest.fixture(scope="module")
def resized_run(semantic_run: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shared tiny U-Net saved with ``data.resize: 24`` (val images of 32-44 px are predicted at 24 px long
    side and scored back at their size) and the plan's TTA advice ``data.tta: hflip``, and its bundle."""
    import torch

    from seglab.checkpoint import load_checkpoint, save_checkpoint
    from seglab.export import export_checkpoint

    state = torch.load(semantic_run["ckpt"], weights_only=True)
    state["config"] = {**state["config"], "data": {**state["config"]["data"], "resize": 24, "tta": "hflip"}}
    root = tmp_path_factory.mktemp("resized")
    save_checkpoint(root / "run" / "best.pt", state)
    model, info = load_checkpoint(root / "run" / "best.pt")
    assert info.resize == 24
    export_checkpoint(model, info, root / "model.onnx")
    return root / "run", root / "model.onnx"


@pytest.mark.parametrize("flags", [[], ["--tile", "16"], ["--tta", "none"], ["--tta", "vflip"]],
                         ids=["planned-tta", "tiled", "no-tta", "vflip"])
def test_resize_and_planned_tta_equal_seglab_predict_run(resized_run: tuple[Path, Path], semantic_run: dict,
                                                         tmp_path: Path, flags: list[str]) -> None:
    """Both through the CLI, as a user runs them: `seglab predict RUN` and `seglab predict model.onnx`."""
    from seglab.cli import main
    from seglab.runtime import load_bundle

    run, bundle_file = resized_run
    assert load_bundle(bundle_file).resize == 24 and load_bundle(bundle_file).tile["tta"] == "hflip"
    images = str(semantic_run["data"] / "images" / "val")
    assert main(["predict", str(run), images, "--out", str(tmp_path / "torch"), *flags]) == 0
    assert main(["predict", str(bundle_file), images, "--out", str(tmp_path / "onnx"), *flags]) == 0
    names = sorted(p.name for p in (tmp_path / "torch").glob("*.png"))
    assert len(names) == 4
    for name in names:
        a, b = np.asarray(Image.open(tmp_path / "torch" / name)), np.asarray(Image.open(tmp_path / "onnx" / name))
        assert a.shape == b.shape == np.asarray(Image.open(Path(images) / name)).shape[:2]
        assert np.array_equal(a, b), name
