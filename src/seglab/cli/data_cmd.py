"""`seglab data check|stats|synth|convert ...`: every dataset command, each a thin call into seglab.data.

Long jobs get a transient rich progress bar on stderr (stdout stays the result) fed by the library's
``callback(done, total)``; nothing in seglab.data prints.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from seglab.cli.app import console, convert_app, data_app
from seglab.cli.progress import progress_bar
from seglab.data.io import DEFAULT_MAX_PIXELS
from seglab.errors import ConfigError, DataError
from seglab.fileio import atomic_write_text, check_output_path, refuse_overwrite


def _progress(what: str) -> contextlib.AbstractContextManager[Callable[[int, int], None]]:
    """The shared CLI progress bar, drawn only on a terminal (off one, rich would still write a newline)."""
    return progress_bar(escape(what))


class Task(str, enum.Enum):
    """Dataset kinds the doctor knows."""

    semantic = "semantic"
    instance = "instance"
    panoptic = "panoptic"


@data_app.command("check")
def check(
    root: Path = typer.Argument(..., help="Dataset folder (images/<split>/, labels/<split>/)."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Number of classes K "
                                           "(default: lines of classes.txt)."),
    split: list[str] | None = typer.Option(None, "--split", help="Split to check (repeatable; default all)."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Label value that means 'ignore'."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels",
                                   help="Refuse larger images (decompression-bomb guard)."),
    task: Task | None = typer.Option(None, "--task", help="semantic (images/ + labels/), instance (COCO "
                                     "annotations or masks/) or panoptic. Default: detected from the folder."),
) -> None:
    """Scan a dataset once and report every problem in one table (exit 0 clean, 2 with problems)."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Pass the folder that holds images/ and labels/.")
    splits = list(split) if split else None
    task = task or _detected(root)
    if task is Task.instance:
        from seglab.data.instance.checks import check_instance_dataset

        problems, scanned = check_instance_dataset(root, splits, max_pixels), ""
    elif task is Task.panoptic:
        from seglab.cli.panoptic_data_cmd import check_panoptic

        problems, scanned = check_panoptic(root, splits, max_pixels)
    else:
        problems, total = _check_semantic(root, splits, num_classes, ignore_index, max_pixels)
        scanned = f" ({total} files scanned)"
    from seglab.data.problems import render_problems, split_warnings

    warnings = split_warnings(root, task.value) if splits is None else []
    if warnings:  # clean files, yet training would stop: say so (issue 29: "data check says the data is clean")
        console.print(f"[yellow]{len(warnings)} warning(s)[/] (the files are fine; training needs this):",
                      highlight=False)
        render_problems(warnings, console, root=root)
    if not problems:
        console.print(f"[green]ok[/]: {escape(str(root))} is clean{scanned}.", highlight=False, soft_wrap=True)
        return
    render_problems(problems, console, root=root)
    files = len({str(p.path) for p in problems})
    # A SeglabError (not typer.Exit) carries exit code 2 through seglab.cli.main in every mode.
    raise DataError(f"{len(problems)} problem(s) in {files} file(s) under {root}{scanned}; "
                    "fix them as the table says and run the check again.")


def _detected(root: Path) -> Task:
    """The dataset kind the folder holds, said in one line when it is not the semantic default."""
    from seglab.data.layout import detect_task

    task = Task(detect_task(root))
    if task is Task.instance:
        console.print(f"{escape(str(root))}: instance dataset (COCO annotations or masks/, no labels/)",
                      highlight=False, soft_wrap=True)
    return task


