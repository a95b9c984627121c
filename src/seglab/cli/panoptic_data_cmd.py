"""`seglab data convert ...` for panoptic data, and the panoptic doctor's run for `seglab data check`.

Registered on ``convert_app`` when :mod:`seglab.cli` loads its command modules; ``check_panoptic`` is what
``seglab data check`` calls when the folder is panoptic. Each command is one library call plus rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from seglab.cli.app import console, convert_app
from seglab.cli.progress import progress_bar

_ROOT = typer.Argument(..., help="Dataset root.")
_OUT = typer.Option(..., "--out", help="New (or empty) folder for the converted dataset, outside the input.")
_SPLITS = typer.Option(None, "--split", help="Split to convert (repeatable; default every split).")


def check_panoptic(root: Path, splits: list[str] | None, max_pixels: int) -> tuple[list, str]:
    """Run the panoptic doctor under a progress bar, print its warnings, return its errors and what was scanned."""
    from seglab.data.panoptic.checks import check_panoptic_dataset
    from seglab.data.problems import render_problems

    console.print(f"{escape(str(root))}: panoptic dataset", highlight=False, soft_wrap=True)
    with progress_bar("checking") as callback:
        report = check_panoptic_dataset(root, splits, max_pixels, callback=callback)
    if report.warnings:
        console.print(f"[yellow]{len(report.warnings)} warning(s)[/] (the data can be used as it is):",
                      highlight=False)
        render_problems(report.warnings, console, root=root)
    return report.errors, f" ({report.images} images scanned)"


def _done(what: str, out: Path, counts: dict[str, int]) -> None:
    said = ", ".join(f"{v} {k}" for k, v in counts.items())
    console.print(f"[green]wrote[/] {escape(what)} to {escape(str(out))}: {said}. Next: seglab data check "
                  f"{escape(str(out))}", highlight=False, soft_wrap=True)


def _run(what: str, out: Path, convert: Callable[[Callable[[int, int], None]], dict[str, int]]) -> None:
    with progress_bar(escape(what)) as callback:
        counts = convert(callback)
    _done(what, out, counts)


@convert_app.command("coco-panoptic-to-seglab")
def coco_panoptic_to_seglab_cmd(root: Path = _ROOT, out: Path = _OUT, split: list[str] | None = _SPLITS) -> None:
    """COCO panoptic (annotations/panoptic_<split>.json + PNGs) -> seglab's simple panoptic layout
    (images/, labels/, instances/, classes.txt, panoptic.json)."""
    from seglab.data.panoptic.convert import coco_panoptic_to_seglab

    _run("COCO panoptic -> seglab panoptic", out, lambda cb: coco_panoptic_to_seglab(root, out, split, callback=cb))


@convert_app.command("seglab-to-coco-panoptic")
def seglab_to_coco_panoptic_cmd(root: Path = _ROOT, out: Path = _OUT, split: list[str] | None = _SPLITS) -> None:
    """seglab's simple panoptic layout -> COCO panoptic (annotations/panoptic_<split>.json + RGB id PNGs)."""
    from seglab.data.panoptic.convert import seglab_to_coco_panoptic

    _run("seglab panoptic -> COCO panoptic", out, lambda cb: seglab_to_coco_panoptic(root, out, split, callback=cb))


@convert_app.command("panoptic-to-semantic")
def panoptic_to_semantic_cmd(root: Path = _ROOT, out: Path = _OUT, split: list[str] | None = _SPLITS) -> None:
    """Panoptic data (either layout) -> a semantic dataset (images/, labels/ of class indices, classes.txt)."""
    from seglab.data.panoptic.convert import panoptic_to_semantic

    _run("panoptic -> semantic", out, lambda cb: panoptic_to_semantic(root, out, split, callback=cb))


@convert_app.command("panoptic-to-instance")
def panoptic_to_instance_cmd(root: Path = _ROOT, out: Path = _OUT, split: list[str] | None = _SPLITS) -> None:
    """Panoptic data (either layout) -> COCO instances of its things (annotations/instances_<split>.json, RLE;
    crowd segments as iscrowd 1)."""
    from seglab.data.panoptic.convert import panoptic_to_instance

    _run("panoptic -> instance", out, lambda cb: panoptic_to_instance(root, out, split, callback=cb))


@convert_app.command("semantic-to-panoptic")
def semantic_to_panoptic_cmd(
    root: Path = _ROOT,
    out: Path = _OUT,
    things: str = typer.Option(..., "--things", help="Comma-separated names of the thing classes, as classes.txt "
                               "spells them (e.g. Car,Pedestrian)."),
    instances: Path | None = typer.Option(None, "--instances", help="Instance dataset (COCO or masks/) of the same "
                                          "images; without it each connected component of a thing class is one "
                                          "instance, so touching objects of one class merge."),
    split: list[str] | None = _SPLITS,
    min_area: int = typer.Option(0, "--min-area", help="Without --instances: components smaller than this (pixels) "
                                 "become a crowd region of their class (PQ neither matches nor misses them)."),
) -> None:
    """A semantic dataset -> seglab's simple panoptic layout (instances from --instances, or connected components:
    touching objects of one class then merge)."""
    from seglab.data.panoptic.from_semantic import semantic_to_panoptic

    names = [t.strip() for t in things.split(",") if t.strip()]
    _run("semantic -> panoptic", out,
         lambda cb: semantic_to_panoptic(root, out, names, instances=instances, splits=split, callback=cb,
                                         min_area=min_area))
