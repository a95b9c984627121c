"""A model trained in the user's own loop becomes a checkpoint `seglab predict`, `evaluate` and `export` accept:
docs/training.md's "Your own loop" block runs as written, then its three commands.

References are independent of seglab's inference: the predictions are the plain forward pass's argmax on the
image / 255 (the loop's own input, no normalization), the mIoU is computed with numpy from those predictions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def _blocks() -> tuple[str, list[list[str]]]:
    section = DOC.read_text(encoding="utf-8").split("## Your own loop", 1)[1]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return python, [line.split()[1:] for line in commands.strip().splitlines()]  # drop "seglab"


def test_own_loop_to_checkpoint_that_predict_evaluate_and_export_accept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from seglab.data.synthetic import make_shapes

    data = make_shapes(tmp_path / "runs" / "demo" / "data", n_train=8, n_val=3, size=48, seed=0)
    monkeypatch.chdir(tmp_path)
    python, commands = _blocks()
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(python, str(DOC), "exec"), scope)
    net = scope["net"].eval()

    predict, evaluate, export = commands
    assert main(predict) == 0
    assert main([*evaluate, "--json", "m.json"]) == 0
    inter, union = np.zeros(4), np.zeros(4)
    for path in sorted((data / "images" / "val").iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255).permute(2, 0, 1)
        with torch.no_grad():
            want = net(x[None])[0].argmax(0).numpy()
        got = np.asarray(Image.open(tmp_path / "runs" / "mine_pred" / f"{path.stem}.png"))
        np.testing.assert_array_equal(got, want)
        truth = np.asarray(Image.open(data / "labels" / "val" / f"{path.stem}.png"))
        for c in range(4):
            inter[c] += np.sum((got == c) & (truth == c))
            union[c] += np.sum((got == c) | (truth == c))
    present = union > 0
    assert json.loads(Path("m.json").read_text())["mean_iou"] == pytest.approx(
        float(np.mean(inter[present] / union[present])), abs=1e-6)

    pytest.importorskip("onnx")
    assert main(export) == 0 and Path("runs/mine.onnx").stat().st_size > 0
    assert "Traceback" not in capsys.readouterr().err
