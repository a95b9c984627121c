"""`seglab ablate`: vary config keys over seeds, train every run (resumable), write a report with statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.app import app, console


@app.command()
def ablate(
    data: str = typer.Option(..., "--data", help="Dataset folder (as for `seglab train`)."),
    vary: list[str] = typer.Option(..., "--vary", metavar="KEY=A,B", help="A config key and its values, e.g. "
                                   "model.options.skip=concat,add,none or train.loss=ce,dice (repeatable; the "
                                   "first value is the reference)."),
    base: Path | None = typer.Option(None, "--base", help="Base config YAML (`seglab config`); default: defaults."),
    seeds: int = typer.Option(2, "--seeds", help="Runs per variant (same seeds for every variant)."),
    mode: str = typer.Option("grid", "--mode", help="grid: every combination | list: one key at a time."),
    time_per_run: str | None = typer.Option(None, "--time-per-run", help="A --time budget per run, e.g. 3m "
                                            "(default: the base config's epochs)."),
    out: Path = typer.Option(Path("runs/ablate"), "--out", help="Ablation folder (a killed ablation continues)."),
    set_: list[str] = typer.Option([], "--set", metavar="SECTION.KEY=VALUE", help="Base config overrides."),
) -> None:
    """Train every variant x seed, then write OUT/report.md (mean ± std, paired 95 % intervals), curves.png
    and predictions.png."""
    from seglab.ablate import parse_vary, run_ablation, write_report
    from seglab.config import RunConfig, apply_overrides, config_from_dict, load_config
    from seglab.plan.apply import given_keys

    cfg = config_from_dict({"data": {"root": data}}, load_config(base) if base else RunConfig())
    cfg = apply_overrides(cfg, set_)
    variations = [parse_vary(v) for v in vary]
    results = run_ablation(cfg, variations, seeds, out, mode, time_per_run, log=lambda m: console.print(
        m, highlight=False, soft_wrap=True), given=given_keys(base, None, set_))
    from seglab.checkpoint import read_info

    info = read_info(results[0].path)
    report = write_report(results, out, info.task, info.classes)
    console.print(f"[green]wrote[/] {report} ({len(results)} runs), curves.png and predictions.png beside it",
                  highlight=False, soft_wrap=True)
