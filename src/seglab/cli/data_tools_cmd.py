"""`seglab data stats|synth` and `seglab data convert rgb-to-index|index-to-rgb|binary|palette-to-l`."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from seglab.cli.app import console, convert_app, data_app
from seglab.data import convert as conv
from seglab.errors import ConfigError
from seglab.fileio import atomic_write_text


class SynthKind(str, enum.Enum):
    """Procedural datasets `seglab data synth` can write."""

    shapes = "shapes"
    digits = "digits"


@data_app.command("stats")
def stats(
    root: Path = typer.Argument(..., help="Dataset folder (images/<split>/, labels/<split>/)."),
    split: str = typer.Option("train", "--split", help="Split to measure (weights come from train)."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="K (default: classes.txt or max+1)."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Label value that means 'ignore'."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write every number to this JSON file."),
    channels: int | None = typer.Option(None, "--channels", help="Read images with 1 (gray) or 3 (RGB) "
                                        "channels for mean/std, as the model's in_channels (default auto)."),
) -> None:
    """Per-class pixel counts, frequencies and class weights, plus per-channel mean/std for Normalize."""
    from seglab.data.stats import compute_stats

    s = compute_stats(root, split, num_classes, ignore_index, progress=True, channels=channels)
    title = f"{root} [{split}]: {s['num_images']} images, {s['ignored_pixels']} ignored pixels"
    table = Table(title=escape(title))
    for col in ("#", "class", "pixels", "frequency", "images", "inverse w", "median w"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(s["classes"]):
        table.add_row(str(i), name, f"{s['pixel_counts'][i]:,}", f"{s['frequencies'][i]:.4f}",
                      str(s["images_per_class"][i]), f"{s['weights_inverse'][i]:.4g}",
                      f"{s['weights_median'][i]:.4g}")
    console.print(table)
    if s["absent_classes"]:
        console.print(f"[yellow]absent from {split}[/] (weight 0): {', '.join(s['absent_classes'])}")
    fmt = ",".join
    console.print(f"mean: {fmt(f'{v:.4f}' for v in s['mean'])}   std: {fmt(f'{v:.4f}' for v in s['std'])}",
                  highlight=False)
    console.print("For training (inverse frequency, then median-frequency balancing):", highlight=False)
    for key in ("weights_inverse", "weights_median"):
        console.print(f"  --class-weights {fmt(f'{w:.4g}' for w in s[key])}", highlight=False, soft_wrap=True)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(s, indent=2) + "\n")
        console.print(f"wrote {json_out}", highlight=False)


@data_app.command("synth")
def synth(
    kind: SynthKind = typer.Option(SynthKind.shapes, "--kind", help="shapes (4 classes) or digits (11)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (new, empty, or an earlier synth output)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Training images (shapes 200, digits 500)."),
    n_val: int | None = typer.Option(None, "--n-val", help="Validation images (shapes 50, digits 100)."),
    size: int | None = typer.Option(None, "--size", help="Image side in px (shapes 96, digits 64)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same dataset."),
) -> None:
    """Write a procedural demo dataset (semantic labels, instance masks and COCO JSON)."""
    from seglab.data.synthetic import make_digits, make_shapes

    make = make_shapes if kind is SynthKind.shapes else make_digits
    given = {k: v for k, v in {"n_train": n_train, "n_val": n_val, "size": size}.items() if v is not None}
    root = make(out, seed=seed, progress=True, **given)
    console.print(f"[green]wrote[/] {kind.value} dataset to {root}. Next: seglab data check {root}",
                  highlight=False)


def _rgb(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        rgb = tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ConfigError(f"--ignore-color: expected R,G,B with values 0-255, got {text!r}.")
    return rgb  # type: ignore[return-value]


def _done(paths: list[Path], out: Path) -> None:
    console.print(f"[green]wrote[/] {len(paths)} label files under {out}", highlight=False)


_SRC = typer.Argument(..., help="Folder of label files, or a dataset root with labels/<split>/.")
_OUT = typer.Option(..., "--out", help="Output folder (must differ from the input).")
_PALETTE = typer.Option(..., "--palette", help="'r g b' (or 'name r g b') per line; line i = class i.")


@convert_app.command("rgb-to-index")
def rgb_to_index(
    src: Path = _SRC,
    palette: Path = _PALETTE,
    out: Path = _OUT,
    unknown_to_ignore: bool = typer.Option(False, "--unknown-to-ignore",
                                           help="Map colors not in the palette to ignore."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Index written for ignored pixels."),
    ignore_color: str | None = typer.Option(None, "--ignore-color", help="R,G,B color meaning 'ignore'."),
) -> None:
    """Color-coded RGB labels -> single-channel class-index PNGs."""
    _done(conv.rgb_to_index(src, out, palette, unknown_to_ignore, ignore_index, _rgb(ignore_color),
                            progress=True), out)


@convert_app.command("index-to-rgb")
def index_to_rgb(
    src: Path = _SRC,
    palette: Path = _PALETTE,
    out: Path = _OUT,
    ignore_index: int = typer.Option(255, "--ignore-index", help="Label value that means 'ignore'."),
    ignore_color: str | None = typer.Option(None, "--ignore-color", help="R,G,B to paint ignored pixels."),
) -> None:
    """Class-index PNGs -> color-coded RGB PNGs (for viewing or tools that want colors)."""
    _done(conv.index_to_rgb(src, out, palette, ignore_index, _rgb(ignore_color), progress=True), out)


@convert_app.command("binary")
def binary(
    src: Path = _SRC,
    out: Path = _OUT,
    threshold: int = typer.Option(128, "--threshold", help="Pixels >= threshold become 1."),
) -> None:
    """0/255 masks -> 0/1 class-index labels."""
    _done(conv.binary_to_index(src, out, threshold, progress=True), out)


@convert_app.command("palette-to-l")
def palette_to_l(src: Path = _SRC, out: Path = _OUT) -> None:
    """Palette ('P') PNG labels -> plain grayscale PNGs with the same indices."""
    _done(conv.palette_to_l(src, out, progress=True), out)
