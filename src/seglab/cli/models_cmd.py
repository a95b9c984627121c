"""``seglab models``: the registry as a table (name, task, parameters, default input, options)."""

from __future__ import annotations

import inspect

from rich.table import Table

from seglab.cli.app import app, console

SEMANTIC_CLASSES = 21  # PASCAL VOC, the usual yardstick for published parameter counts
INSTANCE_CLASSES = 91  # COCO category ids


def _default_classes(entry: object) -> int:
    param = inspect.signature(entry.builder).parameters.get("num_classes")
    if param is not None and param.default is not inspect.Parameter.empty:
        return int(param.default)
    return SEMANTIC_CLASSES if entry.task == "semantic" else INSTANCE_CLASSES


def _format_count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


@app.command("models")
def models() -> None:
    """List every registered model with its parameter count (at default width) and options."""
    from seglab.models import count_parameters, list_models  # imports timm: only when the command runs

    table = Table(title="seglab models", caption=f"parameters for {SEMANTIC_CLASSES} classes (semantic) or "
                  "the model's default class count (instance)")
    table.add_column("name", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("default input", justify="right", no_wrap=True)
    table.add_column("options (name=default)", overflow="fold", ratio=1)
    for entry in list_models():
        params = count_parameters(entry.name, _default_classes(entry))
        options = ", ".join(f"{k}={v}" for k, v in entry.options().items())
        table.add_row(entry.name, entry.task, _format_count(params), str(entry.default_input), options)
    console.print(table)
