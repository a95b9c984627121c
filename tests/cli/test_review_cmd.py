"""`seglab review` end to end, and the review `seglab train` writes of its best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.config import config_from_dict
from seglab.engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_review_command_writes_the_page(semantic_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "review"
    assert main(["review", str(semantic_run["run"]), "--data", str(semantic_run["data"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Reviewed 4 images (semantic)" in text and str(out / "index.html") in text
    first = json.loads((out / "images.json").read_text())["images"][0]["stem"]
    assert f"Worst by mIoU: {first}" in text


@pytest.mark.parametrize(("args", "words"), [
    (["--data", "{data}"], "not both and not neither"),
    (["{run}", "--data", "{data}", "--predictions", "{tmp}"], "not both"),
    (["{run}", "--data", "{tmp}/nowhere"], "nowhere"),
    (["{run}", "--data", "{data}", "--split", "test"], "test"),
    (["{tmp}/no_run", "--data", "{data}"], "no_run"),
])
def test_review_command_errors_exit_2(semantic_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture,
                                      args: list[str], words: str) -> None:
    subs = {"data": semantic_run["data"], "run": semantic_run["run"], "tmp": tmp_path}
    assert main(["review", *(a.format(**subs) for a in args)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and words in err and "Traceback" not in err


def _config(data: Path, out: Path, **train_keys: object):
    return config_from_dict({
        "data": {"root": str(data), "crop_size": 32, "scale": [1.0, 1.0], "color_jitter": 0.0, "workers": 0},
        "model": {"name": "unet", "options": {"base_channels": 4, "depth": 2}},
        "train": {"out": str(out), "epochs": 1, "batch_size": 4, "lr": 0.01, "warmup_epochs": 0.0,
                  "num_samples": 0, **train_keys}})


def test_training_writes_the_review_of_best(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train(_config(tiny_data, tmp_path / "run"))
    record = json.loads((tmp_path / "run" / "review" / "images.json").read_text())
    assert record["num_images"] == 4 and record["origin"].endswith("best.pt")
    assert str(tmp_path / "run" / "review" / "index.html") in capsys.readouterr().err
    from seglab.engine.review_hook import ReviewHook
    from seglab.engine.trainer import Trainer

    quiet = Trainer(_config(tiny_data, tmp_path / "quiet", no_review=True))  # --no-review: no hook, no review/
    assert not any(isinstance(h, ReviewHook) for h in quiet.default_hooks())
