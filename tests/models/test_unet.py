"""U-Net: the classic's parameter count against a textbook reference, its switches, speed hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.models import build_model


class TextbookUNet(nn.Module):
    """The plain U-Net as textbooks write it, kept independent of seglab's blocks.

    ``conv_bias`` toggles the (redundant before BatchNorm) conv bias many tutorials keep.
    """

    def __init__(self, in_ch: int = 3, n_classes: int = 21, conv_bias: bool = False, bn: bool = True) -> None:
        super().__init__()

        def block(a: int, b: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for c_in in (a, b):
                layers.append(nn.Conv2d(c_in, b, kernel_size=3, padding=1, bias=conv_bias))
                if bn:
                    layers.append(nn.BatchNorm2d(b))
                layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        self.e1, self.e2, self.e3, self.e4 = block(in_ch, 64), block(64, 128), block(128, 256), block(256, 512)
        self.mid = block(512, 1024)
        self.u4, self.d4 = nn.ConvTranspose2d(1024, 512, 2, 2), block(1024, 512)
        self.u3, self.d3 = nn.ConvTranspose2d(512, 256, 2, 2), block(512, 256)
        self.u2, self.d2 = nn.ConvTranspose2d(256, 128, 2, 2), block(256, 128)
        self.u1, self.d1 = nn.ConvTranspose2d(128, 64, 2, 2), block(128, 64)
        self.out = nn.Conv2d(64, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = nn.functional.max_pool2d
        a = self.e1(x)
        b = self.e2(p(a, 2))
        c = self.e3(p(b, 2))
        d = self.e4(p(c, 2))
        m = self.mid(p(d, 2))
        y = self.d4(torch.cat([self.u4(m), d], 1))
        y = self.d3(torch.cat([self.u3(y), c], 1))
        y = self.d2(torch.cat([self.u2(y), b], 1))
        return self.out(self.d1(torch.cat([self.u1(y), a], 1)))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Conv biases in the 18 3x3 convs of the textbook net: 2 per block, blocks 64..1024 down and 512..64 up.
DEAD_BIASES = 2 * (64 + 128 + 256 + 512 + 1024) + 2 * (512 + 256 + 128 + 64)


def test_classic_unet_matches_textbook_count_and_shapes() -> None:
    ours = build_model("unet", 21)
    ref = TextbookUNet()
    assert n_params(ours) == n_params(ref)
    # the study-guide variant keeps a bias before each BN: exactly DEAD_BIASES more, nothing else differs
    assert n_params(TextbookUNet(conv_bias=True)) - n_params(ours) == DEAD_BIASES == 5888
    # the paper's original (no BN, biased convs) equals norm="none"
    assert n_params(build_model("unet", 21, norm="none")) == n_params(TextbookUNet(conv_bias=True, bn=False))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert ours.eval()(x).shape == ref.eval()(x).shape == (1, 21, 32, 32)


def test_classic_unet_layer_widths() -> None:
    m = build_model("unet", 2)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024,
                                               512, 512, 256, 256, 128, 128, 64, 64]
    ups = [mod for mod in m.modules() if isinstance(mod, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (1024, 512, (2, 2), (2, 2)), (512, 256, (2, 2), (2, 2)), (256, 128, (2, 2), (2, 2)),
        (128, 64, (2, 2), (2, 2))]
    assert sum(isinstance(mod, nn.MaxPool2d) for mod in m.modules()) == 4


@pytest.mark.parametrize("options", [
    {"downsample": "strided", "upsample": "bilinear", "skip": "add", "norm": "group"},
    {"upsample": "bilinear_conv", "skip": "none", "norm": "none", "dropout": 0.2, "depth": 3},
    {"upsample": "nearest", "skip": "concat", "depth": 2},
])
def test_unet_switches_odd_size_grayscale(options: dict) -> None:
    m = build_model("unet", 3, in_channels=1, base_channels=4, **options)
    x = torch.randn(2, 1, 97, 131, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 3, 97, 131)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_skip_none_removes_skip_paths() -> None:
    # without skips the decoder convs see only the upsampled tensor: first 3x3 conv per up block halves input
    m = build_model("unet", 2, base_channels=4, depth=2, skip="none")
    first = [blk.conv[0][0].in_channels for blk in m.up]
    assert first == [8, 4]  # transpose conv outputs 8 then 4 channels, nothing concatenated


def test_unet_encoder_resnet18_odd_size() -> None:
    m = build_model("unet", 5, encoder="resnet18", base_channels=8, in_channels=1)
    y = m(torch.randn(1, 1, 97, 131))
    assert y.shape == (1, 5, 97, 131)


def test_channels_last_bf16_autocast() -> None:
    m = build_model("unet", 3, base_channels=4).to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 3, 97, 131).to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = m(x.contiguous())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
    assert y.shape == (2, 3, 97, 131) and y.dtype == torch.bfloat16
    # bf16 has ~3 significant digits; a tiny net's logits stay within 5% of their spread
    assert (y.float() - ref).abs().max() < 0.05 * (ref.max() - ref.min()) + 0.05


def test_grad_checkpointing_same_gradients() -> None:
    torch.manual_seed(0)
    m = build_model("unet", 2, base_channels=4, depth=2, norm="group")  # group norm: no running stats drift
    x = torch.randn(2, 3, 32, 32)
    m(x).sum().backward()
    g_ref = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.set_grad_checkpointing(True)
    m(x).sum().backward()
    for a, b in zip(g_ref, (p.grad for p in m.parameters()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # inductor codegen: ~10 s warm cache, up to a minute or two cold on 2 busy cores
def test_torch_compile_tiny_unet_equal_outputs() -> None:
    try:
        import torch._inductor  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the install
        pytest.skip(f"torch.compile/inductor unavailable: {e}")
    m = build_model("unet", 2, base_channels=4, depth=1).eval()  # one level: fewest kernels to compile
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
        try:
            compiled = torch.compile(m)
            y = compiled(x)
        except Exception as e:  # no C compiler or unsupported platform
            pytest.skip(f"torch.compile failed on this machine: {type(e).__name__}: {e}")
    # tolerance: fused kernels reorder float32 sums; 1e-4 absolute is far above that rounding noise
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
