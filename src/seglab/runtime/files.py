"""``seglab predict model.onnx IMAGES --out P``: the files ``seglab predict RUN`` writes, from a bundle.

Semantic bundles write ``<stem>.png`` (index PNG with the class palette) and, with ``formats="index,color"``,
``<stem>_color.png``, plus ``predictions.csv`` (one row per input, class pixel shares). Instance bundles write
``<stem>.png`` of instance ids with ``<stem>.json`` (category and score of each id), ``predictions.json`` (COCO
results) and ``predictions.csv`` (instances per class), as ``seglab.inference.writers.InstanceWriter``. Every
file is written atomically; an unreadable input is reported in its row and the others are still written.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seglab.errors import ConfigError, DataError, ModelError, OutputError
from seglab.runtime.bundle import DOCS, Bundle
from seglab.runtime.instance import detector_spec
from seglab.runtime.instance_files import InstanceFiles
from seglab.runtime.outputs import BundleResult, colorize, gray_palette, save_rgb, write_table
from seglab.runtime.semantic import RuntimeOptions, effective_tta, parse_tta, predict_image

FORMATS = ("index", "color")


def find_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by ``inputs`` (files, folders, glob patterns) in order, and the inputs naming none."""
    from seglab.data.io import IMAGE_EXTS, list_files

    paths: list[Path] = []
    failures: list[tuple[str, str]] = []
    for item in map(str, inputs):
        p = Path(item)
        if p.is_dir():
            files = list_files(p, IMAGE_EXTS)
        elif p.is_file():
            files = [p]
        else:
            files = [Path(m) for m in sorted(glob.glob(item)) if Path(m).suffix.lower() in IMAGE_EXTS]
        if not files:
            failures.append((item, "not found (no such file, or no images in that folder / pattern)"))
        paths += files
    return list(dict.fromkeys(paths)), failures


def predict_bundle_files(bundle: Bundle, inputs: Sequence[str | Path], out: str | Path, *, format: str = "index",
                         options: RuntimeOptions | None = None, exist_ok: bool = False,
                         callback: Callable[[int, int], None] | None = None) -> BundleResult:
    """Predict every image named by ``inputs`` with ``bundle`` and write the results under ``out``.

    Raises:
        ModelError: a panoptic bundle (the runtime predicts semantic and instance bundles).
        ConfigError: a format other than index / color; tiling or TTA for an instance bundle, a score threshold
            for a semantic one.
        ModelError: an instance bundle of an older seglab (one fixed image size, no ``seglab.detector``).
        DataError: no input names any image.
        OutputError: ``out`` is a file, an output would replace an input, or (without ``exist_ok``) a file of
            an earlier run; nothing is written then.
    """
    from seglab.fileio import check_output_path

    if bundle.task not in ("semantic", "instance"):
        raise ModelError(f"{bundle.path}: a {bundle.task} bundle; the torch-free runtime predicts semantic and "
                         f"instance bundles. Predict with the run instead (`seglab predict RUN ...`); see {DOCS}.")
    formats = tuple(s.strip() for s in format.split(","))
    bad = [f for f in formats if f not in FORMATS]
    if bad or len(set(formats)) != len(formats):
        raise ConfigError(f"--save {format!r}: a .onnx bundle writes {' and '.join(FORMATS)} (each once); "
                          "overlay and panel pictures need the run: `seglab predict RUN`.")
    options = options or RuntimeOptions()
    _check_options(bundle, options)
    out = check_output_path(out, directory=True)
    paths, failures = find_inputs(inputs)
    if not paths and not failures:
        raise DataError(f"no images found in {', '.join(map(str, inputs))}.")
    names = _names if bundle.task == "semantic" else InstanceFiles.names
    summaries = ["predictions.csv"] + ([] if bundle.task == "semantic" else ["predictions.json"])
    stems = _stems(paths, formats, names, summaries)
    planned = [out / name for s in stems.values() for name in names(s, formats)] + [out / f for f in summaries]
    _refuse(planned, paths, exist_ok)
    out.mkdir(parents=True, exist_ok=True)
    if bundle.task == "instance":
        return InstanceFiles(bundle, out, formats, options.score_threshold).write_all(paths, failures, stems, callback)
    return _write_all(bundle, paths, failures, stems, formats, out, options, callback)


