"""Layer tables: the study guide's size formulas, receptive fields and FLOPs against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.cli import main
from seglab.models.layers import expected_size, layer_table, size_note


@pytest.mark.parametrize(("module", "size", "want"), [
    (nn.Conv2d(1, 1, 3, padding=1), (7, 9), (7, 9)),               # (7 + 2 - 2 - 1) / 1 + 1
    (nn.Conv2d(1, 1, 3, stride=2), (7, 8), (3, 3)),                # floor((8 - 2 - 1) / 2) + 1 = 3
    (nn.Conv2d(1, 1, 3, padding=2, dilation=2), (10, 10), (10, 10)),
    (nn.MaxPool2d(2), (7, 8), (3, 4)),
    (nn.MaxPool2d(3, 2, ceil_mode=True), (8, 8), (4, 4)),          # ceil((8 - 3) / 2) + 1
    (nn.ConvTranspose2d(1, 1, 2, stride=2), (5, 6), (10, 12)),     # (n - 1) 2 + 1 + 1
    (nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1), (5, 5), (10, 10)),
])
def test_size_formulas_by_hand_and_against_torch(module: nn.Module, size: tuple, want: tuple) -> None:
    assert expected_size(module, size) == want
    assert tuple(module(torch.zeros(1, 1, *size)).shape[2:]) == want


def test_receptive_field_and_flops_of_a_small_net() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ConvTranspose2d(4, 2, 2, stride=2))
    rows = layer_table(net, (3, 16, 16))
    assert [r.receptive_field for r in rows] == [3, 4, 8, 8]  # 1 + 2, + 1, + 2 x 2 (jump 2), transposed: no growth
    assert rows[0].flops == 2 * 3 * 4 * 9 * 16 * 16 and rows[2].flops == 2 * 4 * 4 * 9 * 8 * 8
    assert [r.shape for r in rows][-1] == (1, 2, 16, 16) and all(r.formula_ok for r in rows)
    assert rows[0].params == 3 * 4 * 9 + 4


def test_a_size_the_stride_does_not_divide() -> None:
    import seglab

    model = seglab.build_model("unet", 2, base_channels=4)  # stride 16
    assert size_note(model, 256, 256) is None
    note = size_note(model, 250, 256)
    assert "padded to 256x256" in note and "240, 256" in note
    assert size_note(model, 4, 4).endswith("near it: 16.")  # never a size of 0


def test_models_input_cli(capsys) -> None:
    assert main(["models", "unet", "--input", "3x64x64", "--model-opt", "base_channels=4"]) == 0
    out = capsys.readouterr().out
    assert "head" in out and "ConvTranspose2d" in out and "differs" not in out and "parameters" in out
    assert main(["models", "unet", "--input", "3x64"]) == 2
    assert "CxHxW" in capsys.readouterr().err
