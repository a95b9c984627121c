"""`seglab data check`: the dataset doctor on the command line."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seglab.cli.app import console, data_app, err_console
from seglab.data.io import DEFAULT_MAX_PIXELS
from seglab.errors import DataError

if TYPE_CHECKING:
    from seglab.data.checks import Problem


class Task(str, enum.Enum):
    """Dataset kinds the doctor knows."""

    semantic = "semantic"
    instance = "instance"


@data_app.command("check")
def check(
    root: Path = typer.Argument(..., help="Dataset folder (images/<split>/, labels/<split>/)."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Number of classes K "
                                           "(default: lines of classes.txt)."),
    split: list[str] | None = typer.Option(None, "--split", help="Split to check (repeatable; default all)."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Label value that means 'ignore'."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels",
                                   help="Refuse larger images (decompression-bomb guard)."),
    task: Task = typer.Option(Task.semantic, "--task", help="semantic (folders) or instance (COCO)."),
) -> None:
    """Scan a dataset once and report every problem in one table (exit 0 clean, 2 with problems)."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Pass the folder that holds images/ and labels/.")
    splits = list(split) if split else None
    if task is Task.instance:
        problems = _check_instance(root, splits, max_pixels)
        scanned = ""
    else:
        problems, total = _check_semantic(root, splits, num_classes, ignore_index, max_pixels)
        scanned = f" ({total} files scanned)"
    from seglab.data.checks import render_problems

    if not problems:
        console.print(f"[green]ok[/]: {escape(str(root))} is clean{scanned}.", highlight=False, soft_wrap=True)
        return
    render_problems(problems, console, root=root)
    files = len({str(p.path) for p in problems})
    # A SeglabError (not typer.Exit) carries exit code 2 through seglab.cli.main in every mode.
    raise DataError(f"{len(problems)} problem(s) in {files} file(s) under {root}{scanned}; "
                    "fix them as the table says and run the check again.")


def _check_semantic(root: Path, splits: list[str] | None, num_classes: int | None, ignore_index: int,
                    max_pixels: int) -> tuple[list[Problem], int]:
    """Run the full doctor with a progress bar (on stderr, so stdout stays the report)."""
    from seglab.data.checks import check_dataset

    columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    seen = {"total": 0}
    with Progress(*columns, console=err_console, transient=True) as bar:
        job = bar.add_task("files", total=None)

        def progress(done: int, total: int) -> None:
            seen["total"] = total
            bar.update(job, completed=done, total=total)

        problems = check_dataset(root, splits=splits, num_classes=num_classes, ignore_index=ignore_index,
                                 max_pixels=max_pixels, progress=progress)
    return problems, seen["total"]


def _check_instance(root: Path, splits: list[str] | None, max_pixels: int) -> list[Problem]:
    from seglab.data.coco import check_instance_dataset

    return check_instance_dataset(root, splits, max_pixels)
