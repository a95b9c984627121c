"""Test-time augmentation: flips and scales averaged like the hand-made reference, and its parser."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.errors import ConfigError
from seglab.inference import TTA, parse_tta, predict


def test_tta_flip_averages_flipped_probabilities(unet, direct_probs) -> None:
    model = unet
    x = torch.rand(3, 24, 32)
    ref = 0.5 * (direct_probs(model, x) + direct_probs(model, x.flip(-1)).flip(-1))
    _, probs = predict(model, x, tta="flip", return_probs=True)
    torch.testing.assert_close(probs, ref)


def test_tta_flip_is_identity_for_a_flip_equivariant_model() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(conv.weight + conv.weight.flip(-1))  # mirror-symmetric kernels
    x = torch.rand(3, 20, 28)
    _, plain = predict(conv, x, return_probs=True)
    _, flipped = predict(conv, x, tta="flip", return_probs=True)
    torch.testing.assert_close(flipped, plain)
    _, tiled = predict(conv, x, tta="hflip,vflip", tile=12, return_probs=True)
    assert tiled.shape == plain.shape


def test_tta_scales_on_a_per_pixel_model_is_close() -> None:
    torch.manual_seed(3)
    model = nn.Conv2d(3, 2, 1)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=(32, 32), mode="bilinear")[0]
    _, plain = predict(model, x, return_probs=True)
    _, scaled = predict(model, x, tta="flip,scales=0.75,1,1.25", return_probs=True)
    assert (plain - scaled).abs().max() < 0.05  # smooth input: resampling changes little


def test_parse_tta() -> None:
    assert parse_tta("flip") == TTA(hflip=True)
    assert parse_tta("flip,scales=0.75,1,1.25") == TTA(hflip=True, scales=(0.75, 1.0, 1.25))
    assert parse_tta("vflip") == TTA(vflip=True)
    assert parse_tta("none") is None and parse_tta(None) is None
    assert len(TTA(hflip=True, vflip=True, scales=(0.5, 1.0)).variants()) == 6
    for bad in ("rotate", "flip,scales=0", "scales=a"):
        with pytest.raises(ConfigError, match="--tta"):
            parse_tta(bad)
