"""One way to show progress: library functions take ``callback(done, total)``; the CLI renders it here.

On a terminal: a transient rich bar (or spinner) on stderr, so stdout stays the result. Without one (nohup,
SLURM, CI logs, ``| tee``): a plain line on stderr every 30 s and 10 % of the job, whichever comes later
(``predict: 120/470 (26%) 0:41 elapsed``), and a closing line when any was printed; lines are never wrapped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seglab.cli.app import err_console


def _say(text: str) -> None:
    err_console.print(text, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool = True, every_s: float = 30.0,
                 every_frac: float = 0.1) -> Iterator[Callable[[int, int], None]]:
    """Show the progress of one job on stderr; yields ``callback(done, total)``.

    ``label`` may hold rich markup (escape file names). ``every_s`` / ``every_frac``: how often a plain line
    may be printed without a terminal (both must have passed since the last line).
    """
    if not enabled:
        yield lambda done, total: None
        return
    if not err_console.is_terminal:
        from seglab.engine.reporting import Throttle  # here: importing the engine loads torch

        lines, last = Throttle(every_s, every_frac), [0, 0]

        def report(done: int, total: int) -> None:
            last[:] = [done, total]
            if lines.due(done, total):
                _say(lines.line(f"{label}:", done, total))

        yield report
        if lines.lines:  # a log that showed the job going also shows it ending
            _say(lines.line(f"{label}: done", *last))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@contextlib.contextmanager
def status(label: str) -> Iterator[None]:
    """A job without steps (``export``): a spinner on a terminal; otherwise a line when it starts and one with
    its duration when it ends, so a log shows what ran and how long it took."""
    if err_console.is_terminal:
        with err_console.status(label):
            yield
        return
    started = time.monotonic()
    _say(f"{label} ...")
    yield
    _say(f"{label}: done in {time.monotonic() - started:.1f} s")
