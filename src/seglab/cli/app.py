"""The typer apps every command module registers on (kept apart so modules don't import each other)."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="seglab",
    help="Image segmentation toolkit: check data, train, evaluate, predict, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Dataset tools: synth, check, stats, convert.", no_args_is_help=True)
app.add_typer(data_app, name="data")
convert_app = typer.Typer(help="Convert label formats (never overwrites the input).", no_args_is_help=True)
data_app.add_typer(convert_app, name="convert")

# soft_wrap: a long line (a path, a command to paste) is never broken at 80 columns in logs and pipes
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
