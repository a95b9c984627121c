"""`seglab evaluate`: score a checkpoint on a split (one library call, then tables)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from seglab.cli.app import app, console, err_console
from seglab.cli.progress import progress_bar
from seglab.tasks import INSTANCE, PANOPTIC, SEMANTIC


@app.command()
def evaluate(
    run: Path | None = typer.Argument(None, help="Run directory (its best.pt), checkpoint, or none: --predictions"),
    data: Path = typer.Option(..., "--data", help="Dataset folder (semantic: images/ + labels/; instance: "
                              "annotations/instances_<split>.json or masks/<split>/; panoptic: labels/ + "
                              "instances/ + panoptic.json or annotations/panoptic_<split>.json)."),
    predictions: Path | None = typer.Option(None, "--predictions", help="Score saved outputs of any tool, no model: "
                                            "label PNGs, COCO results JSON, or panoptic.json + PNGs."),
    split: str = typer.Option("val", "--split", help="Which split to score."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    tta: str | None = typer.Option(None, "--tta", help="hflip | hflip,vflip | hflip,scales=0.75,1,1.25 (semantic)"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size in pixels (semantic)."),
    overlap: float | None = typer.Option(None, "--overlap", help="Tile overlap fraction (default 0.25)."),
    detections: Path | None = typer.Option(None, "--detections", help="Instance checkpoints: also write the "
                                           "scored detections as a COCO results JSON."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    refine: str | None = typer.Option(None, "--refine", help="sam: also score the predictions refined by Segment "
                                      "Anything (before/after, boundary IoU); needs seglab\\[sam]."),
    sam_checkpoint: Path | None = typer.Option(None, "--sam-checkpoint", help="--refine sam: the SAM weight file."),
    sam_model: str = typer.Option("vit_b", "--sam-model", help="--refine sam: vit_b | vit_l | vit_h."),
) -> None:
    """Score a checkpoint (or saved predictions) on a split at full resolution.

    Semantic: pixel accuracy, mIoU, Dice, boundary IoU, per class. Instance: COCO mask and box AP, per class.
    Panoptic: PQ / SQ / RQ (all, things, stuff, per class), the implied semantic mIoU and instance AP.
    """
    given = {"--tta": tta, "--tile": tile, "--overlap": overlap, "--detections": detections}
    if predictions is not None or run is None:
        return _score_saved(run, predictions, data, split, json_out, {**given, "--refine": refine,
                                                                      "--sam-checkpoint": sam_checkpoint})
    if refine is not None:
        from seglab.cli.refine_eval import evaluate_refined

        return evaluate_refined(run, data, split, json_out, refine, sam_checkpoint, sam_model, device, given)
    _score_model(run, data, split, json_out, detections, tta, tile, overlap, device)


def _planned_tta(tta: str | None, config: dict, say: bool) -> str | None:
    """``--tta``, else the plan's advice the run recorded (data.tta), said in a note."""
    from seglab.plan.recipe import planned_tta

    tta, note = planned_tta(tta, config)
    if note and say:
        err_console.print(escape(note), highlight=False, soft_wrap=True)
    return tta


