"""`seglab train` and `seglab demo`: build a RunConfig from defaults < --config YAML < flags, then train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seglab.cli.app import app, console
from seglab.config import (
    RunConfig,
    apply_overrides,
    choices,
    config_from_dict,
    load_config,
    parse_options,
    section_of,
)

# A flag sets the config key of its own name, in the one section that has it (`section_of`); only flags
# named differently from their key are listed here. A new flag is one typer parameter below (+ a line
# here if it is renamed); the CLI never repeats a default or a list of choices kept in seglab.config.
RENAMED = {"data": ("data", "root"), "model": ("model", "name")}
NOT_CONFIG = ("config", "model_opt", "set_")  # parameters that are not config keys


def _one_of(section: str, key: str, note: str = "") -> str:
    return " | ".join(choices(section, key)) + (f" ({note})" if note else "")


def flag_updates(flags: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` for the flags the user gave (parameter name -> value)."""
    updates: dict[str, dict[str, Any]] = {}
    for name, value in flags.items():
        section, key = RENAMED.get(name) or (section_of(name), name)
        updates.setdefault(section, {})[key] = value
    return updates


def build_config(config: Path | None, flags: dict[str, Any], model_opts: list[str], sets: list[str]) -> RunConfig:
    """Defaults (a resumed run's own config.yaml), then the YAML file, then the flags given (``flags``: only
    those), then ``--set`` items."""
    run_config = Path(flags.get("out") or RunConfig().train.out) / "config.yaml"
    if flags.get("resume") and run_config.is_file():
        cfg = load_config(run_config)
        cfg = load_config(config, cfg) if config else cfg
    else:
        cfg = load_config(config) if config else RunConfig()
    updates = flag_updates(flags)
    if model_opts:
        updates.setdefault("model", {})["options"] = {**cfg.model.options, **parse_options(model_opts)}
    cfg = config_from_dict(updates, cfg)
    return apply_overrides(cfg, sets)


def given_flags(ctx: typer.Context) -> dict[str, Any]:
    """The config flags on the command line (not their defaults), by parameter name."""
    # compared by name: typer vendors its own click, whose ParameterSource is not click's
    return {name: value for name, value in ctx.params.items()
            if name not in NOT_CONFIG and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}


@app.command()
def train(
    ctx: typer.Context,
    data: str | None = typer.Option(None, "--data", help="Dataset folder (images/, labels/)."),
    model: str | None = typer.Option(None, "--model", help="Registered model name (see `seglab models`)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config; flags override it."),
    out: str | None = typer.Option(None, "--out", help=f"Run directory (default {RunConfig().train.out})."),
    epochs: int | None = typer.Option(None, "--epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per process per step."),
    lr: float | None = typer.Option(None, "--lr"),
    optimizer: str | None = typer.Option(None, "--optimizer", help=_one_of("train", "optimizer")),
    schedule: str | None = typer.Option(None, "--schedule", help=_one_of("train", "schedule")),
    warmup_epochs: float | None = typer.Option(None, "--warmup-epochs"),
    weight_decay: float | None = typer.Option(None, "--weight-decay"),
    loss: str | None = typer.Option(None, "--loss", help="e.g. ce, wce, ce+dice, 0.5*ce+1.0*dice, focal"),
    class_weights: str | None = typer.Option(None, "--class-weights", help="Comma-separated, one per class."),
    precision: str | None = typer.Option(None, "--precision", help=_one_of("train", "precision", "fp16: CUDA only")),
    accum: int | None = typer.Option(None, "--accum", help="Gradient accumulation steps."),
    clip_grad: float | None = typer.Option(None, "--clip-grad", help="Max gradient norm."),
    ema: float | None = typer.Option(None, "--ema", help="EMA decay of weights, e.g. 0.999 (0 = off)."),
    seed: int | None = typer.Option(None, "--seed"),
    save_every: int | None = typer.Option(None, "--save-every", help="Also checkpoint every N steps."),
    workers: int | None = typer.Option(None, "--workers", help="DataLoader worker processes."),
    crop_size: int | None = typer.Option(None, "--crop-size"),
    num_classes: int | None = typer.Option(None, "--num-classes"),
    in_channels: int | None = typer.Option(None, "--in-channels", help="1 keeps grayscale images 1-channel."),
    ignore_index: int | None = typer.Option(None, "--ignore-index"),
    sampler: str | None = typer.Option(None, "--sampler", help=_one_of("data", "sampler", "balanced: repeat-factor")),
    early_stop: int | None = typer.Option(None, "--early-stop", help="Stop after N evals without improvement."),
    monitor: str | None = typer.Option(None, "--monitor", help="Metric for best.pt (default: mean_iou; mask_AP "
                                       "for instance models; or val_loss, box_AP, ...)."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (its config.yaml, last.pt); "
                                "only --epochs, --workers, --device and logging flags may change."),
    allow_ignore_class: bool = typer.Option(False, "--allow-ignore-class", help="Let --ignore-index name a real "
                                            "class (its pixels are then never trained on)."),
    channels_last: bool = typer.Option(False, "--channels-last"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing"),
    skip_nonfinite: bool = typer.Option(False, "--skip-nonfinite", help="Skip steps whose loss is NaN/Inf."),
    tb: bool = typer.Option(False, "--tb", help="Also log to TensorBoard (extra 'tb')."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="SyncBatchNorm under DDP."),
    model_opt: list[str] = typer.Option([], "--model-opt", help="Model option name=value (repeatable)."),
    set_: list[str] = typer.Option([], "--set", help="Any config key: section.key=value (repeatable)."),
) -> None:
    """Train a model; writes config.yaml, metrics.csv, last.pt, best.pt, plots and report.md to --out."""
    cfg = build_config(config, given_flags(ctx), model_opt, set_)
    from seglab.engine.trainer import train as run_training

    run_training(cfg)


@app.command()
def demo(
    task: str = typer.Option("semantic", "--task", help="semantic | instance"),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the data and the run go."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the demo's epoch count."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate shapes, train a small model on the CPU, evaluate it and show where the results are."""
    from seglab.demo import run_demo

    run_demo(task, out, epochs=epochs, seed=seed, console=console)
