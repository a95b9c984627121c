"""`seglab evaluate`, `seglab predict`, `seglab export`: use a trained checkpoint."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from seglab.cli.app import app, console, err_console
from seglab.errors import ConfigError, DataError, ModelError, SeglabError

FORMATS = ("index", "color", "overlay", "panel")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory (its best.pt) or a checkpoint file."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (images/<split>, labels/<split>)."),
    split: str = typer.Option("val", "--split", help="Which split to score."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    tta: str | None = typer.Option(None, "--tta", help="flip | flip,scales=0.75,1,1.25"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size (pixels)."),
    overlap: float = typer.Option(0.25, "--overlap", help="Tile overlap fraction."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Score a checkpoint on a split at full resolution: pixel accuracy, mIoU, Dice, per class."""
    from seglab.data.folder import SegmentationFolder
    from seglab.engine import distributed
    from seglab.engine.checkpoint import load_checkpoint
    from seglab.inference import evaluate as run_eval

    dist = distributed.setup(device)
    try:
        model, info = load_checkpoint(run, device=dist.device)
        _require_semantic(info)
        classes = list(info["classes"])
        ignore = int(info.get("ignore_index", 255))
        dataset = SegmentationFolder(data, split, in_channels=int(info.get("in_channels", 3)),
                                     ignore_index=ignore, num_classes=len(classes))
        shard = _Shard(dataset, dist.rank, dist.world_size)
        with _progress(f"evaluate {split}", len(shard), enabled=dist.is_main) as advance:
            metrics = run_eval(model, shard, num_classes=len(classes), ignore_index=ignore, tta=tta, tile=tile,
                               overlap=overlap, mean=info.get("mean"), std=info.get("std"), device=dist.device,
                               callback=lambda done, total: advance())
        if dist.is_main:
            _print_metrics(metrics, classes, f"{info['path']} on {data} ({split}, {len(dataset)} images)")
            if json_out is not None:
                from seglab.fileio import atomic_write_text

                record = {"checkpoint": info["path"], "data": str(data), "split": split,
                          "num_images": len(dataset), "classes": classes, **_jsonable(metrics)}
                atomic_write_text(json_out, json.dumps(record, indent=2) + "\n")
                console.print(f"metrics written to {json_out}")
    finally:
        distributed.cleanup()


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run directory."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    format: str = typer.Option("index", "--format", help="index (palette PNG) | color | overlay | panel"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size, e.g. 1024."),
    overlap: float = typer.Option(0.25, "--overlap", help="Tile overlap fraction."),
    blend: str = typer.Option("gaussian", "--blend", help="gaussian | linear | none"),
    tta: str | None = typer.Option(None, "--tta", help="flip | flip,scales=0.75,1,1.25"),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities as <stem>_probs.npy."),
    features: str | None = typer.Option(None, "--features", help="Save a feature grid of this layer."),
    alpha: float = typer.Option(0.5, "--alpha", help="Mask opacity for --format overlay."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images (or tiles) per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Predict masks for images; writes <stem>.png per input and predictions.csv (class pixel shares)."""
    from seglab.engine.checkpoint import load_checkpoint

    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}.")
    model, info = load_checkpoint(checkpoint, device=_device(device))
    _require_semantic(info)
    paths, failures = _expand_inputs(inputs)
    if not paths and not failures:
        raise DataError(f"no images found in {', '.join(inputs)} (extensions: png, jpg, tif, bmp).")
    writer = _Writer(out, info, format, alpha, probs, features, model)
    n_ok = _run_predict(model, info, paths, failures, writer, dict(tile=tile, overlap=overlap, blend=blend,
                        tta=tta, batch_size=batch_size, return_probs=probs))
    console.print(f"{n_ok} prediction(s) written to {out} (summary: {out / 'predictions.csv'})")
    if failures:
        lines = "\n".join(f"  {p}: {reason}" for p, reason in failures)
        raise DataError(f"{len(failures)} input(s) failed ({n_ok} others were written to {out}); "
                        f"fix or remove them and rerun for those files:\n{lines}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run directory."),
    format: str = typer.Option("onnx", "--format", help="onnx | torchscript"),
    out: Path | None = typer.Option(None, "--out", help="Output file (default: beside the checkpoint)."),
    check: bool = typer.Option(False, "--check", help="Run the exported file and report max |diff| vs PyTorch."),
    tolerance: float = typer.Option(1e-3, "--tolerance", help="With --check: fail above this difference."),
) -> None:
    """Export a checkpoint to ONNX (dynamic batch/height/width) or TorchScript, with metadata inside."""
    from seglab.engine.checkpoint import load_checkpoint
    from seglab.export import checkpoint_metadata, export_model
    from seglab.models.registry import get_entry

    model, info = load_checkpoint(checkpoint)
    name = info["model"]["name"]
    task = info.get("task") or get_entry(name).task
    src = Path(info["path"])
    out = out or src.with_suffix(".onnx" if format == "onnx" else ".torchscript.pt")
    with console.status(f"exporting {name} to {format}..."):
        result = export_model(model, out, format=format, in_channels=int(info.get("in_channels", 3)),
                              metadata=checkpoint_metadata(info), model_name=name, task=task, check=check,
                              tolerance=tolerance if check else None)
    console.print(f"exported {name} -> {result.path} ({format}, dynamic batch/height/width, "
                  f"{result.path.stat().st_size / 1e6:.1f} MB)")
    if result.max_abs_diff is not None:
        console.print(f"check: max |{format} - pytorch| = {result.max_abs_diff:.3g} on inputs (1, C, 64, 96) "
                      f"and (2, C, 61, 83) (tolerance {tolerance:g})")


class _Shard:
    """Every ``world``-th sample from ``rank``: the DDP share of an evaluation."""

    def __init__(self, dataset: Any, rank: int, world: int) -> None:
        self.dataset, self.indices = dataset, list(range(rank, len(dataset), world))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


class _Writer:
    """Writes one input's outputs (mask picture, probabilities, features) and its predictions.csv row."""

    def __init__(self, out: Path, info: dict, format: str, alpha: float, probs: bool, features: str | None,
                 model: Any) -> None:
        from seglab.viz import default_palette

        self.out, self.format, self.alpha, self.probs, self.features, self.model = (
            out, format, alpha, probs, features, model)
        self.classes = list(info["classes"])
        self.ignore = int(info.get("ignore_index", 255))
        self.in_channels = int(info.get("in_channels", 3))
        self.mean, self.std = info.get("mean"), info.get("std")
        palette = default_palette(256, ignore_index=self.ignore)
        given = info.get("palette")
        if given is not None and len(given):
            given = np.asarray(given, dtype=np.uint8).reshape(-1, 3)[:256]
            palette[: len(given)] = given
        self.palette = palette
        self.used: set[str] = set()

    def name(self, path: Path) -> str:
        """A unique output stem: ``a.png`` and ``a.jpg`` from two folders become ``a`` and ``a-2``."""
        stem, n = path.stem, 2
        while stem in self.used:
            stem, n = f"{path.stem}-{n}", n + 1
        self.used.add(stem)
        return stem

    def write(self, path: Path, image: np.ndarray, labels: Any, probs: Any) -> dict[str, Any]:
        from PIL import Image

        from seglab import viz
        from seglab.data.io import write_label
        from seglab.fileio import atomic_path

        stem = self.name(path)
        target = self.out / f"{stem}.png"
        lab = labels.numpy()
        if self.format == "index":
            write_label(target, lab, palette=self.palette)
        elif self.format == "panel":
            viz.save_panels(target, [(image, None, lab)], self.palette, class_names=self.classes,
                            ignore_index=self.ignore, titles=[path.name])
        else:
            rgb = viz.colorize(lab, self.palette, self.ignore) if self.format == "color" else \
                viz.overlay(image, lab, self.palette, self.alpha, self.ignore)
            with atomic_path(target) as tmp:
                Image.fromarray(rgb).save(tmp, format="PNG")
        if self.probs and probs is not None:
            with atomic_path(self.out / f"{stem}_probs.npy") as tmp:
                np.save(tmp, probs.numpy().astype(np.float16))
        if self.features:
            self._features(image, self.out / f"{stem}_features.png")
        counts = np.bincount(lab.reshape(-1), minlength=len(self.classes))[: len(self.classes)]
        shares = {f"share_{c}": f"{v / lab.size:.6f}" for c, v in zip(self.classes, counts, strict=True)}
        return {"file": str(path), "output": target.name, "height": lab.shape[0], "width": lab.shape[1],
                "status": "ok", **shares}

    def _features(self, image: np.ndarray, target: Path) -> None:
        from seglab.inference import prepare_image
        from seglab.models.features import capture_features, save_feature_grid

        x = prepare_image(image, mean=self.mean, std=self.std, in_channels=self.in_channels)
        device = next(self.model.parameters()).device
        save_feature_grid(capture_features(self.model, x[None].to(device), self.features), target)


def _run_predict(model: Any, info: dict, paths: list[Path], failures: list[tuple[str, str]], writer: _Writer,
                 options: dict[str, Any]) -> int:
    from seglab.fileio import atomic_path
    from seglab.inference import predict_many

    channels = 1 if int(info.get("in_channels", 3)) == 1 else 3
    columns = ["file", "output", "height", "width", "status"] + [f"share_{c}" for c in writer.classes]
    ok = 0
    writer.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(writer.out / "predictions.csv") as tmp, open(tmp, "w", newline="") as fh, \
            _progress("predict", len(paths)) as advance:
        table = csv.DictWriter(fh, fieldnames=columns, restval="")
        table.writeheader()
        for p, reason in failures:
            table.writerow({"file": p, "status": f"error: {reason}"})

        def readable() -> Iterator[tuple[Path, np.ndarray]]:
            for path, image in _read_ahead(paths, channels, lookahead=2 * options["batch_size"]):
                if isinstance(image, SeglabError):
                    failures.append((str(path), str(image)))
                    table.writerow({"file": str(path), "status": f"error: {image}"})
                    advance()
                    continue
                yield path, image

        for path, image, labels, probs in predict_many(model, readable(), mean=info.get("mean"),
                                                       std=info.get("std"), **options):
            try:
                table.writerow(writer.write(path, image, labels, probs))
                ok += 1
            except (SeglabError, OSError) as e:
                failures.append((str(path), str(e)))
                table.writerow({"file": str(path), "status": f"error: {e}"})
            advance()
    return ok


def _read_ahead(paths: list[Path], channels: int, lookahead: int) -> Iterator[tuple[Path, Any]]:
    """Decode images in a background thread, at most ``lookahead`` ahead (bounded memory)."""
    from seglab.data.io import read_image

    def load(path: Path) -> Any:
        try:
            return read_image(path, channels=channels)
        except SeglabError as e:
            return e

    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = []
        it = iter(paths)
        for path in it:
            queue.append((path, pool.submit(load, path)))
            if len(queue) > lookahead:
                p, fut = queue.pop(0)
                yield p, fut.result()
        for p, fut in queue:
            yield p, fut.result()


def _expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    from seglab.data.io import IMAGE_EXTS, list_files

    paths: list[Path] = []
    missing: list[tuple[str, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_files(p, IMAGE_EXTS)
        elif p.is_file():
            found = [p]
        elif glob.has_magic(item):
            found = [Path(m) for m in sorted(glob.glob(item, recursive=True))
                     if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_EXTS]
        else:
            found = []
        if not found:
            missing.append((item, "not found (no such file, or no images in that folder / pattern)"))
        paths += found
    return list(dict.fromkeys(paths)), missing


@contextlib.contextmanager
def _progress(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr; yields the function that advances it by one."""
    if not enabled:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def _print_metrics(metrics: dict[str, Any], classes: list[str], title: str) -> None:
    summary = Table(title=title, show_header=True)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, label in (("pixel_accuracy", "pixel accuracy"), ("mean_accuracy", "mean accuracy"),
                       ("mean_iou", "mIoU"), ("mean_dice", "mean Dice"), ("fw_iou", "fwIoU")):
        summary.add_row(label, _pct(metrics.get(key)))
    console.print(summary)
    per_class = Table(show_header=True)
    for col in ("class", "IoU", "Dice", "accuracy"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(classes):
        per_class.add_row(name, *(_pct(_at(metrics.get(k), i)) for k in
                                  ("per_class_iou", "per_class_dice", "per_class_accuracy")))
    console.print(per_class)


def _at(values: Any, i: int) -> Any:
    return values[i] if values is not None and i < len(values) else None


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * float(v):.2f}"


def _jsonable(v: Any) -> Any:
    """Tensors to lists and NaN to null, so the JSON is standard (Python's NaN literal is not)."""
    import torch

    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _require_semantic(info: dict) -> None:
    if info.get("task", "semantic") != "semantic":
        raise ModelError(f"{info['path']}: a {info['task']} checkpoint; evaluate/predict/export here handle "
                         "semantic models (instance models: see `seglab --help`).")


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
