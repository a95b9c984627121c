"""The dataset doctor: scan a dataset once and report every problem together.

(Skeleton: `Problem` is the shared record; the scanners are filled in by the foundation work.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: which file, what is wrong, how to fix it."""

    path: Path | str
    problem: str
    fix: str