def _score_model(run: Path, data: Path, split: str, json_out: Path | None, detections: Path | None,
                 tta: str | None, tile: int | None, overlap: float | None, device: str) -> None:
    """The checkpoint on the split, DDP-aware: the task's tables, then --json / --detections."""
    from seglab import checkpoint, distributed
    from seglab.errors import ConfigError
    from seglab.inference.evaluation import evaluate_checkpoint
    from seglab.inference.tiling import TileOptions

    dist = distributed.setup(device)
    try:
        model, info = checkpoint.load_checkpoint(run, device=dist.device)
        tta = _planned_tta(tta, info.config, dist.is_main)
        if detections is not None and info.task != "instance":
            raise ConfigError(f"--detections: {info.path} is a {info.task} checkpoint; COCO detections come "
                              "from instance checkpoints. Drop --detections.")
        _check_outputs({"--json": json_out, "--detections": detections}, info.path, data)
        tiles = TileOptions(tile=tile, **({} if overlap is None else {"overlap": overlap}))
        with progress_bar(f"evaluate {split}", enabled=dist.is_main) as callback:
            result = evaluate_checkpoint(model, info, data, split, tta=tta, tiles=tiles, dist=dist,
                                         callback=callback)
        if not dist.is_main:
            return
        RENDERERS[info.task](result.metrics, info, f"{info.path} on {data} ({split}, {result.num_images} images)")
        _print_baselines(result)
        precision = (info.config.get("train") or {}).get("precision", "fp32")
        if precision != "fp32":  # the training log's validation numbers came from the autocast model
            console.print(f"Metrics are fractions (0-1), computed in fp32; the run's own validation used {precision} "
                          "autocast, so its numbers can differ in the last digits.", highlight=False)
        _write_outputs(result, json_out, detections)
    finally:
        distributed.cleanup()


def _write_outputs(result: Any, json_out: Path | None, detections: Path | None = None) -> None:
    """``--json`` (the metrics record) and ``--detections`` (COCO results), each written atomically."""
    from seglab.fileio import atomic_write_text

    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result.record(), indent=2) + "\n")
        console.print(f"metrics written to {json_out}")
    if detections is not None:
        atomic_write_text(detections, json.dumps(result.detections) + "\n")
        console.print(f"{len(result.detections or [])} detections written to {detections} (COCO results format)")


def _score_saved(run: Path | None, predictions: Path | None, data: Path, split: str, json_out: Path | None,
                 given: dict[str, Any]) -> None:
    """``--predictions``: score another tool's (or an earlier predict's) output; no model, no device."""
    from seglab.errors import ConfigError
    from seglab.inference.scoring import score_predictions

    if predictions is None:
        raise ConfigError("nothing to evaluate: pass a run directory or checkpoint, or --predictions PRED.")
    if run is not None:
        raise ConfigError(f"{run} and --predictions {predictions}: score a model or saved predictions, not both.")
    flags = [flag for flag, value in given.items() if value is not None]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: these apply to a model; --predictions scores files as they are. "
                          f"Drop {' and '.join(flags)}.")
    _check_outputs({"--json": json_out}, str(predictions), data)
    with progress_bar(f"score {split}") as callback:
        result = score_predictions(predictions, data, split, callback=callback)
    RENDERERS[result.info.task](result.metrics, result.info,
                                f"{predictions} on {data} ({split}, {result.num_images} images)")
    _print_baselines(result)
    _write_outputs(result, json_out)


