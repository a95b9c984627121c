"""Boundary IoU / F-score against a hand-checked square and a brute-force per-pixel reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import seglab.metrics.boundary as boundary
from seglab.errors import ConfigError, DataError
from seglab.metrics import BoundaryMetrics, boundary_f1, boundary_iou

IGN = 255


def _near(mask: np.ndarray, y: int, x: int, radius: int, want: bool) -> bool:
    """Whether a pixel with value ``want`` lies within chessboard distance ``radius`` (inside the frame)."""
    h, w = mask.shape
    window = mask[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)]
    return bool((window == want).any())


def _band(mask: np.ndarray, radius: int) -> np.ndarray:
    """Mask pixels with a non-mask pixel within ``radius``: the definition, pixel by pixel."""
    out = np.zeros_like(mask)
    for y, x in zip(*np.nonzero(mask), strict=True):
        out[y, x] = _near(mask, y, x, radius, False)
    return out


def _reference(pred: np.ndarray, target: np.ndarray, num_classes: int, band: int) -> tuple[list, list]:
    valid = target != IGN
    ious, f1s = [], []
    for c in range(num_classes):
        counts = np.zeros(6)
        for t_img, p_img, v in zip(target, pred, valid, strict=True):
            tb, pb = _band(t_img == c, band), _band(p_img == c, band)
            t_edge, p_edge = _band(t_img == c, 1), _band(p_img == c, 1)
            te, pe = t_edge & v, p_edge & v
            counts[0] += (tb & pb & v).sum()
            counts[1] += ((tb | pb) & v).sum()
            counts[2] += sum(_near(t_edge, y, x, band, True) for y, x in zip(*np.nonzero(pe), strict=True))
            counts[3] += pe.sum()
            counts[4] += sum(_near(p_edge, y, x, band, True) for y, x in zip(*np.nonzero(te), strict=True))
            counts[5] += te.sum()
        ious.append(counts[0] / counts[1] if counts[1] else math.nan)
        if counts[3] + counts[5] == 0:
            f1s.append(math.nan)
            continue
        p = counts[2] / counts[3] if counts[3] else 0.0
        r = counts[4] / counts[5] if counts[5] else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return ious, f1s


def _square(left: int) -> torch.Tensor:
    image = torch.zeros(1, 6, 6, dtype=torch.long)
    image[0, 1:5, left:left + 4] = 1
    return image


def test_hand_checked_square() -> None:
    # Truth: 4x4 square rows 1-4, cols 1-4: its 1-pixel inner band is 16 - 4 = 12 pixels.
    # Prediction: the square moved to cols 2-5, touching the right frame (not a contour), so its band is
    # rows 1 and 4 (8 pixels) + col 2 of rows 2-3 (2 pixels) = 10. Shared: rows 1 and 4, cols 2-4 = 6.
    # Boundary IoU = 6 / (12 + 10 - 6) = 3/8.
    iou = boundary_iou(_square(2), _square(1), 2, band=1)
    assert iou[1].item() == pytest.approx(3 / 8)
    assert iou.dtype == torch.float64
    # Every predicted contour pixel is within 1 pixel of the true contour and vice versa: F = 1.
    assert boundary_f1(_square(2), _square(1), 2, band=1)[1].item() == pytest.approx(1.0)
    assert boundary_iou(_square(1), _square(1), 2, band=2).tolist() == [1.0, 1.0]


@pytest.mark.parametrize(("seed", "band"), [(0, 1), (1, 2), (2, 3)])
def test_random_blobs_against_brute_force(seed: int, band: int) -> None:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 3, (2, 1, 4, 5), generator=g).float()
    target = torch.nn.functional.interpolate(coarse, size=(16, 20), mode="nearest")[:, 0].long()
    noise = torch.rand(2, 16, 20, generator=g) < 0.1
    pred = torch.where(noise, torch.randint(0, 3, (2, 16, 20), generator=g), target.roll(1, dims=2))
    target[0, :3, :4] = IGN
    ref_iou, ref_f1 = _reference(pred.numpy(), target.numpy(), 3, band)
    assert 0 < min(ref_iou) < max(ref_iou) < 1 and 0 < min(ref_f1) < 1  # a case with something to get wrong
    np.testing.assert_allclose(boundary_iou(pred, target, 3, band=band).numpy(), ref_iou, atol=1e-12)
    np.testing.assert_allclose(boundary_f1(pred, target, 3, band=band).numpy(), ref_f1, atol=1e-12)


def test_chunked_classes_and_accumulation_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(5)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    logits = torch.randn(2, 4, 8, 8, generator=g)
    whole = boundary.boundary_stats(logits, target, 4, band=2)
    monkeypatch.setattr(boundary, "_CHUNK", 1)  # one class at a time
    assert torch.equal(boundary.boundary_stats(logits, target, 4, band=2), whole)
    acc = BoundaryMetrics(4, band=2)
    acc.update(logits[:1], target[:1])
    acc.update(logits[1:], target[1:])
    r = acc.compute()
    assert r["per_class_boundary_iou"] == pytest.approx(boundary.iou_from_stats(whole).tolist())
    assert r["boundary_f1"] == pytest.approx(float(torch.nanmean(boundary.f1_from_stats(whole))))


def test_absent_class_and_one_sided_contours() -> None:
    target = _square(1)
    empty = torch.zeros_like(target)
    f1 = boundary_f1(empty, target, 3, band=1)
    iou = boundary_iou(empty, target, 3, band=1)
    assert f1[1].item() == 0.0 and iou[1].item() == 0.0  # true contour, none predicted
    assert math.isnan(f1[2].item()) and math.isnan(iou[2].item())  # class 2 nowhere
    all_ignored = torch.full_like(target, IGN)
    assert torch.isnan(boundary_iou(target, all_ignored, 3)).all()


def test_errors() -> None:
    with pytest.raises(ConfigError, match="band must be"):
        boundary_iou(_square(1), _square(1), 2, band=0)
    with pytest.raises(DataError, match=r"target holds values 9"):
        boundary_f1(_square(1), torch.full((1, 6, 6), 9), 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, 3, (2, 12, 12), generator=g)
    logits = torch.randn(2, 3, 12, 12, generator=g)
    cpu = boundary.boundary_stats(logits, target, 3, band=2)
    gpu = boundary.boundary_stats(logits.cuda(), target.cuda(), 3, band=2)
    assert gpu.device.type == "cuda" and torch.equal(cpu, gpu.cpu())
