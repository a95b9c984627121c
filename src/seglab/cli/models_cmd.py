"""``seglab models [NAME]``: the zoo at a glance (size, cost, speed, recorded quality, where to start).

The listing reads ``seglab/models/model_facts.json`` (made by ``benchmarks/model_facts.py``, checked
against the registry by the tests) instead of building every model: importing the model families loads
timm and torchvision, seconds before anything is shown. ``seglab.models.summary.model_facts()`` returns
the same data in Python.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from seglab.cli.app import app, console


def _facts() -> dict[str, Any]:
    import seglab

    path = Path(seglab.__file__).parent / "models" / "model_facts.json"
    if not path.is_file():
        from seglab.errors import SeglabError

        raise SeglabError(f"{path}: missing; this seglab installation is incomplete (the file is package data). "
                          "Reinstall seglab, or regenerate it with `python benchmarks/model_facts.py`.")
    return json.loads(path.read_text(encoding="utf-8"))


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _gflops(row: dict) -> str:
    g = row.get("gflops")
    if g is None:
        return "-"
    return f"{g:.0f}" if g >= 100 else f"{g:.1f}" if g >= 10 else f"{g:.2f}"


def _quality(q: dict, long: bool = False) -> str:
    if long:
        return f"{q['dataset']}: {q['metric']} {q['value']:.3g} on {q['split']} ({q['options']}; {q['note']}; " \
               f"{q['source']})"
    return f"{q.get('short', q['dataset'])} {q['metric']} {q['value']:.3g}"


@app.command("models")
def models(
    name: str | None = typer.Argument(None, help="A model to show in detail, with its options."),
    input: str | None = typer.Option(None, "--input", metavar="CxHxW", help="With NAME: the model layer by layer "
                                     "for this input, e.g. 3x256x256 (shapes, parameters, FLOPs, receptive field)."),
    model_opt: list[str] = typer.Option([], "--model-opt", metavar="NAME=VALUE", help="Model options for --input."),
    num_classes: int = typer.Option(2, "--num-classes", help="Classes for --input."),
) -> None:
    """List the models: parameters, GFLOPs, CPU speed, recorded quality, and which to start with."""
    if name is not None and input is not None:
        from seglab.cli.layers_view import print_layers

        return print_layers(name, input, model_opt, num_classes)
    facts = _facts()
    if name is not None:
        _detail(facts, name)
        return
    table = Table(title="seglab models", caption=_caption(facts), caption_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for column, justify in (("name", "left"), ("task", "left"), ("params", "right"), ("GFLOPs @px", "right"),
                            ("img/s", "right"), ("recorded quality", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "recorded quality", min_width=len(column) // 2)
    for key, row in sorted(facts["models"].items()):
        speed = f"{row['cpu_img_s']:.2g}" if row.get("cpu_img_s") is not None else "-"
        table.add_row(key, row["task"], _count(row["params"]), f"{_gflops(row)} @{row.get('gflops_input', '?')}",
                      speed, ", ".join(_quality(q) for q in row.get("quality", [])) or "-")
    console.print(table)
    hints = Table(title="start here", title_justify="left", title_style="bold", show_header=False, box=None)
    hints.add_column(style="bold", no_wrap=True)
    hints.add_column()
    for hint in facts.get("start_here", []):
        options = f" {hint['options']}" if hint["options"] else ""
        hints.add_row(f"{hint['model']}{options}", f"{hint['use']}: {hint['why']}")
    console.print(hints)
    console.print("Options and details of one model: seglab models NAME")


def _caption(facts: dict) -> str:
    speed = facts.get("speed") or {}
    when = f" (benchmarks/models.py, {speed['date']})" if speed.get("date") else " (not measured)"
    return ("params: at 21 classes (semantic) or the builder's default (instance). GFLOPs: one px x px image, "
            "a multiply-add counted as 2 (instance: every detection kept). img/s: CPU training steps "
            f"(forward + backward), 256x256, batch 4, fp32{when}. Quality: recorded runs, docs/results.md.")


def _detail(facts: dict, name: str) -> None:
    from seglab.errors import ModelError

    row = facts["models"].get(name)
    if row is None:
        close = difflib.get_close_matches(name, facts["models"], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelError(f"unknown model {name!r}.{hint} Available: {', '.join(sorted(facts['models']))}.")
    speed = facts.get("speed") or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    size = row.get("gflops_input", row["default_input"])
    grid.add_row("task", f"{row['task']}, usually trained at {row['default_input']}x{row['default_input']}")
    grid.add_row("parameters", f"{_count(row['params'])} ({row.get('classes', '?')} classes)")
    grid.add_row("GFLOPs", f"{_gflops(row)} for one {size}x{size} image")
    if row.get("cpu_img_s") is not None:
        grid.add_row("CPU img/s", f"{row['cpu_img_s']:.3g}: {speed.get('what', '')} ({speed.get('machine', '')}, "
                                  f"{speed.get('date', '')})")
    for q in row.get("quality", []):
        grid.add_row("recorded", _quality(q, long=True))
    for hint in facts.get("start_here", []):
        if hint["model"] == name:
            grid.add_row("start here", f"{hint['use']}" + (f" ({hint['options']})" if hint["options"] else ""))
    grid.add_row("options", ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "none")
    grid.add_row("train", "not trained: merges a semantic and an instance run (seglab merge SEM INST --out FILE)"
                 if name == "panoptic_merge" else f"seglab train --data DIR --model {name} [--model-opt KEY=VALUE ...]")
    console.print(f"[bold]{name}[/]")
    console.print(grid)
