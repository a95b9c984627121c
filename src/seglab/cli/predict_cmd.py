"""`seglab predict`: masks for image files (one library call, ``predict_files``, then a summary)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from seglab.cli.app import app, console, err_console


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run directory."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    save: str | None = typer.Option(None, "--save", help="What to write per image, one or several comma-separated: "
                                    "index (palette PNG, default) | color | overlay | panel; e.g. index,overlay."),
    format: str | None = typer.Option(None, "--format", help="Synonym of --save."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Walk folders into their subfolders; the "
                                   "outputs mirror them under --out."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Replace what an earlier run wrote to --out (refused "
                                  "without it); other files there are always left as they are."),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size, e.g. 1024 (semantic)."),
    overlap: float | None = typer.Option(None, "--overlap", help="Tile overlap fraction (default 0.25)."),
    blend: str | None = typer.Option(None, "--blend", help="gaussian (default) | linear | none"),
    tta: str | None = typer.Option(None, "--tta", help="hflip | hflip,vflip | hflip,scales=0.75,1,1.25 (semantic)"),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities as <stem>_probs.npy."),
    features: str | None = typer.Option(None, "--features", help="Save a feature grid of this layer."),
    score_threshold: float | None = typer.Option(None, "--score-threshold", help="Instance checkpoints and "
                                                 "bundles: keep detections scoring at least this (default 0.5)."),
    alpha: float = typer.Option(0.5, "--alpha", help="Mask opacity for --save overlay."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images (or tiles) per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    refine: str | None = typer.Option(None, "--refine", help="sam: redraw each region's / detection's boundary with "
                                      "Segment Anything, prompted by its box (extra seglab\\[sam])."),
    sam_checkpoint: Path | None = typer.Option(None, "--sam-checkpoint", help="--refine sam: the SAM weight file."),
    sam_model: str = typer.Option("vit_b", "--sam-model", help="--refine sam: vit_b | vit_l | vit_h."),
) -> None:
    """Predict masks for images; writes <stem>.png (the prediction as data) and <stem>_<format>.png pictures.

    Semantic checkpoints: <stem>.png the index mask (--save index, the default), <stem>_<format>.png each
    picture (color, overlay, panel), predictions.csv with class pixel shares. Instance checkpoints:
    <stem>.png of instance ids (0 = background) + <stem>.json (category and score of each id),
    <stem>_<format>.png pictures for color/overlay/panel, predictions.json (COCO results) and
    predictions.csv (instances per class). A rerun into the same --out is refused unless --exist-ok.
    """
    given = {"tile": tile, "overlap": overlap, "blend": blend, "tta": tta, "probs": probs or None,
             "features": features, "score_threshold": score_threshold}
    if checkpoint.suffix.lower() == ".onnx":  # a bundle: onnxruntime, no torch (seglab.runtime)
        return _predict_bundle(checkpoint, inputs, out, save or format or "index", given, recursive=recursive,
                               refine=refine or sam_checkpoint, device=device, batch_size=batch_size, exist_ok=exist_ok)
    from seglab.checkpoint import load_checkpoint
    from seglab.cli.progress import progress_bar  # imports torch: only when the command runs
    from seglab.distributed import resolve_device
    from seglab.inference.outputs import check_options, predict_files

    options = _options(save, format, given, alpha=alpha, batch_size=batch_size)
    model, info = load_checkpoint(checkpoint, device=resolve_device(device))
    options = _planned_tta(options, info.config)
    check_options(info, options, given)
    options = _with_refiner(options, refine, sam_checkpoint, sam_model, info.task, device)
    with progress_bar("predict") as callback:
        result = predict_files(model, info, inputs, out, options, callback=callback, recursive=recursive,
                               exist_ok=exist_ok)
    _report(result, options.refine)


def _predict_bundle(path: Path, inputs: list[str], out: Path, save: str, given: dict[str, Any], *, recursive: bool,
                    refine: Any, device: str, batch_size: int, exist_ok: bool) -> None:
    """``seglab predict model.onnx``: the torch-free runtime (one call, ``predict_bundle_files``)."""
    from seglab.cli.progress import progress_bar
    from seglab.errors import ConfigError
    from seglab.runtime import RuntimeOptions, load_bundle, predict_bundle_files

    unsupported = {"--probs": given["probs"], "--features": given["features"], "--recursive": recursive,
                   "--refine/--sam-checkpoint": refine, "--device": device not in ("auto", "cpu")}
    flags = [k for k, v in unsupported.items() if v]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: not available with a .onnx bundle ({path}); predict with the run "
                          "(`seglab predict RUN ...`) for those, or drop them.")
    options = RuntimeOptions(tile=given["tile"], overlap=given["overlap"], blend=given["blend"], tta=given["tta"],
                             batch_size=batch_size, score_threshold=given["score_threshold"])
    bundle = load_bundle(path)
    if given["tta"] is None and bundle.tile.get("tta"):
        err_console.print(f"TTA {bundle.tile['tta']}: the run's recorded advice, stored in the bundle; --tta none "
                          "turns it off", highlight=False, soft_wrap=True)
    # the bar on a terminal only: the plain-line logger lives in the engine, which imports torch
    with progress_bar("predict", enabled=err_console.is_terminal) as callback:
        result = predict_bundle_files(bundle, inputs, out, format=save, options=options, exist_ok=exist_ok,
                                      callback=callback)
    _report(result)


def _options(save: str | None, format: str | None, given: dict[str, Any], *, alpha: float, batch_size: int):
    from seglab.errors import ConfigError
    from seglab.inference.outputs import PredictOptions
    from seglab.inference.tiling import TileOptions

    if save is not None and format is not None and save != format:
        raise ConfigError(f"--save {save} and --format {format}: --format is a synonym of --save; pass one.")
    tiles = {k: given[k] for k in ("tile", "overlap", "blend") if given[k] is not None}
    return PredictOptions(format=save or format or "index", tiles=TileOptions(batch_size=batch_size, **tiles),
                          tta=given["tta"], probs=bool(given["probs"]), features=given["features"],
                          score_threshold=given["score_threshold"], alpha=alpha)


def _planned_tta(options, config: dict):
    """``--tta``, else the plan's advice the run recorded (data.tta), said in a note."""
    from rich.markup import escape

    from seglab.plan.recipe import planned_tta

    tta, note = planned_tta(options.tta, config)
    if note:
        err_console.print(escape(note), highlight=False, soft_wrap=True)
    return dataclasses.replace(options, tta=tta)


