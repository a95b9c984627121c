"""What the torch-free runtime's writers share: the result record, the colour picture of a label map, PNG output.

Kept apart from :mod:`seglab.runtime.files` (the dispatcher and the semantic writer) so the instance writer
(:mod:`seglab.runtime.instance_files`) uses them without importing its dispatcher back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IGNORE_COLOR = (255, 0, 255)  # seglab.viz.IGNORE_COLOR (magenta)
OUT_OF_RANGE = (255, 255, 255)


@dataclass
class BundleResult:
    """What :func:`predict_bundle_files` wrote: count, failures (input, reason), the summary file."""

    out: Path
    written: int
    failures: list[tuple[str, str]] = field(default_factory=list)
    summary: Path | None = None
    detections: Path | None = None  # the shape of inference.outputs.PredictResult, so one report renders both
    replaced: int = 0
    kept: int = 0


def colorize(labels: np.ndarray, palette: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 picture of a class map, painted as ``seglab.viz.colorize`` paints it."""
    size = max(int(labels.max(initial=0)) + 1, len(palette))
    lut = np.empty((size, 3), dtype=np.uint8)
    lut[:] = OUT_OF_RANGE
    lut[: len(palette)] = palette
    out = lut[np.clip(labels, 0, size - 1)]
    if ignore_index is not None:
        out[labels == ignore_index] = IGNORE_COLOR
    return out


def gray_palette() -> np.ndarray:
    """256 gray levels: a label map stays readable as data where a bundle stores no palette."""
    return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)


def save_rgb(target: Path, rgb: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 picture as PNG, atomically."""
    from PIL import Image

    from seglab.fileio import atomic_path

    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def write_table(target: Path, columns: list[str], paths: list[Path], failures: list[tuple[str, str]],
                write_one: Callable[[Path], dict[str, Any]], callback: Callable[[int, int], None] | None) -> int:
    """``predictions.csv`` at ``target``: a row per input naming no image (``failures``), then ``write_one(path)``'s
    row per path. An input that fails (unreadable, bad channels) gets an error row and joins ``failures``; a write
    the disk refuses (OutputError) ends the run. Returns how many inputs were written."""
    import csv

    from seglab.errors import OutputError, SeglabError
    from seglab.fileio import atomic_path

    written = 0
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as fh:
        table = csv.DictWriter(fh, fieldnames=columns, restval="")
        table.writeheader()
        for item, reason in failures:
            table.writerow({"file": item, "status": f"error: {reason}"})
        for i, path in enumerate(paths):
            try:
                table.writerow(write_one(path))
                written += 1
            except OutputError:
                raise
            except (SeglabError, OSError) as e:
                failures.append((str(path), str(e)))
                table.writerow({"file": str(path), "status": f"error: {e}"})
            if callback is not None:
                callback(i + 1, len(paths))
    return written
