"""`seglab plan`: fingerprint a dataset and write a training recipe, each choice with its reason."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from seglab.cli.app import app, console


@app.command()
def plan(
    data: Path = typer.Argument(..., help="Dataset folder."),
    time: str | None = typer.Option(None, "--time", help="Training budget, e.g. 15m: epochs from a measured "
                                    "calibration on this machine."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N: the device to plan for."),
    out: Path = typer.Option(Path("plan.yaml"), "--out", help="Where to write the plan (a config file)."),
) -> None:
    """Print the dataset's fingerprint and a recipe with a reason per choice; write it as a config for
    `seglab train --plan FILE`."""
    import dataclasses

    from seglab.distributed import resolve_device
    from seglab.engine.plan import evaluation_advice, fingerprint, plan_config, plan_yaml
    from seglab.fileio import atomic_write_text, check_output_path, refuse_overwrite

    check_output_path(out)
    refuse_overwrite([out], [data])
    dev = resolve_device(device)
    fp = fingerprint(data)
    cfg, decisions = plan_config(fp, dev.type)
    notes = [f"{fp.task} data, {fp.num_train} train / {fp.num_val} val images, median {fp.size[0]}x{fp.size[1]}, "
             f"{fp.channels} channel(s)" + (f"; rare classes: {', '.join(fp.rare)}" if fp.rare else "")
             + (f"; thin classes: {', '.join(fp.thin)}" if fp.thin else "")]
    if time:
        from seglab.engine.trainer import Trainer

        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time=time, device=device))
        from seglab.distributed import DistInfo

        trainer = Trainer(cfg, DistInfo(device=dev))  # measures steps on this device; writes nothing
        cfg = trainer.cfg
        decisions.append(("train.epochs", cfg.train.epochs, trainer.budget_note))
    advice = evaluation_advice(fp)
    if advice:
        notes.append(f"after training: seglab evaluate RUN --data {data}{' ' * bool(advice[0])}{advice[0]}  "
                     f"({advice[1]})")
    table = Table(title=escape(notes[0]), show_lines=False)
    for col in ("setting", "value", "why"):
        table.add_column(col, overflow="fold")
    for key, value, why in decisions:
        table.add_row(key, escape(str(value)), escape(why))
    console.print(table)
    if advice:
        console.print(escape(notes[-1][0].upper() + notes[-1][1:]), highlight=False, soft_wrap=True)
    atomic_write_text(out, plan_yaml(cfg, decisions, notes))
    console.print(f"[green]wrote[/] {escape(str(out))}. Train it: seglab train --plan {escape(str(out))}",
                  highlight=False, soft_wrap=True)