def _check_semantic(root: Path, splits: list[str] | None, num_classes: int | None, ignore_index: int,
                    max_pixels: int) -> tuple[list, int]:
    """The full semantic doctor under a progress bar; returns the problems and the number of files scanned."""
    from seglab.data.semantic.checks import check_dataset

    seen = {"total": 0}
    with _progress("checking") as callback:
        def count(done: int, total: int) -> None:
            seen["total"] = total
            callback(done, total)

        problems = check_dataset(root, splits=splits, num_classes=num_classes, ignore_index=ignore_index,
                                 max_pixels=max_pixels, callback=count)
    return problems, seen["total"]


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
    """Per-class pixel counts, frequencies and class weights, plus per-channel mean/std for Normalize
    (instance data: objects and images per class, object sizes)."""
    from seglab.data.layout import DATASET_PARTS
    from seglab.data.semantic.stats import compute_stats

    if json_out is not None:  # a bad path fails now, not after the scan
        check_output_path(json_out, flag="--json")
        refuse_overwrite([json_out], [root / part for part in DATASET_PARTS], flag="--json")
    if root.is_dir() and _detected(root) is Task.instance:
        _instance_stats(root, split, json_out)
        return
    if root.is_dir() and not (root / "labels").is_dir() and _detected(root) is Task.panoptic:
        raise ConfigError(f"{root}: COCO panoptic data; class statistics read label maps. Convert it first: seglab "
                          f"data convert coco-panoptic-to-seglab {root} --out DIR, then seglab data stats DIR.")
    with _progress(f"stats {split}") as callback:
        s = compute_stats(root, split, num_classes, ignore_index, callback=callback, channels=channels, geometry=True)
    title = f"{root} [{split}]: {s['num_images']} images, {s['ignored_pixels']} ignored pixels"
    table = Table(title=escape(title))
    for col in ("#", "class", "pixels", "frequency", "images", "inverse w", "median w"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(s["classes"]):
        table.add_row(str(i), escape(name), f"{s['pixel_counts'][i]:,}", f"{s['frequencies'][i]:.4f}",
                      str(s["images_per_class"][i]), f"{s['weights_inverse'][i]:.4g}",
                      f"{s['weights_median'][i]:.4g}")
    console.print(table)
    _print_geometry(s)
    if s["absent_classes"]:
        console.print(f"[yellow]absent from {escape(split)}[/] (weight 0): {escape(', '.join(s['absent_classes']))}")
    fmt = ",".join
    console.print(f"mean: {fmt(f'{v:.4f}' for v in s['mean'])}   std: {fmt(f'{v:.4f}' for v in s['std'])}",
                  highlight=False)
    console.print("For training (inverse frequency, then median-frequency balancing):", highlight=False)
    for key in ("weights_inverse", "weights_median"):
        console.print(f"  --class-weights {fmt(f'{w:.4g}' for w in s[key])}", highlight=False, soft_wrap=True)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(s, indent=2) + "\n")
        console.print(f"wrote {escape(str(json_out))}", highlight=False)


def _print_geometry(s: dict) -> None:
    """The object scale (connected components of the truth, a sample of the split) and the image sizes."""
    from seglab.data.label_geometry import ClassScale, Geometry, geometry_table

    g = s["geometry"]
    header, *rows = geometry_table(s["classes"], Geometry(g["boundary"], [ClassScale(**c) for c in g["scale"]]))
    table = Table(title="object scale (connected components of the truth; width = 2 / boundary share)")
    for col in header:
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in rows:
        table.add_row(*map(escape, row))
    console.print(table)
    z = s["image_sizes"]
    console.print(f"image longer side: {z['long_min']}-{z['long_max']} px (median {z['long_median']}); "
                  f"{z['gray_images']} of {s['num_images']} images gray", highlight=False)


def _instance_stats(root: Path, split: str, json_out: Path | None) -> None:
    from seglab.data.instance.stats import instance_stats

    s = instance_stats(root, split)
    per_image = s["objects_per_image"]
    table = Table(title=escape(f"{root} [{split}]: {s['num_images']} images, {s['num_objects']} objects "
                               f"({per_image['mean']:.1f} per image, at most {per_image['max']})"))
    for col in ("id", "class", "objects", "images", "median area px", "small", "medium", "large"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for cat, name, row in zip(s["category_ids"], s["classes"], s["per_class"], strict=True):
        table.add_row(str(cat), escape(name), str(row["objects"]), str(row["images"]), f"{row['median_area']:.0f}",
                      str(row["small"]), str(row["medium"]), str(row["large"]))
    console.print(table)
    console.print("small < 32x32 px <= medium < 96x96 px <= large (COCO's buckets, at the stored image size)",
                  highlight=False)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(s, indent=2) + "\n")
        console.print(f"wrote {escape(str(json_out))}", highlight=False)


class SynthKind(str, enum.Enum):
    """Procedural datasets `seglab data synth` can write."""

    shapes = "shapes"
    digits = "digits"
    panoptic = "panoptic"


@data_app.command("synth")
def synth(
    kind: SynthKind = typer.Option(SynthKind.shapes, "--kind", help="shapes (4 classes), digits (11) or "
                                   "panoptic (3 stuff + 3 thing classes, seglab's panoptic layout)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (new, empty, or an earlier synth output)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Training images (shapes, panoptic 200; digits 500)."),
    n_val: int | None = typer.Option(None, "--n-val", help="Validation images (shapes, panoptic 50; digits 100)."),
    size: int | None = typer.Option(None, "--size", help="Image side in px (shapes, panoptic 96; digits 64)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same dataset."),
) -> None:
    """Write a procedural demo dataset (semantic labels, instance masks and COCO JSON)."""
    from seglab.data.panoptic.synthetic import make_panoptic
    from seglab.data.synthetic import make_digits, make_shapes

    make = {SynthKind.shapes: make_shapes, SynthKind.digits: make_digits, SynthKind.panoptic: make_panoptic}[kind]
    given = {k: v for k, v in {"n_train": n_train, "n_val": n_val, "size": size}.items() if v is not None}
    with _progress(f"synth {kind.value}") as callback:
        root = make(out, seed=seed, callback=callback, **given)
    console.print(f"[green]wrote[/] {kind.value} dataset to {escape(str(root))}. Next: seglab data check "
                  f"{escape(str(root))}", highlight=False)


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


