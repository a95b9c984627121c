"""A run trained with ``data.resize`` end to end: the checkpoint carries the scale, every use returns outputs at
the input's size, and report.md / ``evaluate`` state the sanity bar (trivial baselines of the split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seglab.checkpoint import load_checkpoint
from seglab.data.io import read_label
from seglab.engine.trainer import train
from seglab.inference import PredictOptions, TileOptions, evaluate_checkpoint, predict_files


def test_a_resized_run_round_trips_and_reports_its_sanity_bar(tiny_data: Path, tmp_path: Path,
                                                             tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1)
    cfg.data.resize, cfg.data.crop_size = 24, 16
    train(cfg)
    model, info = load_checkpoint(tmp_path / "run")
    assert info.resize == 24
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Sanity bar" in report and "(the majority class): mIoU" in report
    assert "gray-level threshold" not in report  # three classes: the threshold rule is for two-class data
    val = tiny_data / "images" / "val"
    for tiles in (TileOptions(), TileOptions(tile=16)):
        out = tmp_path / f"pred{tiles.tile}"
        predict_files(model, info, [val], out, PredictOptions(format="index", tiles=tiles, tta="flip", probs=True))
        for image in sorted(val.glob("*.png")):
            assert read_label(out / image.name).shape == Image.open(image).size[::-1]
            assert np.load(out / f"{image.stem}_probs.npy").shape == (3, *Image.open(image).size[::-1])
    result = evaluate_checkpoint(model, info, tiny_data, "val")
    record = result.record()
    assert record["baselines"]["majority_class"] == 0 and record["baselines"]["threshold"] is None
    assert int(result.metrics["confusion_matrix"].sum()) == 4 * 32 * 32  # scored at the labels' own size
