"""`seglab data convert masks-to-coco | coco-to-masks`: instance PNG folders <-> COCO JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.progress import track

from seglab.cli.app import console, convert_app, err_console

_ROOT = typer.Argument(..., help="Dataset root (images/<split>/ plus masks/<split>/ or annotations/).")
_SPLIT = typer.Option("train", "--split", help="Split to convert.")
_FORCE = typer.Option(False, "--force", help="Replace an existing output (never the input).")


def _bar(what: str) -> Any:
    def wrap(items: Sequence[Any]) -> Iterable[Any]:
        return track(items, description=what, console=err_console, transient=True)

    return wrap


@convert_app.command("masks-to-coco")
def masks_to_coco_cmd(
    root: Path = _ROOT,
    split: str = _SPLIT,
    out: Path | None = typer.Option(None, "--out", help="JSON to write [default: "
                                    "ROOT/annotations/instances_<split>.json]."),
    force: bool = _FORCE,
) -> None:
    """Instance-id PNGs + per-image label JSON -> one COCO instances JSON (compressed RLE)."""
    out = out or root / "annotations" / f"instances_{split}.json"
    from seglab.data.coco import masks_to_coco

    n = masks_to_coco(root, split, out, overwrite=force, track=_bar(f"masks -> COCO ({split})"))
    console.print(f"[green]wrote[/] {out}: {n['images']} images, {n['instances']} instances", highlight=False)


@convert_app.command("coco-to-masks")
def coco_to_masks_cmd(
    root: Path = _ROOT,
    split: str = _SPLIT,
    out: Path | None = typer.Option(None, "--out", help="Folder for <stem>.png + <stem>.json [default: "
                                    "ROOT/masks/<split>]."),
    force: bool = _FORCE,
) -> None:
    """A COCO instances JSON -> instance-id PNGs (k = instance k) + <stem>.json category lists."""
    out = out or root / "masks" / split
    from seglab.data.coco import coco_to_masks

    n = coco_to_masks(root, split, out, overwrite=force, track=_bar(f"COCO -> masks ({split})"))
    notes = [f"{n['skipped_crowd']} crowd regions skipped"] if n["skipped_crowd"] else []
    notes += [f"{n['hidden']} instances hidden by later ones"] if n["hidden"] else []
    console.print(f"[green]wrote[/] {n['images']} masks, {n['instances']} instances under {out}"
                  + (f" ({'; '.join(notes)})" if notes else ""), highlight=False)
