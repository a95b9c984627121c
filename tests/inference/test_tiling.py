"""Tiled prediction checked against whole-image passes and hand-computed blends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seglab.inference import predict


class TileMean(nn.Module):
    """Logits [input mean, 0] everywhere: each tile predicts one constant, so blends can be hand-checked."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:])
        return torch.cat([m, torch.zeros_like(m)], dim=1)


def test_covering_tile_equals_whole_image_exactly(unet, direct_probs) -> None:
    model = unet
    x = torch.rand(3, 37, 29)
    ref = direct_probs(model, x)
    labels, probs = predict(model, x, return_probs=True)
    assert labels.dtype == torch.int64 and labels.shape == (37, 29)
    assert torch.equal(labels, ref.argmax(0))
    torch.testing.assert_close(probs, ref)
    for tile in (37, 64, (40, 30)):
        t_labels, t_probs = predict(model, x, tile=tile, return_probs=True)
        assert torch.equal(t_labels, labels) and torch.equal(t_probs, probs)


@pytest.mark.parametrize("blend", ["gaussian", "linear", "none"])
def test_tiled_per_pixel_model_matches_whole_image(blend: str, monkeypatch, direct_probs) -> None:
    # A 1x1 conv sees one pixel, so any tiling must give the same probabilities as one pass:
    # this checks the strip buffer, the border shift and the weight normalization.
    monkeypatch.setattr("seglab.inference.tiling.FINALIZE_ROWS", 5)  # finalize in several row chunks
    torch.manual_seed(1)
    model = nn.Conv2d(3, 4, 1)
    x = torch.rand(3, 53, 41)
    ref = direct_probs(model, x)
    labels, probs = predict(model, x, tile=(16, 12), overlap=0.4, blend=blend, batch_size=3,
                            return_probs=True)
    torch.testing.assert_close(probs, ref, rtol=0, atol=1e-6)
    assert torch.equal(labels, ref.argmax(0))


def _blend_reference(width: int, tile: int, starts: list[int], values: list[float], weights: np.ndarray):
    # p(class 0) of a tile with mean m is sigmoid(m); blended = sum w * p / sum w over covering tiles.
    num, den = np.zeros(width), np.zeros(width)
    for s, v in zip(starts, values, strict=True):
        p0 = 1.0 / (1.0 + np.exp(-v))
        num[s:s + tile] += weights * p0
        den[s:s + tile] += weights
    return num / den


@pytest.mark.parametrize("blend", ["none", "linear"])
def test_overlapping_tiles_blend_by_hand(blend: str) -> None:
    # One row, width 8, tile 4 with overlap 0.5 -> tiles start at 0, 2, 4.
    row = torch.tensor([0.0, 0.1, 0.9, 0.3, 0.5, 1.0, 0.2, 0.7])
    x = row.view(1, 1, 8)
    starts = [0, 2, 4]
    values = [float(row[s:s + 4].mean()) for s in starts]
    # linear window for a 4-pixel tile: 1 - |i + 0.5 - 2| / 2 -> 0.25, 0.75, 0.75, 0.25
    weights = np.ones(4) if blend == "none" else np.array([0.25, 0.75, 0.75, 0.25])
    expected = _blend_reference(8, 4, starts, values, weights)
    _, probs = predict(TileMean(), x, tile=(1, 4), overlap=0.5, blend=blend, return_probs=True)
    np.testing.assert_allclose(probs[0, 0].numpy(), expected, rtol=0, atol=1e-6)


def test_tiled_unet_is_close_to_whole_image(unet) -> None:
    model = unet
    x = torch.rand(3, 70, 90)
    whole = predict(model, x)
    tiled = predict(model, x, tile=48, overlap=0.5)
    assert tiled.shape == whole.shape
    assert (tiled == whole).float().mean() > 0.9  # context differs only near tile borders