def _print_semantic(metrics: dict[str, Any], info: Any, title: str) -> None:
    summary = Table(title=title, show_header=True)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, label in (("pixel_accuracy", "pixel accuracy"), ("mean_accuracy", "mean accuracy"),
                       ("mean_iou", "mIoU"), ("mean_dice", "mean Dice"), ("fw_iou", "fwIoU"),
                       ("boundary_iou", "boundary IoU (3 px)")):
        summary.add_row(label, frac(metrics.get(key)))
    console.print(summary)
    per_class = Table(show_header=True)
    for col in ("class", "IoU", "Dice", "accuracy"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(info.classes):
        per_class.add_row(name, *(frac(_at(metrics.get(k), i)) for k in
                                  ("per_class_iou", "per_class_dice", "per_class_accuracy")))
    console.print(per_class)


def _print_baselines(result: Any) -> None:
    """The sanity bar: trivial baselines on the same split, and a warning when the model is not clearly above."""
    b = result.baselines
    if b is None:
        return
    table = Table(title="sanity bar: trivial baselines on this split (each chosen on it)", show_header=True)
    table.add_column("baseline")
    table.add_column("mIoU", justify="right")
    for line in b.lines(result.info.classes):
        rule, miou = line.rsplit(": mIoU ", 1)
        table.add_row(rule, miou)
    table.add_row("the model", frac(result.metrics.get("mean_iou")))
    console.print(table)
    warning = result.baseline_warning()
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _print_instance(metrics: dict[str, Any], info: Any, title: str) -> None:
    from seglab.inference.instance import STAT_KEYS

    console.print(title, highlight=False)
    summary = Table(show_header=True)
    for col in ("metric", "mask", "box"):
        summary.add_column(col, justify="left" if col == "metric" else "right")
    for key in STAT_KEYS:
        summary.add_row(key, frac(metrics.get(f"mask_{key}")), frac(metrics.get(f"box_{key}")))
    console.print(summary)
    per_class = Table(show_header=True)
    for col in ("class", "mask AP", "box AP"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for name, cat in zip(info.classes[1:], info.cat_ids[1:], strict=True):
        per_class.add_row(name, *(frac(metrics[f"{kind}_per_class_AP"].get(cat)) for kind in ("mask", "box")))
    console.print(per_class)


def _check_outputs(outputs: dict[str, Path | None], checkpoint: str, data: Path) -> None:
    """Before the evaluation (a bad path fails in a second, not after it): writable, no input replaced."""
    from seglab.data.layout import DATASET_PARTS
    from seglab.errors import ConfigError
    from seglab.fileio import check_output_path, refuse_overwrite

    given = {flag: path for flag, path in outputs.items() if path is not None}
    for flag, path in given.items():
        check_output_path(path, flag=flag)
        refuse_overwrite([path], [checkpoint, *(data / part for part in DATASET_PARTS)], flag=flag)
    if len({os.path.realpath(p) for p in given.values()}) < len(given):
        raise ConfigError(f"{' and '.join(given)} name the same file {next(iter(given.values()))}; the second "
                          "would replace the first. Pass different files.")

def _print_panoptic(metrics: dict[str, Any], info: Any, title: str) -> None:
    console.print(title, highlight=False)
    summary = Table(show_header=True)
    for col in ("", "PQ", "SQ", "RQ", "classes"):
        summary.add_column(col, justify="left" if not col else "right")
    for suffix, label, n in (("", "all", "n"), ("_th", "things", "n_th"), ("_st", "stuff", "n_st")):
        summary.add_row(label, *(frac(metrics.get(f"{k}{suffix}")) for k in ("PQ", "SQ", "RQ")),
                        str(metrics.get(n, "-")))
    console.print(summary)
    console.print(f"implied semantic map: mIoU {frac(metrics.get('mean_iou'))}, pixel accuracy "
                  f"{frac(metrics.get('pixel_accuracy'))}; implied instances: mask AP {frac(metrics.get('mask_AP'))}, "
                  f"box AP {frac(metrics.get('box_AP'))}", highlight=False)
    things = set(info.options.get("thing_classes", []))
    per_class = Table(show_header=True)
    for col in ("class", "kind", "PQ", "SQ", "RQ", "IoU"):
        per_class.add_column(col, justify="left" if col in ("class", "kind") else "right")
    for i, name in enumerate(info.classes):
        per_class.add_row(name, "thing" if i in things else "stuff",
                          *(frac(_at(metrics.get(k), i)) for k in ("per_class_pq", "per_class_sq", "per_class_rq",
                                                                  "per_class_iou")))
    console.print(per_class)


# How each task's metrics are shown; a new task adds its table here.
RENDERERS = {SEMANTIC.name: _print_semantic, INSTANCE.name: _print_instance, PANOPTIC.name: _print_panoptic}


def _at(values: Any, i: int) -> Any:
    return values[i] if values is not None and i < len(values) else None


def frac(v: Any) -> str:
    """A fraction (0-1) with four decimals, as training prints it; ``-`` for undefined (None / NaN)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{float(v):.4f}"
