"""`seglab train` and `seglab demo`: build a RunConfig from defaults < --config YAML < flags, then train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from seglab.cli.app import app, console, err_console
from seglab.config import (
    RunConfig,
    apply_overrides,
    choices,
    config_from_dict,
    flag_updates,
    key_of,
    load_config,
    parse_options,
)

# A flag sets the config key of its own name (`seglab.config.key_of`: renamed ones are listed there). A new flag
# is one typer parameter below; the CLI never repeats a default or a list of choices kept in seglab.config.
NOT_CONFIG = ("config", "model_opt", "set_", "print_config")  # parameters that are not config keys


def _default(name: str) -> str:
    section, key = key_of(name)
    value = getattr(getattr(RunConfig(), section), key)
    if isinstance(value, bool) or value is None:
        return f"(default {'on' if value else 'off' if value is False else 'unset'})"
    return f"(default {','.join(map(str, value)) if isinstance(value, list) else value})"


def _opt(name: str, help: str = "", default_note: str | None = None, **kw: Any) -> Any:
    """A config flag: unset unless given (so a --config file's value stands), its default shown in --help."""
    section, key = key_of(name)
    one_of = " | ".join(choices(section, key))
    text = " ".join(t for t in (help, f"One of: {one_of}." if one_of else "", default_note or _default(name)) if t)
    return typer.Option(None, f"--{name.replace('_', '-')}", help=text, **kw)


def _switch(name: str, help: str) -> Any:
    """An on/off flag (no value): off unless given."""
    return typer.Option(False, f"--{name.replace('_', '-')}", help=help, metavar="")


def build_config(config: Path | None, flags: dict[str, Any], model_opts: list[str], sets: list[str]) -> RunConfig:
    """Defaults (a resumed run's own config.yaml), then the YAML file, then the flags given (``flags``: only
    those), then ``--set`` items."""
    given = load_config(config) if config and not flags.get("out") else None  # --config may name train.out
    run_config = Path(flags.get("out") or (given.train.out if given else RunConfig().train.out)) / "config.yaml"
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


def explicit_keys(config: Path | None, flags: dict[str, Any], sets: list[str]) -> set[str]:
    """``section.key`` of every value the user wrote: flags, ``--set`` items, keys of the ``--config`` file (the
    plan that fills a missing ``--model`` leaves them alone, even where they equal the defaults)."""
    from seglab.plan.apply import given_keys

    return given_keys(config, flag_updates(flags), sets)


def resolved_config(config: Path | None, flags: dict[str, Any], model_opts: list[str], sets: list[str]
                    ) -> tuple[RunConfig, set[str]]:
    """The config this command trains (what you wrote wins, the plan fills the rest: `--print-config` shows
    exactly this) and the keys you wrote; the plan's note goes to stderr."""
    from seglab.plan.apply import resolve_run

    cfg = build_config(config, flags, model_opts, sets)  # a bad file or value is refused here, clearly
    given = explicit_keys(config, flags, sets)
    cfg, note = resolve_run(cfg, given)
    if note:
        err_console.print(escape(note), highlight=False, soft_wrap=True)
    return cfg, given


def given_flags(ctx: typer.Context) -> dict[str, Any]:
    """The config flags on the command line (not their defaults), by parameter name."""
    # compared by name: typer vendors its own click, whose ParameterSource is not click's
    return {name: value for name, value in ctx.params.items()
            if name not in NOT_CONFIG and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}


@app.command()
def train(
    ctx: typer.Context,
    data: str | None = _opt("data", "Dataset folder (images/ + labels/, or COCO / instance masks).", "(required)"),
    model: str | None = _opt("model", "Registered model (`seglab models`).", "(default: chosen for data and device)"),
    config: Path | None = typer.Option(None, "--config", "--plan", help="YAML config (`seglab config`) or plan "
                                       "(`seglab plan`); flags override it."),
    out: str | None = _opt("out", "Run directory; taken means the next free name (runs/exp2)."),
    epochs: int | None = _opt("epochs"), seed: int | None = _opt("seed"),
    time: str | None = _opt("time", "Wall-clock budget such as 15m, 90s, 1.5h: epochs are fitted to it from a "
                        "measured step time (overrides --epochs)."),
    batch_size: int | None = _opt("batch_size", "Images per process per step."), lr: float | None = _opt("lr"),
    optimizer: str | None = _opt("optimizer"), schedule: str | None = _opt("schedule"),
    warmup_epochs: float | None = _opt("warmup_epochs"), weight_decay: float | None = _opt("weight_decay"),
    loss: str | None = _opt("loss", "e.g. ce, wce, ce+dice, 0.5*ce+1.0*dice, focal."),
    class_weights: str | None = _opt("class_weights", "Comma-separated, one per class."),
    precision: str | None = _opt("precision", "fp16 is CUDA only."),
    accum: int | None = _opt("accum", "Gradient accumulation steps."), clip_grad: float | None = _opt("clip_grad"),
    ema: float | None = _opt("ema", "EMA decay of the weights, e.g. 0.999 (0 = off)."),
    save_every: int | None = _opt("save_every", "Also checkpoint every N steps (0 = each epoch only)."),
    workers: int | None = _opt("workers", "DataLoader processes."), crop_size: int | None = _opt("crop_size"),
    num_classes: int | None = _opt("num_classes", "", "(default: classes.txt, else the largest label + 1)"),
    in_channels: int | None = _opt("in_channels", "1 keeps grayscale images 1-channel."),
    ignore_index: int | None = _opt("ignore_index", "Label value left out of loss and metrics."),
    sampler: str | None = _opt("sampler", "balanced: repeat-factor sampling of rare classes."),
    early_stop: int | None = _opt("early_stop", "Stop after N evaluations without improvement (0 = never)."),
    monitor: str | None = _opt("monitor", "Metric best.pt follows.", "(default mean_iou; instance: mask_AP)"),
    device: str | None = _opt("device", "auto | cpu | cuda | cuda:N."),
    resume: bool = _switch("resume", "Continue the run in --out from its config.yaml and last.pt; only --epochs, "
                           "--workers, --device and logging flags may change."),
    allow_ignore_class: bool = _switch("allow_ignore_class", "Let --ignore-index name a real class (its pixels "
                                       "are then never trained on)."),
    channels_last: bool = _switch("channels_last", "channels_last memory format."), compile: bool = _switch(
        "compile", "torch.compile the model."),
    grad_checkpointing: bool = _switch("grad_checkpointing", "Recompute activations to save memory."),
    skip_nonfinite: bool = _switch("skip_nonfinite", "Skip steps whose loss is NaN/Inf."),
    tb: bool = _switch("tb", "Also log to TensorBoard (extra 'tb')."),
    no_review: bool = _switch("no_review", "Do not write review/ (the error browser of best.pt on val, written at "
                              "the end when val has <= 500 images)."), sync_bn: bool = _switch("sync_bn", "DDP: "
                                                                                           "SyncBatchNorm."),
    model_opt: list[str] = typer.Option([], "--model-opt", metavar="NAME=VALUE", help="Model option (repeatable; "
                                        "`seglab models` lists them)."),
    set_: list[str] = typer.Option([], "--set", metavar="SECTION.KEY=VALUE", help="Any config key (repeatable)."),
    print_config: bool = typer.Option(False, "--print-config", metavar="", help="Print the complete config this "
                                      "command would train with, and exit (a dry run)."),
) -> None:
    """Train a model; writes config.yaml, metrics.csv, last.pt, best.pt, plots and report.md to --out."""
    cfg, given = resolved_config(config, given_flags(ctx), model_opt, set_)
    if print_config:
        return typer.echo(cfg.to_yaml(), nl=False)
    from seglab.engine.trainer import train as run_training

    run_training(cfg, given=given)


@app.command("config")
def config_cmd(
    model: str | None = typer.Option(None, "--model", help="Fill in this model's options and their defaults."),
    out: Path | None = typer.Option(None, "--out", help="Write the YAML here instead of printing it."),
) -> None:
    """The complete default config as YAML: edit it and pass it to `seglab train --config FILE`."""
    from seglab.fileio import atomic_write_text, check_output_path
    from seglab.models.registry import get_entry

    cfg = RunConfig()
    if model is not None:
        options = {k: v for k, v in get_entry(model).options().items() if k != "in_channels"}
        cfg = config_from_dict({"model": {"name": model, "options": options}})
    text = ("# seglab run config: `seglab train --config FILE` (flags given there override these values).\n"
            "# model.name null: chosen for the data and device when training starts.\n" + cfg.to_yaml())
    if out is None:
        typer.echo(text, nl=False)
        return
    check_output_path(out)
    atomic_write_text(out, text)
    console.print(f"wrote {out}", highlight=False)


@app.command()
def demo(
    task: str = typer.Option("semantic", "--task", help="semantic | instance | panoptic"),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the data and the run go."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the demo's epoch count."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate shapes, train a small model on the CPU, evaluate it and show where the results are."""
    from seglab.demo import run_demo

    run_demo(task, out, epochs=epochs, seed=seed, console=console)
