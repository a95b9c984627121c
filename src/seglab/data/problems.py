"""What every dataset doctor reports, whichever the task: :class:`Problem` rows and how they are shown.

The semantic, instance and panoptic doctors (``data/<task>/checks.py``) and the preflight all return the same
rows (file, what is wrong, how to fix it), so the CLI renders any of them with one table and a one-message
error lists the first few the same way. The findings that are not about one task live here too: files of a
format seglab does not read, and the ``val`` split that training needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seglab.data.io import IMAGE_EXTS, LABEL_EXTS, unsupported_files, unsupported_finding
from seglab.data.layout import list_split, split_folders

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: which file, what is wrong, how to fix it."""

    path: Path | str
    problem: str
    fix: str


def unsupported_problems(folder: Path, kind: str = "images") -> list[Problem]:
    """One problem per file in ``folder`` of an image format seglab does not read (a ``.webp``): named as such,
    not as "label has no image" (:func:`seglab.data.io.unsupported_files`)."""
    exts = IMAGE_EXTS if kind == "images" else LABEL_EXTS
    return [Problem(p, *unsupported_finding(p, exts, kind)) for p in unsupported_files(folder, IMAGE_EXTS)]


def split_warnings(root: str | os.PathLike, task: str = "semantic") -> list[Problem]:
    """What ``seglab data check`` (all splits) says about the splits training needs: a dataset with images but no
    ``val`` split, or an empty one, is clean file by file, yet ``seglab train`` stops on it (it validates on
    ``val``). Warnings, not problems: each file is fine and other tools may not need val.
    """
    root = Path(root)
    splits = split_folders(root, "images")
    if not splits:
        return []
    if task == "semantic":
        fix = (f"make one: `seglab data split {root} --val 0.2 --out {root}_split` (copies; the originals stay), or "
               "move some images and their labels to images/val/ and labels/val/")
    else:
        fix = "move some images, with their masks or annotations, to a val split (images/val/ and its labels)"
    if "val" not in splits:
        return [Problem(root / "images" / "val", f"no val split (found {', '.join(splits)}): `seglab train` "
                        "validates on val and stops without one", fix)]
    if task != "semantic" and not list_split(root / "images" / "val"):  # the semantic doctor reports this itself
        return [Problem(root / "images" / "val", "the val split is empty: `seglab train` validates on it", fix)]
    return []


def summarize_problems(problems: list[Problem], limit: int = 10) -> str:
    """The first ``limit`` problems as ``- file: problem`` lines (for one-message errors)."""
    lines = [f"  - {p.path}: {p.problem}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def render_problems(problems: list[Problem], console: Console, root: str | os.PathLike | None = None) -> None:
    """Print every problem as one rich table (file, problem, fix) on the caller's ``console``.

    Paths are shown relative to ``root`` if given. The CLI passes its console; nothing here prints alone.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, header_style="bold")
    table.add_column("file", no_wrap=True, style="cyan")
    table.add_column("problem", overflow="fold")
    table.add_column("fix", style="green", overflow="fold")  # fold, never cut: fixes are commands to copy
    for p in problems:
        # Text cells: file names and messages may hold '[...]', which rich would read as markup.
        table.add_row(Text(_display_path(p.path, root)), Text(p.problem), Text(p.fix))
    console.print(table)


def _display_path(path: Path | str, root: str | os.PathLike | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
