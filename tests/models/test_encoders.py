"""Encoders: declared channels/strides match real outputs; local weights load strictly; nothing downloads."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from seglab.errors import ModelError
from seglab.models import build_model
from seglab.models.encoders import build_encoder

SWIN_TINY = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2)}


@pytest.mark.parametrize("name,options", [
    ("resnet18", {}), ("tv_resnet18", {}), ("mobilenetv3_small_050", {}),
    ("swin_tiny_patch4_window7_224", SWIN_TINY), ("hrnet_w18_small", {}),
])
def test_channels_and_strides_match_outputs(name: str, options: dict) -> None:
    enc = build_encoder(name, in_channels=2, **options).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 2, 64, 96))
    assert [f.shape[1] for f in feats] == enc.channels
    assert [(64 // s, 96 // s) for s in enc.strides] == [tuple(f.shape[-2:]) for f in feats]


@pytest.mark.parametrize("name", ["resnet18", "tv_resnet50"])
def test_output_stride_8_dilates(name: str) -> None:
    enc = build_encoder(name, output_stride=8, depth=5).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 64))
    assert enc.strides == [2, 4, 8, 8, 8]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 8, 8]


def test_timm_format_weights_give_timm_features(tmp_path) -> None:
    full = timm.create_model("resnet18", pretrained=False).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(full.state_dict(), path)  # classifier checkpoint, fc included
    enc = build_encoder("resnet18", pretrained=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[-1], full.forward_features(x))


def test_torchvision_format_weights(tmp_path) -> None:
    tv = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "tv.pth"
    torch.save({"state_dict": tv.state_dict()}, path)
    enc = build_encoder("tv_resnet18", pretrained=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = torch.nn.Sequential(*list(tv.children())[:-2])(x)
        torch.testing.assert_close(enc(x)[-1], ref)


def test_encoder_state_dict_round_trip_through_unet(tmp_path) -> None:
    src = build_encoder("resnet18")
    path = tmp_path / "enc.pt"
    torch.save(src.state_dict(), path)
    model = build_model("unet", 2, encoder="resnet18", base_channels=8, pretrained=str(path))
    for key, value in src.body.state_dict().items():
        torch.testing.assert_close(model.encoder.body.state_dict()[key], value)


def test_first_conv_adapted_to_grayscale(tmp_path) -> None:
    full = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "rgb.pth"
    torch.save(full.state_dict(), path)
    enc = build_encoder("resnet18", in_channels=1, pretrained=str(path))
    # timm's rule for 1 channel: sum the RGB filters
    torch.testing.assert_close(enc.body.conv1.weight, full.conv1.weight.sum(dim=1, keepdim=True))


def test_wrong_keys_name_missing_and_unexpected(tmp_path) -> None:
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"missing keys layer1\.0\.conv1\.weight; unexpected keys extra\.weight"):
        build_encoder("resnet18", pretrained=str(path))


def test_wrong_architecture_and_missing_file(tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(ModelError, match="weights do not fit encoder 'resnet50'"):
        build_encoder("resnet50", pretrained=str(path))
    with pytest.raises(ModelError, match="not found"):
        build_encoder("resnet18", pretrained=str(tmp_path / "nope.pth"))


def test_unknown_encoder_suggests() -> None:
    with pytest.raises(ModelError, match="unknown encoder 'resnet34x'.*resnet34"):
        build_encoder("resnet34x")
    with pytest.raises(ModelError, match="tv_resnet34"):
        build_encoder("tv_resnet33")