def _check_options(bundle: Bundle, options: RuntimeOptions) -> None:
    """Refuse options that do not apply to the bundle's task, naming them as the CLI flags."""
    if bundle.task == "semantic":
        if options.score_threshold is not None:
            raise ConfigError(f"--score-threshold: {bundle.path} is a semantic bundle; the threshold applies to "
                              "instance detections. Drop it.")
        options.resolved(bundle.tile)  # bad tiling or TTA: refused before anything is written
        parse_tta(effective_tta(options.tta, bundle.tile))
        return
    detector_spec(bundle)  # an older fixed-size file is refused before anything is written
    if options.score_threshold is not None and not 0.0 <= options.score_threshold <= 1.0:
        raise ConfigError(f"Expected --score-threshold (score_threshold) in [0, 1], but got {options.score_threshold}.")
    flags = [f"--{k}" for k in ("tile", "overlap", "blend", "tta") if getattr(options, k) is not None]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: {bundle.path} is an {bundle.task} bundle; tiling, overlap, "
                          f"blending and TTA apply to semantic models. Drop {' and '.join(flags)}.")


def _names(stem: str, formats: tuple[str, ...]) -> list[str]:
    return [f"{stem}.png" if f == "index" else f"{stem}_{f}.png" for f in formats]


def _stems(paths: list[Path], formats: tuple[str, ...], names: Callable[[str, tuple[str, ...]], list[str]],
           summaries: list[str]) -> dict[Path, str]:
    """An output stem per input: its own, or ``<stem>-2``, ``-3`` ... where two inputs (or a summary) clash."""
    used = set(summaries)
    stems: dict[Path, str] = {}
    for p in paths:
        stem, n = p.stem, 2
        while any(name in used for name in names(stem, formats)):
            stem, n = f"{p.stem}-{n}", n + 1
        used.update(names(stem, formats))
        stems[p] = stem
    return stems


def _refuse(planned: list[Path], inputs: list[Path], exist_ok: bool) -> None:
    real_inputs = {p.resolve() for p in inputs}
    clash = [p for p in planned if p.resolve() in real_inputs]
    if clash:
        raise OutputError(f"--out: {clash[0]} is an input; writing it would replace the image. Pick another --out.")
    old = [p for p in planned if p.exists()]
    if old and not exist_ok:
        raise OutputError(f"--out {planned[0].parent} already holds {len(old)} output(s) of an earlier run (e.g. "
                          f"{old[0].name}); pass --exist-ok to replace them or choose another folder.")


def _write_all(bundle: Bundle, paths: list[Path], failures: list[tuple[str, str]], stems: dict[Path, str],
               formats: tuple[str, ...], out: Path, options: RuntimeOptions,
               callback: Callable[[int, int], None] | None) -> BundleResult:
    from seglab.data.io import read_image, write_label

    palette = bundle.palette if bundle.palette is not None else gray_palette()
    columns = ["file", "output", "height", "width", "status"] + [f"share_{c}" for c in bundle.classes]

    def write_one(path: Path) -> dict:
        labels = predict_image(bundle, read_image(path, channels=bundle.image_channels), options)
        names = _names(stems[path], formats)
        for fmt, name in zip(formats, names, strict=True):
            if fmt == "index":
                write_label(out / name, labels, palette=palette)
            else:
                save_rgb(out / name, colorize(labels, palette, bundle.ignore_index))
        return _row(path, names, labels, bundle.classes)

    written = write_table(out / "predictions.csv", columns, paths, failures, write_one, callback)
    return BundleResult(out, written, failures, out / "predictions.csv")


def _row(path: Path, names: list[str], labels: np.ndarray, classes: list[str]) -> dict:
    counts = np.bincount(labels.reshape(-1), minlength=len(classes))[: len(classes)]
    shares = {f"share_{c}": f"{v / labels.size:.6f}" for c, v in zip(classes, counts, strict=True)}
    return {"file": str(path), "output": ";".join(names), "height": labels.shape[0], "width": labels.shape[1],
            "status": "ok", **shares}