def _with_refiner(options, refine: str | None, checkpoint: Path | None, model_type: str, task: str, device: str):
    """``options`` with ``--refine sam``'s refiner as the writers' hook (unchanged without --refine)."""
    from seglab.errors import ConfigError

    if refine is None:
        if checkpoint is not None:
            raise ConfigError("--sam-checkpoint is read by --refine sam; add --refine sam or drop it.")
        return options
    if refine != "sam":
        raise ConfigError(f"--refine {refine!r}: the one refiner is sam.")
    from seglab.distributed import resolve_device
    from seglab.sam import SamRefiner, load_sam, require_segment_anything

    require_segment_anything()
    if checkpoint is None:
        raise ConfigError("--refine sam needs --sam-checkpoint PATH (the SAM weights you downloaded; "
                          "`seglab sam types` lists the file of each type).")
    refiner = SamRefiner(load_sam(checkpoint, model_type, device=resolve_device(device)), task)
    return dataclasses.replace(options, refine=refiner)


def _report(result, refiner=None) -> None:
    from seglab.errors import DataError

    out = result.out
    extra = f", detections: {result.detections}" if result.detections else ""
    console.print(f"{result.written} prediction(s) written to {out} (summary: {result.summary}{extra})")
    if refiner is not None:
        c = refiner.counts
        console.print(f"SAM redrew {c.refined} mask(s); {c.kept} kept as the model drew them (SAM's mask "
                      f"overlapped them less than IoU {refiner.options.min_iou})")
    if result.replaced or result.kept:
        console.print(f"{out} already held files: {result.replaced} replaced by this run (--exist-ok), "
                      f"{result.kept} other(s) left as they are")
    if result.failures:
        lines = "\n".join(f"  {p}: {reason}" for p, reason in result.failures)
        raise DataError(f"{len(result.failures)} input(s) failed ({result.written} others were written to {out}); "
                        f"fix or remove them and rerun for those files:\n{lines}")
