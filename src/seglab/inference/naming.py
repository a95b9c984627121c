"""The names of what ``seglab predict`` writes: picture formats, unique output stems, files of an earlier run.

Every output name is planned before anything is written (:meth:`OutputNames.plan`), so two inputs never
write one file, an output never replaces an input (``fileio.refuse_overwrite``) and a rerun into the same
``--out`` knows which old files it would replace (:func:`old_files`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seglab.errors import ConfigError, OutputError

FORMATS = ("index", "color", "overlay", "panel")


def parse_formats(spec: str) -> tuple[str, ...]:
    """``"index,overlay"`` -> ``("index", "overlay")``: known formats, each once, at least one.

    Raises:
        ConfigError: an unknown or repeated format, naming the flags that take it.
    """
    names = tuple(s.strip() for s in str(spec).split(","))
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ConfigError(f"--save/--format {spec!r}: {', '.join(map(repr, unknown))} is not one of "
                          f"{', '.join(FORMATS)}. Several go comma-separated: --save index,overlay.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--save/--format {spec!r} names {', '.join(repeated)} twice. Name each format once.")
    return names


class OutputNames:
    """Unique output stems whose files (``files(stem)``) collide with no other output nor ``reserved`` name.

    ``a.png`` and ``a.jpg`` from two folders become ``a`` and ``a-2``; so does an input ``a_features.png``
    beside ``a.png`` when ``a``'s outputs include ``a_features.png``. A stem may hold a subfolder
    (``"street/a"``): ``--recursive`` mirrors the input folders under ``--out``.
    """

    def __init__(self, files: Callable[[str], list[str]], reserved: Sequence[str] = ()) -> None:
        self.files = files
        self.used: set[str] = set(reserved)
        self.stems: dict[Path, str] = {}

    def __call__(self, path: Path, folder: str = "") -> str:
        base = f"{folder}/{path.stem}" if folder else path.stem
        stem, n = base, 2
        while any(name in self.used for name in self.files(stem)):
            stem, n = f"{base}-{n}", n + 1
        self.used.update(self.files(stem))
        return stem

    def plan(self, out: Path, paths: Sequence[Path], folders: Mapping[Path, str] | None = None) -> list[Path]:
        """Name every input (in order, so names do not depend on which inputs fail); all files to write.

        ``folders`` gives an input's subfolder under ``out`` (``"a/b"``); inputs not in it go to ``out``.
        """
        folders = folders or {}
        self.stems = {p: self(p, folders.get(p, "")) for p in paths}
        return [out / name for name in sorted(self.used)]


@dataclass(frozen=True)
class OldFiles:
    """What ``--out`` already holds: the files this run would replace, and how many others it leaves."""

    replaced: list[Path]
    others: int


def old_files(out: Path, planned: Sequence[Path]) -> OldFiles:
    """The planned outputs that exist already, and the count of other files below ``out`` (left alone)."""
    if not out.is_dir():
        return OldFiles([], 0)
    replaced = [p for p in planned if p.is_file()]
    total = sum(len(files) for _, _, files in os.walk(out))
    return OldFiles(replaced, total - len(replaced))


def refuse_replacing(out: Path, old: OldFiles, flag: str = "--out") -> None:
    """Refuse to replace files of an earlier run unless the caller said so (``--exist-ok``).

    Raises:
        OutputError: naming the count, the first files, the others left alone and both fixes.
    """
    if not old.replaced:
        return
    shown = ", ".join(p.relative_to(out).as_posix() for p in old.replaced[:3])
    more = f" and {len(old.replaced) - 3} more" if len(old.replaced) > 3 else ""
    others = f" ({old.others} other file(s) there would be left as they are)" if old.others else ""
    raise OutputError(f"{flag} {out} holds {len(old.replaced)} file(s) of an earlier run that this run would "
                      f"replace: {shown}{more}. Pass --exist-ok to replace them{others}, or choose another "
                      f"{flag}.")
