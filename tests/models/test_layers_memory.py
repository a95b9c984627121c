"""`seglab models NAME --input` estimates the forward pass's memory on the meta device and refuses huge inputs
before allocating anything (3x100000x100000 would take 120 GB for the input alone)."""

from __future__ import annotations

import pytest
import torch

from seglab.cli import main
from seglab.errors import ConfigError
from seglab.models import build_model
from seglab.models.layers import check_forward_memory, forward_memory

OPTIONS = {"base_channels": 8, "depth": 2}


def test_the_estimate_equals_the_real_forward_passes_largest_output() -> None:
    # Reference: a real forward pass with hooks on every leaf (not the meta run the estimate uses).
    model = build_model("unet", 2, **OPTIONS).eval()
    sizes = []
    for m in model.modules():
        if not list(m.children()):
            m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 48))
    need, where = forward_memory("unet", 2, OPTIONS, (3, 64, 48))
    assert need == 4 * (3 * 64 * 48 + 2 * max(sizes))
    assert "8x64x48" in where  # the first convolution's output: base_channels x H x W


def test_check_refuses_past_the_limit_and_passes_below() -> None:
    need, _ = forward_memory("unet", 2, OPTIONS, (3, 32, 32))
    check_forward_memory("unet", 2, OPTIONS, (3, 32, 32), limit=need)
    with pytest.raises(ConfigError, match=r"--input 3x32x32: one forward pass of unet needs at least .* GiB"):
        check_forward_memory("unet", 2, OPTIONS, (3, 32, 32), limit=need - 1)


@pytest.mark.parametrize("name", ["unet", "maskrcnn_resnet18_fpn"])
def test_a_huge_input_is_refused_before_any_allocation(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["models", name, "--input", "3x100000x100000"])
    out = " ".join((capsys.readouterr().err).split())
    assert rc == 2, out
    assert "--input 3x100000x100000" in out and "GiB" in out and "Pass a smaller input" in out
