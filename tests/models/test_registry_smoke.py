"""Every registered semantic model: tiny build, output shape, finite backward, listed parameter count."""

from __future__ import annotations

import pytest
import torch

from seglab.errors import ModelError
from seglab.models import build_model, count_parameters, list_models

SEMANTIC = [e.name for e in list_models() if e.task == "semantic"]


def test_contract_names_registered() -> None:
    required = {"unet", "fcn32s", "fcn16s", "fcn8s", "deeplabv3", "deeplabv3plus", "pspnet", "hrnet_w18",
                "hrnet_w18_small", "swin_unet", "lraspp_mobilenet_v3"}
    assert required <= set(SEMANTIC)


@pytest.mark.parametrize("name", SEMANTIC)
def test_build_forward_backward_count(name: str, tiny_semantic: dict[str, dict]) -> None:
    options = tiny_semantic.get(name, {})
    model = build_model(name, 3, **options).train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    logits = out["out"] if isinstance(out, dict) else out
    assert logits.shape == (2, 3, 64, 64)
    loss = sum(v.float().mean() for v in out.values()) if isinstance(out, dict) else logits.mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(name, 3, **options)
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 64))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 3, 64, 64)  # eval never returns the aux dict


@pytest.mark.parametrize("name", SEMANTIC)
def test_odd_size_single_channel(name: str, tiny_semantic: dict[str, dict]) -> None:
    model = build_model(name, 2, in_channels=1, **tiny_semantic.get(name, {})).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 1, 97, 131))
    assert y.shape == (1, 2, 97, 131)
    assert torch.isfinite(y).all()


def test_pspnet_aux_only_while_training(tiny_semantic: dict[str, dict]) -> None:
    model = build_model("pspnet", 2, **tiny_semantic["pspnet"]).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert set(out) == {"out", "aux"} and out["aux"].shape == (2, 2, 64, 64)
    no_aux = build_model("pspnet", 2, aux=False, **tiny_semantic["pspnet"]).train()
    assert isinstance(no_aux(torch.randn(2, 3, 64, 64)), torch.Tensor)


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(ModelError, match=r"Did you mean 'deeplabv3plus'\?"):
        build_model("deeplabv3pluss", 2)


def test_unknown_option_lists_accepted() -> None:
    with pytest.raises(ModelError, match="no option.*widht.*Accepted options:.*base_channels"):
        build_model("unet", 2, widht=8)


def test_bad_choice_names_option_and_values() -> None:
    with pytest.raises(ModelError, match=r"upsample='cubic'.*transpose, bilinear, bilinear_conv"):
        build_model("unet", 2, upsample="cubic")
