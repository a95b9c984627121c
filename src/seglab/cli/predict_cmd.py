"""`seglab predict`: masks for image files (one library call, ``predict_files``, then a summary)."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.app import app, console
from seglab.cli.progress import progress_bar


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run directory."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    format: str = typer.Option("index", "--format", help="index (palette PNG) | color | overlay | panel"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size, e.g. 1024 (semantic)."),
    overlap: float | None = typer.Option(None, "--overlap", help="Tile overlap fraction (default 0.25)."),
    blend: str | None = typer.Option(None, "--blend", help="gaussian (default) | linear | none"),
    tta: str | None = typer.Option(None, "--tta", help="flip | flip,scales=0.75,1,1.25 (semantic)"),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities as <stem>_probs.npy."),
    features: str | None = typer.Option(None, "--features", help="Save a feature grid of this layer."),
    score_threshold: float | None = typer.Option(None, "--score-threshold", help="Instance checkpoints: keep "
                                                 "detections scoring at least this (default 0.5)."),
    alpha: float = typer.Option(0.5, "--alpha", help="Mask opacity for --format overlay."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images (or tiles) per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Predict masks for images; writes <stem>.png per input and predictions.csv.

    Semantic checkpoints: <stem>.png in --format, predictions.csv with class pixel shares. Instance
    checkpoints: <stem>.png of instance ids (0 = background) + <stem>.json (category and score of each id),
    <stem>_<format>.png pictures for color/overlay/panel, predictions.json (COCO results) and
    predictions.csv (instances per class).
    """
    from seglab.checkpoint import load_checkpoint
    from seglab.distributed import resolve_device
    from seglab.errors import DataError
    from seglab.inference.outputs import PredictOptions, check_options, predict_files
    from seglab.inference.tiling import TileOptions

    given = {"tile": tile, "overlap": overlap, "blend": blend, "tta": tta, "probs": probs or None,
             "features": features, "score_threshold": score_threshold}
    tiles = {k: v for k, v in {"tile": tile, "overlap": overlap, "blend": blend}.items() if v is not None}
    options = PredictOptions(format=format, tiles=TileOptions(batch_size=batch_size, **tiles), tta=tta,
                             probs=probs, features=features, score_threshold=score_threshold, alpha=alpha)
    model, info = load_checkpoint(checkpoint, device=resolve_device(device))
    check_options(info, options, given)
    with progress_bar("predict") as callback:
        result = predict_files(model, info, inputs, out, options, callback=callback)
    extra = f", detections: {result.detections}" if result.detections else ""
    console.print(f"{result.written} prediction(s) written to {out} (summary: {result.summary}{extra})")
    if result.failures:
        lines = "\n".join(f"  {p}: {reason}" for p, reason in result.failures)
        raise DataError(f"{len(result.failures)} input(s) failed ({result.written} others were written to {out}); "
                        f"fix or remove them and rerun for those files:\n{lines}")
