"""Losses against hand-computed values, torch.nn.functional and torchvision's sigmoid_focal_loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from seglab.errors import ConfigError, SeglabError
from seglab.losses import (
    BINARY,
    MULTICLASS,
    binary_cross_entropy,
    binary_dice_loss,
    binary_focal_loss,
    build_loss,
    cross_entropy,
    dice_loss,
    focal_loss,
    lovasz_softmax,
    tversky_loss,
)

IGN = 255
LN2 = math.log(2)


def logits_of(probs: list[list[float]]) -> torch.Tensor:
    """Per-pixel class probabilities [[p_c for c] for pixel] -> logits (1, C, 1, P) with that softmax."""
    return torch.tensor(probs, dtype=torch.float32).log().T.reshape(1, len(probs[0]), 1, len(probs))


def target_of(values: list[int]) -> torch.Tensor:
    return torch.tensor(values).reshape(1, 1, len(values))


def test_ce_hand_computed_and_ignore() -> None:
    # pixel 0: p = (1/2, 1/2), truth 0 -> ln 2; pixel 1: p = (3/4, 1/4), truth 1 -> ln 4;
    # pixel 2 is ignored although its logits are very wrong. Mean = (ln2 + 2 ln2) / 2 = 1.5 ln2.
    logits = logits_of([[0.5, 0.5], [0.75, 0.25], [0.999, 0.001]])
    loss = build_loss("ce", 2)(logits, target_of([0, 1, IGN]))
    assert loss.item() == pytest.approx(1.5 * LN2, rel=1e-6)


def test_wce_hand_computed() -> None:
    # weights (1, 3): (1 * ln2 + 3 * ln4) / (1 + 3) = 7/4 ln 2
    logits = logits_of([[0.5, 0.5], [0.75, 0.25], [0.999, 0.001]])
    loss = build_loss("wce", 2, class_weights=[1.0, 3.0])(logits, target_of([0, 1, IGN]))
    assert loss.item() == pytest.approx(1.75 * LN2, rel=1e-6)


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0, 0.7]])
def test_ce_matches_torch_functional(weights: list[float] | None) -> None:
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = IGN
    spec = "ce" if weights is None else "wce"
    ours = build_loss(spec, 4, class_weights=weights)(logits, target)
    w = None if weights is None else torch.tensor(weights)
    ref = F.cross_entropy(logits, target, weight=w, ignore_index=IGN)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


def test_dice_hand_computed_ignores_pixels_in_sums() -> None:
    # Two valid pixels with p = (1/2, 1/2), both truth 0; a third ignored pixel with confident class 1.
    # class 0: tp = 1, sum p = 1, sum y = 2 -> (2*1 + 1) / (1 + 2 + 1) = 3/4
    # class 1: tp = 0, sum p = 1, sum y = 0 -> (0 + 1) / (1 + 0 + 1) = 1/2
    logits = logits_of([[0.5, 0.5], [0.5, 0.5], [0.001, 0.999]])
    target = target_of([0, 0, IGN])
    assert build_loss("dice", 2)(logits, target).item() == pytest.approx(1 - (3 / 4 + 1 / 2) / 2, rel=1e-6)
    assert build_loss("dice_fg", 2)(logits, target).item() == pytest.approx(1 - 1 / 2, rel=1e-6)
    # smooth = 0: class 0 -> 2/3, class 1 -> 0
    no_smooth = build_loss("dice", 2, smooth=0.0)(logits, target)
    assert no_smooth.item() == pytest.approx(1 - (2 / 3) / 2, rel=1e-6)


def test_tversky_hand_computed_and_equals_dice_at_half() -> None:
    # class 0: tp = 1, fp = 0, fn = 1 -> 1 / (1 + 0.7) ; class 1: tp = 0, fp = 1 -> 0 / 0.3 = 0 (smooth 0)
    logits = logits_of([[0.5, 0.5], [0.5, 0.5], [0.001, 0.999]])
    target = target_of([0, 0, IGN])
    loss = build_loss("tversky", 2, smooth=0.0)(logits, target)
    assert loss.item() == pytest.approx(1 - (1 / 1.7) / 2, rel=1e-6)
    x, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    half = build_loss("tversky", 3, smooth=0.0, tversky_alpha=0.5, tversky_beta=0.5)(x, t)
    assert half.item() == pytest.approx(build_loss("dice", 3, smooth=0.0)(x, t).item(), rel=1e-5)


def test_focal_hand_computed() -> None:
    # p_t = 3/4 -> -alpha (1 - 3/4)^2 ln(3/4) = 0.25 / 16 * ln(4/3)
    loss = build_loss("focal", 2)(logits_of([[0.75, 0.25], [0.1, 0.9]]), target_of([0, IGN]))
    assert loss.item() == pytest.approx(0.25 / 16 * math.log(4 / 3), rel=1e-6)
    # per-class alpha: truth 1 with p_t = 1/4 -> -0.9 (3/4)^2 ln(1/4)
    per_class = build_loss("focal", 2, focal_alpha=[0.1, 0.9])(logits_of([[0.75, 0.25]]), target_of([1]))
    assert per_class.item() == pytest.approx(0.9 * 9 / 16 * math.log(4), rel=1e-6)


def test_focal_gamma0_alpha1_is_cross_entropy() -> None:
    x, t = torch.randn(2, 5, 4, 3), torch.randint(0, 5, (2, 4, 3))
    t[1, 0] = IGN
    loss = build_loss("focal", 5, focal_alpha=1.0, focal_gamma=0.0)(x, t)
    assert loss.item() == pytest.approx(F.cross_entropy(x, t, ignore_index=IGN).item(), rel=1e-6)


def test_lovasz_hand_computed() -> None:
    # class-0 probabilities 0.9, 0.6, 0.3; truth 0, 0, 1.
    # class 0: errors (0.1, 0.4, 0.3); order pix1 (fg), pix2 (bg), pix0 (fg); Jaccard loss after each is
    #   wrong: 1 - 1/2, 1 - 1/3, 1 - 0/3 -> steps 1/2, 1/6, 1/3 -> 0.4/2 + 0.3/6 + 0.1/3
    # class 1: errors (0.1, 0.4, 0.3); order pix1 (bg), pix2 (fg), pix0 (bg); Jaccard loss 1/2, 1, 1
    #   -> steps 1/2, 1/2, 0 -> 0.4/2 + 0.3/2
    logits = logits_of([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    loss = build_loss("lovasz", 2)(logits, target_of([0, 0, 1, IGN]))
    expected = ((0.2 + 0.05 + 0.1 / 3) + (0.2 + 0.15)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_bce_and_binary_dice() -> None:
    x = torch.randn(2, 1, 4, 4)
    t = torch.randint(0, 2, (2, 4, 4))
    t[0, 0] = IGN
    valid = t != IGN
    ref = F.binary_cross_entropy_with_logits(x[:, 0][valid], t[valid].float())
    assert build_loss("bce", 1)(x, t).item() == pytest.approx(ref.item(), rel=1e-6)
    # p = 1/2 everywhere, truth (1, 0): tp = 1/2, sum p = 1, sum y = 1 -> (1 + 1) / (2 + 1) = 2/3
    zeros = torch.zeros(1, 1, 1, 3)
    binary_dice = build_loss("binary_dice", 1)(zeros, target_of([1, 0, IGN]))
    assert binary_dice.item() == pytest.approx(1 / 3, rel=1e-6)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.6, 1.0), (-1.0, 2.0)])
def test_binary_focal_matches_torchvision(alpha: float, gamma: float) -> None:
    x = torch.randn(2, 1, 5, 5) * 3
    t = torch.randint(0, 2, (2, 5, 5))
    t[1, :2] = IGN
    valid = t != IGN
    ref = sigmoid_focal_loss(x[:, 0][valid], t[valid].float(), alpha=alpha, gamma=gamma, reduction="mean")
    ours = build_loss("binary_focal", 1, focal_alpha=alpha, focal_gamma=gamma)(x, t)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("spec", ["ce+dice", "0.5*ce+1.0*dice", "2*focal + 0.3*lovasz + tversky"])
def test_combination_is_weighted_sum(spec: str) -> None:
    x, t = torch.randn(2, 3, 6, 6), torch.randint(0, 3, (2, 6, 6))
    t[0, 1] = IGN
    loss = build_loss(spec, 3)
    total = loss(x, t)
    expected = 0.0
    for term in spec.split("+"):
        weight, _, name = term.strip().rpartition("*")
        part = build_loss(name, 3)(x, t).item()
        expected += (float(weight) if weight else 1.0) * part
        assert loss.last_components[f"loss_{name}"].item() == pytest.approx(
            (float(weight) if weight else 1.0) * part, rel=1e-6)
        assert not loss.last_components[f"loss_{name}"].requires_grad
    assert total.item() == pytest.approx(expected, rel=1e-6)


def _all_specs() -> list[tuple[str, int]]:
    return [(name, 3) for name in MULTICLASS] + [(name, 1) for name in BINARY]


@pytest.mark.parametrize(("spec", "channels"), _all_specs())
def test_all_ignore_batch_gives_finite_zero_grads(spec: str, channels: int) -> None:
    x = torch.randn(2, channels, 4, 4, requires_grad=True)
    t = torch.full((2, 4, 4), IGN)
    loss = build_loss(spec, 3, class_weights=[1.0, 2.0, 3.0])(x, t)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize(("spec", "channels"), _all_specs())
def test_ignored_pixels_get_no_gradient(spec: str, channels: int) -> None:
    x = torch.randn(1, channels, 4, 4, requires_grad=True)
    t = torch.randint(0, 2, (1, 4, 4))
    t[0, 0, :] = IGN
    build_loss(spec, 3, class_weights=[1.0, 2.0, 3.0])(x, t).backward()
    assert torch.all(x.grad[0, :, 0, :] == 0)
    assert torch.any(x.grad[0, :, 1:, :] != 0)


@pytest.mark.parametrize(("spec", "channels"), _all_specs())
def test_bf16_autocast_no_nan(spec: str, channels: int) -> None:
    conv = torch.nn.Conv2d(2, channels, 1)
    with torch.no_grad():
        conv.weight.mul_(1e3)  # saturated logits: a half-precision softmax/log would give inf/NaN
    image = torch.randn(2, 2, 8, 8)
    t = torch.randint(0, 2, (2, 8, 8))
    t[0, 0] = IGN
    loss_fn = build_loss(spec, 3, class_weights=[1.0, 2.0, 3.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(image)
        assert logits.dtype == torch.bfloat16
        loss = loss_fn(logits, t)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert torch.isfinite(conv.weight.grad).all()


def test_target_out_of_range_names_values() -> None:
    t = torch.zeros(1, 3, 3, dtype=torch.long)
    t[0, 0, 0], t[0, 1, 1], t[0, 2, 2] = 7, -1, IGN
    with pytest.raises(SeglabError, match=r"-1, 7 outside \[0, 3\)"):
        build_loss("ce", 3)(torch.randn(1, 3, 3, 3), t)
    with pytest.raises(SeglabError, match=r"values 2 outside \[0, 2\)"):
        build_loss("bce", 1)(torch.randn(1, 1, 2, 2), torch.tensor([[[0, 1], [2, 1]]]))


def test_shape_and_dtype_errors() -> None:
    with pytest.raises(SeglabError, match=r"logits \(1, 3, 4, 4\) and target \(1, 5, 5\)"):
        build_loss("ce", 3)(torch.randn(1, 3, 4, 4), torch.zeros(1, 5, 5, dtype=torch.long))
    with pytest.raises(SeglabError, match=r"logits \(1, 2, 4, 4\)"):
        build_loss("dice", 3)(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(SeglabError, match="integer class indices"):
        build_loss("ce", 3)(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4))


def test_spec_errors() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'dise'.*did you mean 'dice'.*valid names: ce, wce"):
        build_loss("ce+dise", 3)
    with pytest.raises(ConfigError, match="needs class_weights"):
        build_loss("wce", 3)
    with pytest.raises(ConfigError, match="cannot be mixed"):
        build_loss("ce+bce", 3)
    with pytest.raises(ConfigError, match="'x' in term 'x\\*ce' is not a number"):
        build_loss("x*ce", 3)
    with pytest.raises(ConfigError, match="appears twice"):
        build_loss("ce+0.5*ce", 3)
    with pytest.raises(ConfigError, match="expected 3 values"):
        build_loss("wce", 3, class_weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="must be a finite number >= 0"):
        build_loss("-1*ce", 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_float32(dtype: torch.dtype) -> None:
    x = (torch.randn(2, 3, 8, 8) * 20).cuda()
    t = torch.randint(0, 3, (2, 8, 8)).cuda()
    t[0, 0] = IGN
    spec = "ce+dice+focal+lovasz+tversky"
    reference = build_loss(spec, 3)(x, t)
    with torch.autocast("cuda", dtype=dtype):
        loss = build_loss(spec, 3)(x.to(dtype), t)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)


def test_terms_are_pure_functions() -> None:
    # Each term works alone on tensors and a validity mask, with the numbers SegLoss gives.
    x, t = torch.randn(2, 3, 5, 4), torch.randint(0, 3, (2, 5, 4))
    t[0, 0] = IGN
    valid = t != IGN
    ref = F.cross_entropy(x, t, ignore_index=IGN)
    assert cross_entropy(x, t, valid).item() == pytest.approx(ref.item(), rel=1e-6)
    assert dice_loss(x, t, valid, smooth=0.5).item() == pytest.approx(
        build_loss("dice", 3, smooth=0.5)(x, t).item(), rel=1e-6)
    assert dice_loss(x, t, valid, exclude_background=True).item() == pytest.approx(
        build_loss("dice_fg", 3)(x, t).item(), rel=1e-6)
    assert tversky_loss(x, t, valid, alpha=0.5, beta=0.5, smooth=0.0).item() == pytest.approx(
        dice_loss(x, t, valid, smooth=0.0).item(), rel=1e-5)
    assert focal_loss(x, t, valid, alpha=1.0, gamma=0.0).item() == pytest.approx(ref.item(), rel=1e-6)
    assert lovasz_softmax(x, t, valid).item() == pytest.approx(build_loss("lovasz", 3)(x, t).item(), rel=1e-6)
    xb, tb = x[:, :1], t.clamp(max=1)
    assert binary_focal_loss(xb, tb, valid, alpha=-1.0, gamma=0.0).item() == pytest.approx(
        binary_cross_entropy(xb, tb, valid).item(), rel=1e-6)
    assert binary_dice_loss(xb, tb, valid).item() == pytest.approx(
        build_loss("binary_dice", 1)(xb, torch.where(valid, tb, IGN)).item(), rel=1e-6)
