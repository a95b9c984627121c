"""Feature maps and Grad-CAM: shapes, layer errors, and a CAM that sits on its class's object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.errors import ModelError
from seglab.inference.inspect import default_layers, grad_cam, mean_cam_inside, strongest_channels


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny U-Net trained until it finds squares and discs (tiny_data's recipe, 8 epochs)."""
    from seglab.engine.trainer import train

    root = tmp_path_factory.mktemp("cam")
    import importlib.util

    spec = importlib.util.spec_from_file_location("c", Path(__file__).parents[1] / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    data = conftest.write_tiny_dataset(root / "data")
    train(data=str(data), model="unet", model_options={"base_channels": 8, "depth": 2}, epochs=8, crop_size=32,
          scale=[1.0, 1.0], color_jitter=0.0, workers=0, batch_size=8, lr=0.01, warmup_epochs=0.0, num_samples=0,
          out=str(root / "run"))
    return data, root / "run"


def test_cam_of_a_class_sits_on_its_object(trained: tuple[Path, Path]) -> None:
    from seglab.checkpoint import load_checkpoint

    data, run = trained
    model, info = load_checkpoint(run)
    inside, outside = [], []
    for stem in ("val_000", "val_001", "val_002", "val_003"):
        image = torch.from_numpy(np.array(Image.open(data / "images" / "val" / f"{stem}.png"))).permute(2, 0, 1)
        label = np.array(Image.open(data / "labels" / "val" / f"{stem}.png"))
        x = ((image.float() / 255 - torch.tensor(info.mean).view(3, 1, 1)) / torch.tensor(info.std).view(3, 1, 1))
        cams = grad_cam(model, x[None], default_layers(model, x[None], 3)[-1], [1, 2])
        assert cams.shape == (2, 32, 32) and float(cams.min()) >= 0 and float(cams.max()) <= 1
        for cam, cls in zip(cams.numpy(), (1, 2), strict=True):
            if (label == cls).any():
                a, b = mean_cam_inside(cam, label == cls)
                inside.append(a)
                outside.append(b)
    assert np.mean(inside) > 1.5 * np.mean(outside), (inside, outside)


def test_inspect_cli_writes_features_and_cams(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    data, run = trained
    image = data / "images" / "val" / "val_000.png"
    assert main(["inspect", str(run), str(image), "--layers", "down.1,up.1", "--out", str(tmp_path / "i")]) == 0
    names = sorted(p.name for p in (tmp_path / "i").iterdir())
    assert names == ["cam.png", "features_down_1.png", "features_up_1.png"]
    assert main(["inspect", str(run), str(image), "--layers", "dwn.1", "--out", str(tmp_path / "j")]) == 2
    assert "no layer 'dwn.1'" in capsys.readouterr().err


def test_strongest_channels_are_sorted() -> None:
    f = torch.zeros(4, 2, 2)
    f[2] += 3.0
    f[0] -= 1.0
    assert torch.equal(strongest_channels(f, 2), torch.stack([f[2], f[0]]))


def test_an_unknown_layer_is_a_model_error() -> None:
    import seglab

    model = seglab.build_model("unet", 2, base_channels=4, depth=2)
    with pytest.raises(ModelError, match="Did you mean 'down.1'"):
        grad_cam(model, torch.rand(1, 3, 16, 16), "dwn.1", [0])