def _convert(what: str, run: Callable[[Callable[[int, int], None]], list[Path]], out: Path) -> None:
    """Run one label converter under a progress bar and say how many files it wrote."""
    with _progress(what) as callback:
        paths = run(callback)
    console.print(f"[green]wrote[/] {len(paths)} label files under {escape(str(out))}", highlight=False)


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
    from seglab.data.semantic import convert as conv

    color = _rgb(ignore_color)
    _convert("rgb -> index", lambda cb: conv.rgb_to_index(src, out, palette, unknown_to_ignore, ignore_index,
                                                           color, callback=cb), out)


@convert_app.command("index-to-rgb")
def index_to_rgb(
    src: Path = _SRC,
    palette: Path = _PALETTE,
    out: Path = _OUT,
    ignore_index: int = typer.Option(255, "--ignore-index", help="Label value that means 'ignore'."),
    ignore_color: str | None = typer.Option(None, "--ignore-color", help="R,G,B to paint ignored pixels."),
) -> None:
    """Class-index PNGs -> color-coded RGB PNGs (for viewing or tools that want colors)."""
    from seglab.data.semantic import convert as conv

    color = _rgb(ignore_color)
    _convert("index -> rgb", lambda cb: conv.index_to_rgb(src, out, palette, ignore_index, color, callback=cb),
             out)


@convert_app.command("binary")
def binary(
    src: Path = _SRC,
    out: Path = _OUT,
    threshold: int = typer.Option(128, "--threshold", help="Pixels >= threshold become 1."),
) -> None:
    """0/255 masks -> 0/1 class-index labels."""
    from seglab.data.semantic import convert as conv

    _convert("binary -> index", lambda cb: conv.binary_to_index(src, out, threshold, callback=cb), out)


@convert_app.command("palette-to-l")
def palette_to_l(src: Path = _SRC, out: Path = _OUT) -> None:
    """Palette ('P') PNG labels -> plain grayscale PNGs with the same indices."""
    from seglab.data.semantic import convert as conv

    _convert("palette -> L", lambda cb: conv.palette_to_l(src, out, callback=cb), out)


_ROOT = typer.Argument(..., help="Dataset root (images/<split>/ plus masks/<split>/ or annotations/).")
_SPLIT = typer.Option("train", "--split", help="Split to convert.")
_FORCE = typer.Option(False, "--force", help="Replace an existing output (never the input).")


@convert_app.command("masks-to-coco")
def masks_to_coco_cmd(
    root: Path = _ROOT,
    split: str = _SPLIT,
    out: Path | None = typer.Option(None, "--out", help="JSON to write \\[default: "
                                    "ROOT/annotations/instances_<split>.json]."),
    force: bool = _FORCE,
) -> None:
    """Instance-id PNGs + per-image label JSON -> one COCO instances JSON (compressed RLE)."""
    from seglab.data.instance.convert import masks_to_coco

    out = out or root / "annotations" / f"instances_{split}.json"
    with _progress(f"masks -> COCO ({split})") as callback:
        n = masks_to_coco(root, split, out, overwrite=force, callback=callback)
    console.print(f"[green]wrote[/] {escape(str(out))}: {n['images']} images, {n['instances']} instances",
                  highlight=False)


@convert_app.command("coco-to-masks")
def coco_to_masks_cmd(
    root: Path = _ROOT,
    split: str = _SPLIT,
    out: Path | None = typer.Option(None, "--out", help="Folder for <stem>.png + <stem>.json \\[default: "
                                    "ROOT/masks/<split>]."),
    force: bool = _FORCE,
) -> None:
    """A COCO instances JSON -> instance-id PNGs (k = instance k) + <stem>.json category lists."""
    from seglab.data.instance.convert import coco_to_masks

    out = out or root / "masks" / split
    with _progress(f"COCO -> masks ({split})") as callback:
        n = coco_to_masks(root, split, out, overwrite=force, callback=callback)
    notes = [f"{n['skipped_crowd']} crowd regions skipped"] if n["skipped_crowd"] else []
    notes += [f"{n['hidden']} instances hidden by later ones"] if n["hidden"] else []
    console.print(f"[green]wrote[/] {n['images']} masks, {n['instances']} instances under {escape(str(out))}"
                  + (f" ({'; '.join(notes)})" if notes else ""), highlight=False)
