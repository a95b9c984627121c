"""The shared model base: stride padding, resize, crop back to the input size."""

from __future__ import annotations

import torch

from seglab.models.base import SegmentationModel, pad_to_multiple, resize


def test_pad_to_multiple_pads_bottom_right_with_zeros() -> None:
    x = torch.ones(1, 2, 5, 7)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 2, 8, 8)
    assert torch.equal(y[..., :5, :7], x) and y[..., 5:, :].abs().sum() == 0 and y[..., :, 7:].abs().sum() == 0
    assert pad_to_multiple(x, 1) is x


def test_resize_is_a_noop_at_the_same_size() -> None:
    x = torch.randn(1, 3, 4, 6)
    assert resize(x, (4, 6)) is x
    assert resize(x, torch.Size([8, 12])).shape == (1, 3, 8, 12)


class _Echo(SegmentationModel):
    stride = 8

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0  # padded to the stride before the network
        return {"out": x, "aux": x * 2}


def test_forward_pads_to_stride_and_crops_back() -> None:
    x = torch.randn(2, 1, 13, 21)
    out = _Echo()(x)
    assert torch.equal(out["out"], x) and torch.equal(out["aux"], 2 * x)
