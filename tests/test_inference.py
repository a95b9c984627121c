"""Whole-image, tiled and TTA prediction checked against direct model calls and hand-computed blends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seglab.errors import ConfigError, DataError
from seglab.inference import TTA, evaluate, parse_tta, predict


def _unet(k: int = 3, in_channels: int = 3) -> nn.Module:
    from seglab.models import build_model

    torch.manual_seed(0)
    return build_model("unet", k, in_channels=in_channels, base_channels=8, depth=2).eval()


def _direct_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference: one plain forward pass and a softmax, no seglab code involved."""
    with torch.no_grad():
        out = model(x[None])
    out = out["out"] if isinstance(out, dict) else out
    return out.softmax(1)[0]


class TileMean(nn.Module):
    """Logits [input mean, 0] everywhere: each tile predicts one constant, so blends can be hand-checked."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:])
        return torch.cat([m, torch.zeros_like(m)], dim=1)


def test_covering_tile_equals_whole_image_exactly() -> None:
    model = _unet()
    x = torch.rand(3, 37, 29)
    ref = _direct_probs(model, x)
    labels, probs = predict(model, x, return_probs=True)
    assert labels.dtype == torch.int64 and labels.shape == (37, 29)
    assert torch.equal(labels, ref.argmax(0))
    torch.testing.assert_close(probs, ref)
    for tile in (37, 64, (40, 30)):
        t_labels, t_probs = predict(model, x, tile=tile, return_probs=True)
        assert torch.equal(t_labels, labels) and torch.equal(t_probs, probs)


@pytest.mark.parametrize("blend", ["gaussian", "linear", "none"])
def test_tiled_per_pixel_model_matches_whole_image(blend: str, monkeypatch) -> None:
    # A 1x1 conv sees one pixel, so any tiling must give the same probabilities as one pass:
    # this checks the strip buffer, the border shift and the weight normalization.
    monkeypatch.setattr("seglab.inference.FINALIZE_ROWS", 5)  # finalize in several row chunks
    torch.manual_seed(1)
    model = nn.Conv2d(3, 4, 1)
    x = torch.rand(3, 53, 41)
    ref = _direct_probs(model, x)
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


def test_tiled_unet_is_close_to_whole_image() -> None:
    model = _unet()
    x = torch.rand(3, 70, 90)
    whole = predict(model, x)
    tiled = predict(model, x, tile=48, overlap=0.5)
    assert tiled.shape == whole.shape
    assert (tiled == whole).float().mean() > 0.9  # context differs only near tile borders


def test_input_types_agree_and_channels_adapt() -> None:
    model = _unet()
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


def test_mean_std_normalize_like_the_reference() -> None:
    model = _unet()
    x = torch.rand(3, 16, 16)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    ref = _direct_probs(model, (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))
    _, probs = predict(model, x, mean=mean, std=std, return_probs=True)
    torch.testing.assert_close(probs, ref)


def test_tta_flip_averages_flipped_probabilities() -> None:
    model = _unet()
    x = torch.rand(3, 24, 32)
    ref = 0.5 * (_direct_probs(model, x) + _direct_probs(model, x.flip(-1)).flip(-1))
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


def test_evaluate_agrees_with_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    model = _unet()
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


def test_predict_instances_batches_only_same_size_images() -> None:
    """A batch is padded to its largest image; mixing sizes would change detections, so sizes never mix."""
    from seglab.inference import predict_instances
    from seglab.models import build_model

    torch.manual_seed(0)
    model = build_model("maskrcnn_resnet18_fpn", 3, min_size=64, max_size=96, fpn_channels=16,
                        box_batch_size_per_image=16, mask_head_layers=1).eval()
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=g), torch.rand(3, 48, 72, generator=g),
              torch.rand(3, 64, 64, generator=g)]
    batched = list(predict_instances(model, enumerate(images), score_threshold=0.0, batch_size=4))
    assert [k for k, _, _ in batched] == [0, 1, 2]
    for key, image, inst in batched:
        alone = next(predict_instances(model, [(key, image)], score_threshold=0.0, batch_size=1))[2]
        assert len(inst["scores"]) > 0
        for name in ("boxes", "labels", "scores", "masks"):
            assert torch.equal(inst[name], alone[name]), (key, name)
        assert torch.all(inst["scores"][:-1] >= inst["scores"][1:])  # best first
