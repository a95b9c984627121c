"""`seglab train` and `seglab demo`: build a RunConfig from defaults < --config YAML < flags, then train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seglab.cli.app import app, console
from seglab.config import RunConfig, apply_overrides, load_config, parse_options

# flag parameter name -> (section, key); the YAML key is the flag name with "_" for "-".
_FLAG_KEYS = {
    "data": ("data", "root"), "num_classes": ("data", "num_classes"), "in_channels": ("data", "in_channels"),
    "ignore_index": ("data", "ignore_index"), "crop_size": ("data", "crop_size"), "workers": ("data", "workers"),
    "sampler": ("data", "sampler"), "model": ("model", "name"),
    **{k: ("train", k) for k in (
        "out", "epochs", "batch_size", "lr", "optimizer", "schedule", "loss", "precision", "accum", "seed",
        "save_every", "warmup_epochs", "weight_decay", "clip_grad", "ema", "early_stop", "device", "monitor",
        "class_weights")},
}
_SWITCHES = ("resume", "channels_last", "compile", "grad_checkpointing", "skip_nonfinite", "tb", "sync_bn")


def build_config(config: Path | None, flags: dict[str, Any], model_opts: list[str], sets: list[str]) -> RunConfig:
    """Defaults, then the YAML file, then every flag the user actually gave."""
    from seglab.config import config_from_dict

    cfg = load_config(config) if config else RunConfig()
    updates: dict[str, dict[str, Any]] = {}
    for name, value in flags.items():
        if value is None or (name in _SWITCHES and value is False):
            continue
        section, key = _FLAG_KEYS.get(name, ("train", name))
        updates.setdefault(section, {})[key] = value
    if model_opts:
        updates.setdefault("model", {})["options"] = {**cfg.model.options, **parse_options(model_opts)}
    cfg = config_from_dict(updates, cfg)
    return apply_overrides(cfg, sets)


@app.command()
def train(
    data: str | None = typer.Option(None, "--data", help="Dataset folder (images/, labels/)."),
    model: str | None = typer.Option(None, "--model", help="Registered model name (see `seglab models`)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config; flags override it."),
    out: str | None = typer.Option(None, "--out", help="Run directory (default runs/exp)."),
    epochs: int | None = typer.Option(None, "--epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per process per step."),
    lr: float | None = typer.Option(None, "--lr"),
    optimizer: str | None = typer.Option(None, "--optimizer", help="sgd | adam | adamw"),
    schedule: str | None = typer.Option(None, "--schedule", help="cosine|poly|step|multistep|plateau|constant"),
    warmup_epochs: float | None = typer.Option(None, "--warmup-epochs"),
    weight_decay: float | None = typer.Option(None, "--weight-decay"),
    loss: str | None = typer.Option(None, "--loss", help="e.g. ce, wce, ce+dice, 0.5*ce+1.0*dice, focal"),
    class_weights: str | None = typer.Option(None, "--class-weights", help="Comma-separated, one per class."),
    precision: str | None = typer.Option(None, "--precision", help="fp32 | bf16 | fp16 (CUDA)"),
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
    sampler: str | None = typer.Option(None, "--sampler", help="random | balanced (repeat-factor)"),
    early_stop: int | None = typer.Option(None, "--early-stop", help="Stop after N evals without improvement."),
    monitor: str | None = typer.Option(None, "--monitor", help="Metric for best.pt (mean_iou, val_loss, ...)."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from last.pt."),
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
    flags = {k: v for k, v in locals().items() if k not in ("config", "model_opt", "set_")}
    cfg = build_config(config, flags, model_opt, set_)
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
