"""Feature capture by layer name and the saved grid image."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from seglab.errors import ModelError
from seglab.models import build_model
from seglab.models.features import capture_features, save_feature_grid


def test_capture_equals_direct_submodule_call() -> None:
    model = build_model("unet", 2, base_channels=4, depth=2).train()
    x = torch.randn(1, 3, 32, 32)
    feats = capture_features(model, x, "stem")
    assert model.training  # mode restored after the eval-mode capture
    model.eval()
    with torch.no_grad():
        expected = model.stem(x)
    torch.testing.assert_close(feats, expected)
    assert feats.shape == (1, 4, 32, 32)


def test_unknown_layer_lists_valid_names() -> None:
    model = build_model("unet", 2, base_channels=4, depth=2)
    with pytest.raises(ModelError, match=r"no layer 'stme'.*Did you mean 'stem'.*Some valid names: stem"):
        capture_features(model, torch.randn(1, 3, 16, 16), "stme")


def test_save_grid_writes_png(tmp_path) -> None:
    path = tmp_path / "feats.png"
    save_feature_grid(torch.randn(1, 9, 8, 8), path, max_channels=4)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 50
    assert [p.name for p in tmp_path.iterdir()] == ["feats.png"]  # no temp file left behind


def test_save_grid_rejects_batches() -> None:
    with pytest.raises(ModelError, match="pass features\\[0\\]"):
        save_feature_grid(torch.randn(2, 3, 8, 8), "unused.png")
