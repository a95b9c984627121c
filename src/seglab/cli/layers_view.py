"""`seglab models NAME --input CxHxW`: the layer table of one model, rendered (library: models/layers.py)."""

from __future__ import annotations

import re

from rich import box
from rich.table import Table

from seglab.cli.app import console
from seglab.errors import ConfigError

SKIP = ("BatchNorm2d", "GroupNorm", "LayerNorm", "ReLU", "GELU", "SiLU", "Dropout", "Dropout2d", "Identity")


def parse_input(text: str) -> tuple[int, int, int]:
    """``"3x256x256"`` -> ``(3, 256, 256)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(int(g) for g in m.groups()) < 1:
        raise ConfigError(f"--input {text!r} must look like CxHxW, e.g. 3x256x256.")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def print_layers(name: str, input_text: str, model_opts: list[str], num_classes: int) -> None:
    """Print the layers of ``name`` built with ``model_opts`` for one ``input_text`` image."""
    from seglab.config import parse_options
    from seglab.models.layers import check_forward_memory, layer_table, size_note
    from seglab.models.registry import build_model, get_entry

    c, h, w = parse_input(input_text)
    options = parse_options(model_opts)
    if "in_channels" in get_entry(name).options():
        options.setdefault("in_channels", c)
    check_forward_memory(name, num_classes, options, (c, h, w))
    model = build_model(name, num_classes, **options)
    rows = layer_table(model, (c, h, w))
    table = Table(title=f"{name} on a {c}x{h}x{w} input", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("layer", "kind", "output", "params", "MFLOPs", "RF px", "formula"):
        table.add_column(col, justify="left" if col in ("layer", "kind", "output") else "right", no_wrap=True)
    for r in (r for r in rows if r.kind not in SKIP):
        check = {True: "ok", False: "[red]differs[/]", None: ""}[r.formula_ok]
        table.add_row(r.name, r.kind, "x".join(map(str, r.shape[1:])), f"{r.params:,}", f"{r.flops / 1e6:.1f}",
                      f"{r.receptive_field:g}", check)
    console.print(table, width=max(console.width, 110))  # a table cut at 80 columns would hide the shapes
    total_p, total_f = sum(p.numel() for p in model.parameters()), sum(r.flops for r in rows)
    console.print(f"{total_p:,} parameters, {total_f / 1e9:.3g} GFLOPs (a multiply-add counts 2). Receptive field "
                  "along the forward order of the layers (exact on the encoder path, an upper bound past skip "
                  "connections).", highlight=False)
    note = size_note(model, h, w)
    if note:
        console.print(f"[yellow]{note}[/]", highlight=False)
