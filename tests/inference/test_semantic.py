"""Whole-image prediction and evaluation checked against direct model calls and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seglab.errors import ConfigError, DataError
from seglab.inference import evaluate, predict


def test_input_types_agree_and_channels_adapt(unet) -> None:
    model = unet
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    from_np = predict(model, arr)
    from_pil = predict(model, Image.fromarray(arr))
    from_tensor = predict(model, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    assert torch.equal(from_np, from_pil) and torch.equal(from_np, from_tensor)
    rgba = np.concatenate([arr, np.full((24, 20, 1), 255, np.uint8)], axis=-1)
    assert torch.equal(predict(model, rgba), from_np)
    gray = arr[..., 0]
    as_rgb = np.repeat(gray[..., None], 3, axis=-1)
    assert torch.equal(predict(model, gray), predict(model, as_rgb))
    with pytest.raises(DataError, match="2 channels"):
        predict(model, arr[..., :2])


def test_mean_std_normalize_like_the_reference(unet, direct_probs) -> None:
    model = unet
    x = torch.rand(3, 16, 16)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    ref = direct_probs(model, (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))
    _, probs = predict(model, x, mean=mean, std=std, return_probs=True)
    torch.testing.assert_close(probs, ref)


@pytest.mark.parametrize("kwargs", [{"tile": 0}, {"tile": 8, "overlap": 1.0}, {"blend": "cubic"},
                                    {"batch_size": 0}, {"mean": [0.1, 0.2]}, {"std": [0.0]}])
def test_bad_arguments_raise_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        predict(nn.Conv2d(3, 2, 1), torch.rand(3, 8, 8), **kwargs)


def test_single_channel_output_is_a_sigmoid_and_train_mode_is_restored() -> None:
    model = nn.Sequential(nn.Conv2d(3, 1, 1), nn.BatchNorm2d(1))
    model.train()
    x = torch.rand(3, 6, 6)
    _, probs = predict(model, x, return_probs=True)
    assert model.training
    model.eval()
    fg = torch.sigmoid(model(x[None]))[0, 0].detach()
    torch.testing.assert_close(probs[1], fg)
    torch.testing.assert_close(probs.sum(0), torch.ones(6, 6))


def test_evaluate_agrees_with_torchmetrics(unet) -> None:
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    model = unet
    g = torch.Generator().manual_seed(4)
    data = []
    for h, w in ((20, 24), (17, 31)):
        mask = torch.randint(0, 3, (h, w), generator=g)
        mask[:2] = 255
        data.append((torch.rand(3, h, w, generator=g), mask))
    out = evaluate(model, data, num_classes=3, ignore_index=255)
    preds = torch.cat([predict(model, x).flatten() for x, _ in data])
    target = torch.cat([m.flatten() for _, m in data])
    miou = MulticlassJaccardIndex(3, average="macro", ignore_index=255)(preds, target)
    acc = MulticlassAccuracy(3, average="micro", ignore_index=255)(preds, target)
    assert float(out["mean_iou"]) == pytest.approx(float(miou), abs=1e-6)
    assert float(out["pixel_accuracy"]) == pytest.approx(float(acc), abs=1e-6)
