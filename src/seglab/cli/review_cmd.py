"""`seglab review`: a worst-first error browser of a run on a split (one library call, then a summary)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from seglab.cli.app import app, console
from seglab.cli.progress import progress_bar


@app.command()
def review(
    run: Path | None = typer.Argument(None, help="Run directory (its best.pt) or checkpoint; none with --predictions."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (as `seglab evaluate --data`)."),
    split: str = typer.Option("val", "--split", help="Which split to review."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/review, or "
                                    "<predictions>_review)."),
    predictions: Path | None = typer.Option(None, "--predictions", help="Review saved outputs of any tool, no "
                                            "model: label PNGs, COCO results JSON, or panoptic.json + PNGs."),
    tta: str | None = typer.Option(None, "--tta", help="hflip | hflip,vflip | ... (semantic checkpoints)"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size in pixels (semantic)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Write an offline page of every image, worst first, with error maps, confusion, calibration and
    suspected label errors (RUN/review/index.html; open it in a browser)."""
    from seglab.review import review as run_review

    with progress_bar(f"review {escape(split)}") as callback:
        result = run_review(run, data, split, out, predictions=predictions, tta=tta, tile=tile, device=device,
                            callback=callback)
    worst = ", ".join(f"{s} ({'-' if v is None else f'{v:.3f}'})" for s, v in result.worst)
    console.print(f"Reviewed {result.num_images} images ({result.task}). Worst by {result.headline}: {worst}",
                  highlight=False, soft_wrap=True)
    if result.suspects:
        console.print("Suspected label errors (confident disagreement, px): "
                      + ", ".join(f"{s} ({n})" for s, n in result.suspects), highlight=False, soft_wrap=True)
    if result.ece is not None:
        console.print(f"Expected calibration error (15 bins): {result.ece:.4f}", highlight=False)
    console.print(f"Open {result.page}", highlight=False, soft_wrap=True)
