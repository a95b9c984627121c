"""One way to show progress: library functions take ``callback(done, total)``; the CLI renders it here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seglab.cli.app import err_console


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A transient rich progress bar on stderr (stdout stays the result); yields ``callback(done, total)``.

    Off when stderr is not a terminal (logs, CI): there a bar would only leave blank lines behind.
    """
    if not (enabled and err_console.is_terminal):
        yield lambda done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
