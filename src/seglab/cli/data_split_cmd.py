"""`seglab data split`: flat images/ + labels/ -> seglab's train/val layout (library: data/split.py).

A module of its own beside `cli/data_cmd.py` (which it registers on, as `cli/panoptic_data_cmd.py` does): that
file is near the size prompt.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from seglab.cli.app import console, data_app
from seglab.cli.progress import progress_bar


@data_app.command("split")
def split(
    root: Path = typer.Argument(..., help="Folder with flat images/ and labels/ (matching stems), or one with "
                                "only images/train/ + labels/train/."),
    val: float = typer.Option(0.2, "--val", help="Share of the pairs put in val (at least one; 0 < VAL < 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random division: the same seed gives the same split."),
    out: Path | None = typer.Option(None, "--out", help="New dataset folder (default: ROOT_split beside ROOT); "
                                    "must be new or empty and outside ROOT."),
    link: bool = typer.Option(False, "--link/--copy", help="Symbolic links to the originals (they must stay where "
                              "they are) or copies (the default)."),
) -> None:
    """Divide image/label pairs into images/{train,val}/ + labels/{train,val}/ in a new folder; classes.txt and
    palette.txt are copied over, the originals are never touched, split.json records what went where."""
    from seglab.data.split import split_dataset

    out = out if out is not None else root.parent / f"{root.name}_split"
    with progress_bar("splitting") as callback:
        result = split_dataset(root, out, val=val, seed=seed, link=link, callback=callback)
    files = "links to the originals" if result.link else "copies"
    console.print(f"[green]wrote[/] {escape(str(result.out))}: {len(result.train)} train and {len(result.val)} val "
                  f"pairs ({files}, seed {seed}). Next: seglab data check {escape(str(result.out))}",
                  highlight=False, soft_wrap=True)
