"""`seglab merge`: a semantic and an instance checkpoint as one panoptic checkpoint (one library call, a summary)."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.app import app, console


@app.command()
def merge(
    semantic: Path = typer.Argument(..., help="Semantic checkpoint (file or run directory): predicts every class."),
    instance: Path = typer.Argument(..., help="Instance checkpoint (file or run directory): its classes, matched by "
                                    "name among the semantic ones, are the things."),
    out: Path = typer.Option(..., "--out", help="Panoptic checkpoint to write (.pt)."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", help="Instances scoring below are dropped."),
    overlap_threshold: float = typer.Option(0.5, "--overlap-threshold", help="An instance whose mask is taken by "
                                            "higher-scored ones above this fraction is dropped."),
    stuff_area: int = typer.Option(128, "--stuff-area", help="Stuff segments smaller than this (pixels) are void."),
) -> None:
    """Merge a semantic and an instance model, trained separately, into one panoptic checkpoint."""
    from seglab.cli.progress import status
    from seglab.inference.merge_runs import merge_checkpoints

    with status("merging checkpoints"):
        path = merge_checkpoints(semantic, instance, out, score_threshold=score_threshold,
                                 overlap_threshold=overlap_threshold, stuff_area=stuff_area)
    console.print(f"merged {semantic} + {instance} -> {path} (panoptic_merge; score >= {score_threshold:g}, "
                  f"overlap <= {overlap_threshold:g}, stuff >= {stuff_area} px)")
