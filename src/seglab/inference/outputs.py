"""Everything ``seglab predict`` writes, callable from Python: ``predict_files(model, info, inputs, out)``.

Per input image the task's writer (:mod:`seglab.inference.writers`) writes its mask and pictures, in one
or several formats in one pass; both tasks write ``predictions.csv``, one row per input (errors included),
instance checkpoints ``predictions.json`` (COCO results) too. Folders given with ``recursive`` are walked
into their subfolders, which the outputs mirror under ``out``. Every file is written atomically; an
unreadable input is reported and the others are still written. Every output name is planned before
anything is written (:mod:`seglab.inference.naming`): one that would replace an input (``--out`` the input
folder) or another output is refused; files of an earlier run in ``out`` are replaced only with
``exist_ok`` (other files there are left as they are); a file-system failure (full disk, read-only) ends
the run.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import DataError, SeglabError
from seglab.inference.naming import FORMATS, OutputNames, old_files, parse_formats, refuse_replacing
from seglab.inference.panoptic_writer import PanopticWriter
from seglab.inference.source import find_images, read_ahead
from seglab.inference.writers import (
    InstanceWriter,
    PredictOptions,
    SemanticWriter,
    class_palette,
    semantic_only,
)
from seglab.tasks import INSTANCE, PANOPTIC, SEMANTIC

__all__ = ["FORMATS", "WRITERS", "InstanceWriter", "OutputNames", "PanopticWriter", "PredictOptions", "PredictResult",
           "SemanticWriter", "check_options", "class_palette", "parse_formats", "predict_files", "semantic_only"]

Progress = Callable[[int, int], None]

# The writer of each task; a new task adds its writer here (same members: refuse, files, names, predict, write,
# finish, columns, detections_path).
WRITERS: dict[str, Any] = {SEMANTIC.name: SemanticWriter, INSTANCE.name: InstanceWriter,
                           PANOPTIC.name: PanopticWriter}


@dataclass
class PredictResult:
    """What :func:`predict_files` wrote: counts, the summary files, every input that failed, and what
    ``out`` held before: ``replaced`` files of an earlier run (with ``exist_ok``), ``kept`` other files."""

    out: Path
    written: int
    failures: list[tuple[str, str]]
    summary: Path
    detections: Path | None = None
    replaced: int = 0
    kept: int = 0


def predict_files(model: nn.Module, info: CheckpointInfo, inputs: Sequence[str | Path], out: str | Path,
                  options: PredictOptions | None = None, callback: Progress | None = None, *,
                  recursive: bool = False, exist_ok: bool = False) -> PredictResult:
    """Predict every image named by ``inputs`` (files, folders, globs) and write the results under ``out``.

    ``recursive`` walks folders into their subfolders and mirrors them under ``out`` (``in/a/b.png`` ->
    ``out/a/b.png``). Outputs of an earlier run in ``out`` are refused unless ``exist_ok``, which replaces
    them; files this run does not write are left as they are either way.

    Raises:
        ConfigError: options that do not apply to the checkpoint's task.
        DataError: no input names any image.
        OutputError: ``out`` is a file or not writable, an output would replace an input or (without
            ``exist_ok``) a file of an earlier run (nothing is written then), or the file system refuses a
            write (full disk, ...).
    """
    from seglab.fileio import check_output_path, refuse_overwrite

    options = options or PredictOptions()
    check_options(info, options)
    check_output_path(out, directory=True)
    writer = WRITERS[info.task](Path(out), info, options, model)
    found = find_images(inputs, recursive=recursive, skip=out)
    if not found.paths and not found.failures:
        raise DataError(f"no images found in {', '.join(map(str, inputs))} (extensions: png, jpg, tif, bmp).")
    planned = writer.names.plan(writer.out, found.paths, found.folders)
    refuse_overwrite(planned, [*found.paths, *filter(None, [info.path])])
    old = old_files(writer.out, planned)
    if not exist_ok:
        refuse_replacing(writer.out, old)
    n_ok = _stream(found.paths, found.failures, writer, info.image_channels, 2 * options.tiles.batch_size,
                   callback)
    return PredictResult(Path(out), n_ok, found.failures, Path(out) / "predictions.csv", writer.detections_path,
                         replaced=len(old.replaced), kept=old.others)


def check_options(info: CheckpointInfo, options: PredictOptions, given: dict[str, Any] | None = None) -> None:
    """Refuse options that do not apply to the checkpoint's task, naming them as the CLI flags.

    ``given`` maps option names to the values the user set (``None`` = not set); without it they are
    read from ``options`` (anything not at its default counts as given).
    """
    if given is None:
        default = PredictOptions()
        given = {"tile": options.tiles.tile, "overlap": _changed(options.tiles.overlap, default.tiles.overlap),
                 "blend": _changed(options.tiles.blend, default.tiles.blend), "tta": options.tta,
                 "probs": options.probs or None, "features": options.features,
                 "score_threshold": options.score_threshold}
    WRITERS[info.task].refuse(info, given)


def _changed(value: Any, default: Any) -> Any:
    return None if value == default else value


def _stream(paths: list[Path], failures: list[tuple[str, str]], writer: Any, channels: int, lookahead: int,
            callback: Progress | None) -> int:
    """Stream ``paths`` through the writer's model into its files; predictions.csv gets one row per input."""
    from seglab.fileio import OutputError, atomic_path

    ok, done, total = 0, 0, len(paths)
    writer.out.mkdir(parents=True, exist_ok=True)

    def advance() -> None:
        nonlocal done
        done += 1
        if callback is not None:
            callback(done, total)

    with atomic_path(writer.out / "predictions.csv") as tmp, open(tmp, "w", newline="") as fh:
        table = csv.DictWriter(fh, fieldnames=writer.columns, restval="")
        table.writeheader()
        for p, reason in failures:
            table.writerow({"file": p, "status": f"error: {reason}"})

        def fail(path: Path, error: Exception) -> None:
            failures.append((str(path), str(error)))
            table.writerow({"file": str(path), "status": f"error: {error}"})

        def readable() -> Iterator[tuple[Path, np.ndarray]]:
            for path, image in read_ahead(paths, channels, lookahead=lookahead):
                if isinstance(image, SeglabError):
                    fail(path, image)
                    advance()
                    continue
                yield path, image

        for path, image, *result in writer.predict(readable()):
            try:
                if writer.options.refine is not None:  # e.g. SAM's boundaries (seglab.sam.SamRefiner)
                    result = writer.options.refine(image, tuple(result))
                table.writerow(writer.write(path, image, *result))
                ok += 1
            except OutputError:
                raise  # the output side failed (disk full, ...): every further input would fail the same way
            except (SeglabError, OSError) as e:
                fail(path, e)
            advance()
        writer.finish()
    return ok
