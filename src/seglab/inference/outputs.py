"""Everything ``seglab predict`` writes, callable from Python: ``predict_files(model, info, inputs, out)``.

Per input image: semantic checkpoints write ``<stem>.png`` in the chosen ``format`` (index PNG with the
class palette, color, overlay or a panel), optionally ``<stem>_probs.npy`` and ``<stem>_features.png``;
instance checkpoints write ``<stem>.png`` of instance ids (0 = background) with ``<stem>.json`` (category,
class name and score of each id) and a picture ``<stem>_<format>.png`` for color/overlay/panel, plus
``predictions.json`` (COCO results). Both write ``predictions.csv``, one row per input (errors included).
Every file is written atomically; an unreadable input is reported and the others are still written. Every
output name is planned before anything is written: one that would replace an input (``--out`` the input
folder) or another output is refused, and a file-system failure (full disk, read-only) ends the run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError, DataError, SeglabError
from seglab.inference.source import expand_inputs, read_ahead
from seglab.inference.tiling import TileOptions

FORMATS = ("index", "color", "overlay", "panel")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PredictOptions:
    """What to predict and write. Semantic-only: ``tile``/``tta``/``probs``/``features``; instance-only:
    ``score_threshold`` (``None``: 0.5). ``alpha`` is the mask opacity of overlays."""

    format: str = "index"
    tiles: TileOptions = field(default_factory=TileOptions)
    tta: str | None = None
    probs: bool = False
    features: str | None = None
    score_threshold: float | None = None
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"--format {self.format!r} is not one of {', '.join(FORMATS)}.")
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            # checked here, not only when predicting starts, so a bad value leaves no output folder behind
            raise ConfigError(f"Expected `score_threshold` (--score-threshold) in [0, 1], but got "
                              f"{self.score_threshold}.")


@dataclass
class PredictResult:
    """What :func:`predict_files` wrote: counts, the summary files and every input that failed."""

    out: Path
    written: int
    failures: list[tuple[str, str]]
    summary: Path
    detections: Path | None = None


def predict_files(model: nn.Module, info: CheckpointInfo, inputs: Sequence[str | Path], out: str | Path,
                  options: PredictOptions | None = None, callback: Progress | None = None) -> PredictResult:
    """Predict every image named by ``inputs`` (files, folders, globs) and write the results under ``out``.

    Raises:
        ConfigError: options that do not apply to the checkpoint's task.
        DataError: no input names any image.
        OutputError: ``out`` is a file or not writable, an output would replace an input (nothing is written
            then), or the file system refuses a write (full disk, ...).
    """
    from seglab.fileio import check_output_path, refuse_overwrite

    options = options or PredictOptions()
    check_options(info, options)
    check_output_path(out, directory=True)
    writer = WRITERS[info.task](Path(out), info, options, model)
    paths, failures = expand_inputs(inputs)
    if not paths and not failures:
        raise DataError(f"no images found in {', '.join(map(str, inputs))} (extensions: png, jpg, tif, bmp).")
    refuse_overwrite(writer.names.plan(writer.out, paths), [*paths, *filter(None, [info.path])])
    n_ok = _stream(paths, failures, writer, info.image_channels, 2 * options.tiles.batch_size, callback)
    return PredictResult(Path(out), n_ok, failures, Path(out) / "predictions.csv", writer.detections_path)


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


def semantic_only(info: CheckpointInfo, given: dict[str, Any]) -> None:
    """Instance checkpoints: refuse tiling, overlap, blending, TTA, probabilities and feature grids."""
    keys = ("tile", "overlap", "blend", "tta", "probs", "features")
    flags = [f"--{k.replace('_', '-')}" for k in keys if given.get(k) is not None]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: {info.path} is an instance checkpoint (Mask R-CNN); tiling, "
                          "overlap, blending, TTA, probabilities and feature grids apply to semantic models. Drop "
                          f"{' and '.join(flags)}.")


class OutputNames:
    """Unique output stems whose files (``files(stem)``) collide with no other output nor ``reserved`` name.

    ``a.png`` and ``a.jpg`` from two folders become ``a`` and ``a-2``; so does an input ``a_features.png``
    beside ``a.png`` when ``a``'s outputs include ``a_features.png``.
    """

    def __init__(self, files: Callable[[str], list[str]], reserved: Sequence[str] = ()) -> None:
        self.files = files
        self.used: set[str] = set(reserved)
        self.stems: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        stem, n = path.stem, 2
        while any(name in self.used for name in self.files(stem)):
            stem, n = f"{path.stem}-{n}", n + 1
        self.used.update(self.files(stem))
        return stem

    def plan(self, out: Path, paths: Sequence[Path]) -> list[Path]:
        """Name every input (in order, so names do not depend on which inputs fail); all files to write."""
        self.stems = {p: self(p) for p in paths}
        return [out / name for name in sorted(self.used)]


def class_palette(info: CheckpointInfo) -> np.ndarray:
    """256 colours: the checkpoint's palette where it has one, seglab's default for the rest."""
    from seglab.viz import default_palette

    palette = default_palette(256, ignore_index=info.ignore_index)
    if info.palette:
        given = np.asarray(info.palette, dtype=np.uint8).reshape(-1, 3)[:256]
        palette[: len(given)] = given
    return palette


class SemanticWriter:
    """Writes one input's outputs (mask picture, probabilities, features) and its predictions.csv row."""

    detections_path: Path | None = None

    def __init__(self, out: Path, info: CheckpointInfo, options: PredictOptions, model: nn.Module) -> None:
        self.out, self.info, self.options, self.model = out, info, options, model
        self.palette = class_palette(info)
        self.names = OutputNames(self.files, ["predictions.csv"])
        self.columns = ["file", "output", "height", "width", "status"] + [f"share_{c}" for c in info.classes]

    def files(self, stem: str) -> list[str]:
        """The file names one input's outputs take."""
        return [f"{stem}.png"] + [f"{stem}_probs.npy"] * self.options.probs + \
            [f"{stem}_features.png"] * bool(self.options.features)

    @staticmethod
    def refuse(info: CheckpointInfo, given: dict[str, Any]) -> None:
        """Semantic checkpoints have no detection scores to threshold."""
        if given.get("score_threshold") is not None:
            raise ConfigError(f"--score-threshold: {info.path} is a semantic checkpoint (no detection scores). "
                              "Drop --score-threshold.")

    def predict(self, items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
        """``(path, image, labels, probs or None)`` per readable input."""
        from seglab.inference.semantic import predict_many

        t, o = self.options.tiles, self.options
        return predict_many(self.model, items, mean=self.info.mean, std=self.info.std, tile=t.tile,
                            overlap=t.overlap, blend=t.blend, tta=o.tta, batch_size=t.batch_size,
                            return_probs=o.probs)

    def write(self, path: Path, image: np.ndarray, labels: torch.Tensor, probs: torch.Tensor | None) -> dict:
        from seglab import viz
        from seglab.data.io import write_label
        from seglab.fileio import atomic_path

        stem, info, fmt = self.names.stems[path], self.info, self.options.format
        target = self.out / f"{stem}.png"
        lab = labels.numpy()
        if fmt == "index":
            write_label(target, lab, palette=self.palette)
        elif fmt == "panel":
            viz.save_panels(target, [(image, None, lab)], self.palette, class_names=info.classes,
                            ignore_index=info.ignore_index, titles=[path.name])
        else:
            rgb = viz.colorize(lab, self.palette, info.ignore_index) if fmt == "color" else \
                viz.overlay(image, lab, self.palette, self.options.alpha, info.ignore_index)
            _save_rgb(target, rgb)
        if self.options.probs and probs is not None:
            with atomic_path(self.out / f"{stem}_probs.npy") as tmp:
                np.save(tmp, probs.numpy().astype(np.float16))
        if self.options.features:
            self._features(image, self.out / f"{stem}_features.png")
        counts = np.bincount(lab.reshape(-1), minlength=len(info.classes))[: len(info.classes)]
        shares = {f"share_{c}": f"{v / lab.size:.6f}" for c, v in zip(info.classes, counts, strict=True)}
        return {"file": str(path), "output": target.name, "height": lab.shape[0], "width": lab.shape[1],
                "status": "ok", **shares}

    def finish(self) -> None:
        """Nothing beyond predictions.csv for semantic checkpoints."""

    def _features(self, image: np.ndarray, target: Path) -> None:
        from seglab.inference.source import prepare_image
        from seglab.models.features import capture_features, save_feature_grid

        x = prepare_image(image, mean=self.info.mean, std=self.info.std, in_channels=self.info.in_channels)
        device = next(self.model.parameters()).device
        save_feature_grid(capture_features(self.model, x[None].to(device), self.options.features), target)


class InstanceWriter:
    """Writes one input's instance-id PNG + JSON (and picture), collects its COCO results."""

    def __init__(self, out: Path, info: CheckpointInfo, options: PredictOptions, model: nn.Module) -> None:
        self.out, self.info, self.options, self.model = out, info, options, model
        self.classes, self.cat_ids = info.classes, info.cat_ids
        self.names = OutputNames(self.files, ["predictions.csv", "predictions.json"])
        self.detections: list[dict] = []
        self.detections_path = out / "predictions.json"
        self.image_id = 0
        self.columns = ["file", "output", "image_id", "height", "width", "status", "detections", "instances"] + \
            [f"count_{c}" for c in self.classes[1:]]

    refuse = staticmethod(semantic_only)

    def files(self, stem: str) -> list[str]:
        """The file names one input's outputs take."""
        fmt = self.options.format
        return [f"{stem}.png", f"{stem}.json"] + ([f"{stem}_{fmt}.png"] if fmt != "index" else [])

    def predict(self, items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
        """``(path, image, instances)`` per readable input (detections at or above the score threshold)."""
        from seglab.inference.instance import predict_instances

        threshold = 0.5 if self.options.score_threshold is None else self.options.score_threshold
        return predict_instances(self.model, items, score_threshold=threshold,
                                 batch_size=self.options.tiles.batch_size)

    def write(self, path: Path, image: np.ndarray, inst: dict[str, Any]) -> dict[str, Any]:
        from seglab import viz
        from seglab.data.io import write_label
        from seglab.fileio import atomic_write_text
        from seglab.inference.instance import instances_to_coco

        stem, fmt = self.names.stems[path], self.options.format
        self.image_id += 1
        ids, kept = viz.instance_ids(inst["masks"], inst["scores"])
        palette = viz.default_palette(256, ignore_index=None)
        write_label(self.out / f"{stem}.png", ids, palette=palette)
        keep = torch.as_tensor(kept, dtype=torch.long)
        labels = inst["labels"][keep].tolist()
        record = {"labels": [self.cat_ids[c] for c in labels], "classes": [self.classes[c] for c in labels],
                  "scores": [round(float(v), 4) for v in inst["scores"][keep]]}
        atomic_write_text(self.out / f"{stem}.json", json.dumps(record) + "\n")
        if fmt == "color":
            _save_rgb(self.out / f"{stem}_color.png", viz.colorize(ids, palette, ignore_index=None))
        elif fmt == "overlay":
            viz.save_instance_overlay(self.out / f"{stem}_overlay.png", image, inst, self.classes,
                                      self.options.alpha)
        elif fmt == "panel":
            viz.save_instance_panels(self.out / f"{stem}_panel.png", [(image, None, inst)], self.classes,
                                     titles=[path.name])
        self.detections += instances_to_coco(inst, self.image_id, cat_ids=self.cat_ids)
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(self.classes))
        return {"file": str(path), "output": f"{stem}.png", "image_id": self.image_id, "height": ids.shape[0],
                "width": ids.shape[1], "status": "ok", "detections": len(inst["labels"]),
                "instances": len(labels),
                **{f"count_{c}": int(counts[i]) for i, c in enumerate(self.classes) if i > 0}}

    def finish(self) -> None:
        """predictions.json: every kept detection (overlaps included) in COCO results format."""
        from seglab.fileio import atomic_write_text

        atomic_write_text(self.detections_path, json.dumps(self.detections) + "\n")


# The writer of each task; a new task adds its writer here (same members: refuse, files, names, predict, write,
# finish).
WRITERS: dict[str, Any] = {"semantic": SemanticWriter, "instance": InstanceWriter}


def _save_rgb(target: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    from seglab.fileio import atomic_path

    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


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
                table.writerow(writer.write(path, image, *result))
                ok += 1
            except OutputError:
                raise  # the output side failed (disk full, ...): every further input would fail the same way
            except (SeglabError, OSError) as e:
                fail(path, e)
            advance()
        writer.finish()
    return ok
