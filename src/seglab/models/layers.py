"""A model layer by layer: output shape, parameters, FLOPs (torch's flop counter) and receptive field.

The study guide's size formulas are checked against the real shapes on every convolution:
``out = floor((in + 2p - d(k - 1) - 1) / s) + 1`` (Conv2d, MaxPool2d) and
``out = (in - 1) s - 2p + d(k - 1) + output_padding + 1`` (ConvTranspose2d). The receptive field follows the
forward order of the layers: ``r += (k - 1) * d * j`` then ``j *= s`` (``j``: the input pixels one output
step spans; a transposed convolution divides ``j`` by its stride), which is exact along the encoder of a
U-Net-like model and an upper bound past its skip connections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seglab.errors import ConfigError


@dataclass
class LayerRow:
    """One leaf module as it ran: where it is, what it produced, what it costs, what it sees."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    flops: int
    receptive_field: float
    formula_ok: bool | None  # the study guide's size formula matches the real output (None: not a conv/pool)


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def expected_size(module: nn.Module, size: tuple[int, int]) -> tuple[int, int] | None:
    """The output (H, W) the textbook formula gives for a conv / pool / transposed conv, else None."""
    if isinstance(module, nn.ConvTranspose2d):
        k, s, p, d, op = map(_pair, (module.kernel_size, module.stride, module.padding, module.dilation,
                                     module.output_padding))
        return tuple((n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i, n in enumerate(size))
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = map(_pair, (module.kernel_size, module.stride or module.kernel_size, module.padding))
        d = _pair(getattr(module, "dilation", 1))
        ceil = getattr(module, "ceil_mode", False)
        out = []
        for i, n in enumerate(size):
            span = n + 2 * p[i] - d[i] * (k[i] - 1) - 1
            out.append((-(-span // s[i]) if ceil else span // s[i]) + 1)
        return tuple(out)
    return None


def layer_table(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """Run one ``(C, H, W)`` zero input through ``model`` and describe every leaf module that ran."""
    leaves = {n: m for n, m in model.named_modules() if n and not list(m.children())}
    seen: list[tuple[str, tuple, tuple]] = []  # (name, input shape, output shape) in the order they ran

    def shape(x: Any) -> tuple:
        return tuple(x.shape) if isinstance(x, torch.Tensor) else ()

    def record(name: str) -> Any:
        return lambda _m, inputs, output: seen.append((name, shape(inputs[0]) if inputs else (), shape(output)))

    handles = [m.register_forward_hook(record(n)) for n, m in leaves.items()]
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    flops = {k.split(".", 1)[1]: sum(v.values()) for k, v in counter.get_flop_counts().items() if "." in k}
    rows, rf, jump = [], 1.0, 1.0
    for name, shape_in, shape_out in seen:
        module = leaves[name]
        ok = None
        if len(shape_in) == 4 and len(shape_out) == 4:
            want = expected_size(module, shape_in[2:])
            ok = None if want is None else want == shape_out[2:]
        if isinstance(module, nn.ConvTranspose2d):
            jump /= _pair(module.stride)[0]
        elif isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, d = _pair(module.kernel_size)[0], _pair(getattr(module, "dilation", 1))[0]
            rf += (k - 1) * d * jump
            jump *= _pair(module.stride or module.kernel_size)[0]
        rows.append(LayerRow(name, type(module).__name__, shape_out, sum(p.numel() for p in module.parameters()),
                             int(flops.get(name, 0)), rf, ok))
    return rows


def forward_memory(name: str, num_classes: int, options: dict[str, Any],
                   input_shape: tuple[int, int, int]) -> tuple[int, str]:
    """A lower bound of the bytes one ``(C, H, W)`` forward pass of ``name`` holds, and the layer that sets it.

    The model runs on the meta device (shapes only: no memory, no time): the bound is the input plus twice the
    largest leaf output (a layer's input and output are alive together), at 4 bytes an element. Models that
    cannot run on meta (the detectors, which resize their input themselves) are bounded by the input alone.
    """
    from seglab.models.registry import build_model

    c, h, w = input_shape
    largest: list[tuple[int, str]] = [(0, "the input")]

    def record(layer: str) -> Any:
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.numel() > largest[0][0]:
                largest[0] = (out.numel(), f"{layer} ({'x'.join(map(str, out.shape[1:]))})")
        return hook

    try:
        with torch.device("meta"):
            model = build_model(name, num_classes, **options).eval()
            for layer, m in model.named_modules():
                if layer and not list(m.children()):
                    m.register_forward_hook(record(layer))
            with torch.no_grad():
                model(torch.empty(1, c, h, w))
    except Exception:  # a detector's data-dependent steps do not run on meta: the input bounds it
        largest = [(0, "the input")]
    return 4 * (c * h * w + 2 * largest[0][0]), largest[0][1]


def memory_limit() -> int:
    """Half this machine's physical memory (16 GiB where the OS does not say): the most a layer table may take."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 16 << 30


def check_forward_memory(name: str, num_classes: int, options: dict[str, Any], input_shape: tuple[int, int, int],
                         limit: int | None = None) -> None:
    """Refuse an input whose forward pass would not fit (``seglab models NAME --input 3x100000x100000`` would
    otherwise try to allocate 120 GB), before any real tensor is made.

    Raises:
        ConfigError: the estimate (:func:`forward_memory`) is over ``limit`` (default :func:`memory_limit`).
    """
    limit = memory_limit() if limit is None else limit
    need, where = forward_memory(name, num_classes, options, input_shape)
    if need > limit:
        c, h, w = input_shape
        held = where if where == "the input" else f"the input and {where}"
        raise ConfigError(f"--input {c}x{h}x{w}: one forward pass of {name} needs at least {need / 2**30:,.1f} GiB "
                          f"({held}), over the {limit / 2**30:.1f} GiB allowed (half this machine's memory). Pass "
                          "a smaller input: the layers are the same, their sizes scale with HxW (e.g. 3x512x512).")


def size_note(model: nn.Module, height: int, width: int) -> str | None:
    """What happens to an input whose size the model's total stride does not divide (it pads), with the
    nearest sizes that divide cleanly; None when it divides."""
    stride = int(getattr(model, "stride", 1) or 1)
    bad = [n for n in (height, width) if n % stride]
    if not bad:
        return None
    nearest = sorted(({(n // stride) * stride for n in bad} | {(n // stride + 1) * stride for n in bad}) - {0})
    padded = (-(-height // stride) * stride, -(-width // stride) * stride)
    extra = padded[0] * padded[1] / (height * width) - 1
    return (f"{height}x{width} is not a multiple of the model's total stride {stride}: it is padded to "
            f"{padded[0]}x{padded[1]} ({extra:.1%} more pixels to compute). Sizes that need no padding near it: "
            f"{', '.join(map(str, nearest))}.")
