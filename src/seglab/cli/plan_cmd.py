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
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """Print the dataset's fingerprint and a recipe with a reason per choice; write it as a config for
    `seglab train --plan FILE`."""
    import dataclasses

    from seglab.distributed import resolve_device
    from seglab.fileio import atomic_write_text, check_output_path, refuse_overwrite
    from seglab.plan.recipe import evaluation_advice, fingerprint, plan_config, plan_yaml, refuse_existing_plan

    check_output_path(out)
    refuse_overwrite([out], [data])
    refuse_existing_plan(out, force)
    dev = resolve_device(device)
    fp = fingerprint(data)
    cfg, decisions = plan_config(fp, dev.type)
    notes = [f"{fp.task} data, {fp.num_train} train / {fp.num_val} val images, median {fp.size[0]}x{fp.size[1]}, "
             f"{fp.channels} channel(s)" + (f"; rare classes: {', '.join(fp.rare)}" if fp.rare else "")
             + (f"; thin classes: {', '.join(fp.thin)}" if fp.thin else "")]
    if time:
        from seglab.config.values import parse_duration
        from seglab.engine.budget import fit_to_budget

        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time=time, device=device))
        fit = fit_to_budget(cfg, dev, parse_duration(time))  # measures steps on this device; writes nothing
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=fit.epochs))
        decisions.append(("train.epochs", fit.epochs, fit.why + (f". Warning: {fit.warning}" if fit.warning else "")))
    advice = evaluation_advice(fp)
    if advice:
        notes.append(f"after training: seglab evaluate RUN --data {data}"
                     + (f" applies {advice[0]} by default (data.tta)" if advice[0] else "") + f"  ({advice[1]})")
    _print_fingerprint(fp)
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


def _print_fingerprint(fp: object) -> None:
    """The fingerprint's facts and its object scale (issue 25.1), before the decisions they lead to."""
    from seglab.plan.recipe import fingerprint_lines, scale_table

    for line in fingerprint_lines(fp):
        console.print(escape(line), highlight=False, soft_wrap=True)
    if fp.scale:
        scale = Table(title="object scale (connected components of the truth; width = 2 / boundary share)")
        header, *rows = scale_table(fp)
        for col in header:
            scale.add_column(col, justify="left" if col == "class" else "right")
        for row in rows:
            scale.add_row(*map(escape, row))
        console.print(scale)
