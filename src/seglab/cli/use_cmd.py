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
    data: Path = typer.Option(..., "--data", help="Dataset folder (semantic: images/ + labels/; instance: "
                              "annotations/instances_<split>.json or masks/<split>/)."),
    split: str = typer.Option("val", "--split", help="Which split to score."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    tta: str | None = typer.Option(None, "--tta", help="flip | flip,scales=0.75,1,1.25 (semantic)"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size in pixels (semantic)."),
    overlap: float | None = typer.Option(None, "--overlap", help="Tile overlap fraction (default 0.25)."),
    detections: Path | None = typer.Option(None, "--detections", help="Instance checkpoints: also write the "
                                           "scored detections as a COCO results JSON."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Score a checkpoint on a split at full resolution.

    Semantic: pixel accuracy, mIoU, Dice, per class. Instance: COCO mask and box AP, per class.
    """
    from seglab.engine import distributed
    from seglab.engine.checkpoint import load_checkpoint

    dist = distributed.setup(device)
    try:
        model, info = load_checkpoint(run, device=dist.device)
        if _task(info) == "instance":
            _refuse_for_instance(info, tta=tta, tile=tile, overlap=overlap)
            _require_detector(model, info)
            _evaluate_instance(model, info, data, split, json_out, detections, dist)
            return
        if detections is not None:
            raise ConfigError(f"--detections: {info['path']} is a semantic checkpoint; COCO detections come "
                              "from instance checkpoints. Drop --detections.")
        _evaluate_semantic(model, info, data, split, json_out,
                           dict(tta=tta, tile=tile, overlap=0.25 if overlap is None else overlap), dist)
    finally:
        distributed.cleanup()


def _evaluate_semantic(model: Any, info: dict, data: Path, split: str, json_out: Path | None,
                       options: dict[str, Any], dist: Any) -> None:
    from seglab.data.folder import SegmentationFolder
    from seglab.inference import evaluate as run_eval

    classes = list(info["classes"])
    ignore = int(info.get("ignore_index", 255))
    dataset = SegmentationFolder(data, split, in_channels=int(info.get("in_channels", 3)),
                                 ignore_index=ignore, num_classes=len(classes))
    shard = _Shard(dataset, dist.rank, dist.world_size)
    with _progress(f"evaluate {split}", len(shard), enabled=dist.is_main) as advance:
        metrics = run_eval(model, shard, num_classes=len(classes), ignore_index=ignore, mean=info.get("mean"),
                           std=info.get("std"), device=dist.device, callback=lambda done, total: advance(),
                           **options)
    if dist.is_main:
        _print_metrics(metrics, classes, f"{info['path']} on {data} ({split}, {len(dataset)} images)")
        _write_record(json_out, info, data, split, len(dataset), metrics)


def _evaluate_instance(model: Any, info: dict, data: Path, split: str, json_out: Path | None,
                       detections_out: Path | None, dist: Any) -> None:
    from seglab.engine.instance import gather_detections, open_instance_split, score_detections, split_ground_truth
    from seglab.inference import detect_dataset

    dataset = open_instance_split(data, split)
    classes, cat_ids = _instance_categories(info)
    if list(dataset.cat_ids) != cat_ids:
        have = {int(c): n for c, n in zip(dataset.cat_ids[1:], dataset.classes[1:], strict=True)}
        want = {int(c): n for c, n in zip(cat_ids[1:], classes[1:], strict=True)}
        raise ConfigError(f"{data} ({split}): categories {have} differ from the checkpoint's {want}. Evaluate "
                          "on data with the categories the model was trained on.")
    shard = _Shard(dataset, dist.rank, dist.world_size)
    with _progress(f"evaluate {split}", len(shard), enabled=dist.is_main) as advance:
        dets = detect_dataset(model, shard, cat_ids=cat_ids, device=dist.device,
                              callback=lambda done, total: advance())
    dets = gather_detections(dets)
    with err_console.status("COCO evaluation...") if dist.is_main else contextlib.nullcontext():
        metrics = score_detections(dets, lambda: split_ground_truth(dataset), per_class=True, gathered=True)
    if not dist.is_main:
        return
    _print_instance_metrics(metrics, classes, cat_ids, f"{info['path']} on {data} ({split}, {len(dataset)} "
                            "images)")
    per_class = [{"category_id": cat, "name": name,
                  **{f"{kind}_AP": metrics[f"{kind}_per_class_AP"].get(cat) for kind in ("mask", "box")}}
                 for name, cat in zip(classes[1:], cat_ids[1:], strict=True)]
    scalars = {k: v for k, v in metrics.items() if not k.endswith("per_class_AP")}
    _write_record(json_out, info, data, split, len(dataset), {**scalars, "per_class": per_class})
    if detections_out is not None:
        from seglab.fileio import atomic_write_text

        atomic_write_text(detections_out, json.dumps(dets) + "\n")
        console.print(f"{len(dets)} detections written to {detections_out} (COCO results format)")


def _write_record(json_out: Path | None, info: dict, data: Path, split: str, num_images: int,
                  metrics: dict[str, Any]) -> None:
    if json_out is None:
        return
    from seglab.fileio import atomic_write_text

    record = {"checkpoint": info["path"], "task": _task(info), "data": str(data), "split": split,
              "num_images": num_images, "classes": list(info["classes"]), **_jsonable(metrics)}
    atomic_write_text(json_out, json.dumps(record, indent=2) + "\n")
    console.print(f"metrics written to {json_out}")


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run directory."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    format: str = typer.Option("index", "--format", help="index (palette PNG) | color | overlay | panel"),
    tile: int | None = typer.Option(None, "--tile", help="Sliding-window tile size, e.g. 1024 (semantic)."),
    overlap: float | None = typer.Option(None, "--overlap", help="Tile overlap fraction (default 0.25)."),
    blend: str | None = typer.Option(None, "--blend", help="gaussian (default) | linear | none"),
    tta: str | None = typer.Option(None, "--tta", help="flip | flip,scales=0.75,1,1.25 (semantic)"),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities as <stem>_probs.npy."),
    features: str | None = typer.Option(None, "--features", help="Save a feature grid of this layer."),
    score_threshold: float | None = typer.Option(None, "--score-threshold", help="Instance checkpoints: keep "
                                                 "detections scoring at least this (default 0.5)."),
    alpha: float = typer.Option(0.5, "--alpha", help="Mask opacity for --format overlay."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images (or tiles) per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Predict masks for images; writes <stem>.png per input and predictions.csv.

    Semantic checkpoints: <stem>.png in --format, predictions.csv with class pixel shares. Instance
    checkpoints: <stem>.png of instance ids (0 = background) + <stem>.json (category and score of each id),
    <stem>_<format>.png pictures for color/overlay/panel, predictions.json (COCO results) and
    predictions.csv (instances per class).
    """
    from seglab.engine.checkpoint import load_checkpoint

    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}.")
    model, info = load_checkpoint(checkpoint, device=_device(device))
    instance = _task(info) == "instance"
    if instance:
        _refuse_for_instance(info, tta=tta, tile=tile, overlap=overlap, blend=blend, probs=probs or None,
                             features=features)
        _require_detector(model, info)
    elif score_threshold is not None:
        raise ConfigError(f"--score-threshold: {info['path']} is a semantic checkpoint (no detection scores). "
                          "Drop --score-threshold.")
    paths, failures = _expand_inputs(inputs)
    if not paths and not failures:
        raise DataError(f"no images found in {', '.join(inputs)} (extensions: png, jpg, tif, bmp).")
    if instance:
        from seglab.inference import predict_instances

        threshold = 0.5 if score_threshold is None else score_threshold
        writer: Any = _InstanceWriter(out, info, format, alpha)

        def run(items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
            return predict_instances(model, items, score_threshold=threshold, batch_size=batch_size)
    else:
        from seglab.inference import predict_many

        writer = _Writer(out, info, format, alpha, probs, features, model)

        def run(items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
            return predict_many(model, items, mean=info.get("mean"), std=info.get("std"), tile=tile,
                                overlap=0.25 if overlap is None else overlap, blend=blend or "gaussian",
                                tta=tta, batch_size=batch_size, return_probs=probs)
    channels = 1 if int(info.get("in_channels", 3)) == 1 else 3
    n_ok = _run_predict(paths, failures, writer, run, channels, lookahead=2 * batch_size)
    extra = f", detections: {out / 'predictions.json'}" if instance else ""
    console.print(f"{n_ok} prediction(s) written to {out} (summary: {out / 'predictions.csv'}{extra})")
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
    check_image: list[Path] | None = typer.Option(None, "--check-image", help="Instance checkpoints: an image "
                                                  "to run the --check on (repeatable; default: noise)."),
) -> None:
    """Export a checkpoint to ONNX (dynamic batch/height/width) or TorchScript, with metadata inside."""
    from seglab.engine.checkpoint import load_checkpoint
    from seglab.export import checkpoint_metadata, export_model

    model, info = load_checkpoint(checkpoint)
    name = info["model"]["name"]
    task = info["task"] = _task(info)
    if task == "instance":
        _require_detector(model, info)
    elif check_image:
        raise ConfigError("--check-image: semantic exports are checked on random inputs of two shapes; the "
                          "option is for instance checkpoints. Drop it.")
    images = None
    if check_image:
        from seglab.data.io import read_image
        from seglab.inference import prepare_image

        images = [prepare_image(read_image(p, channels=3)) for p in check_image]
    src = Path(info["path"])
    out = out or src.with_suffix(".onnx" if format == "onnx" else ".torchscript.pt")
    with console.status(f"exporting {name} to {format}..."):
        result = export_model(model, out, format=format, in_channels=int(info.get("in_channels", 3)),
                              metadata=checkpoint_metadata(info), model_name=name, task=task, check=check,
                              tolerance=tolerance if check else None, check_images=images)
    if task == "instance":
        from seglab.export import read_metadata

        h, w = read_metadata(result.path)["seglab.input_size"]
        console.print(f"exported {name} -> {result.path} ({format}, one {h}x{w} RGB image per call, "
                      f"{result.path.stat().st_size / 1e6:.1f} MB)")
        probe = (f"{len(images)} image(s)" if images else "two noise images") + \
            f" at {h}x{w}, {result.detections_compared} detections compared"
    else:
        console.print(f"exported {name} -> {result.path} ({format}, dynamic batch/height/width, "
                      f"{result.path.stat().st_size / 1e6:.1f} MB)")
        probe = "inputs (1, C, 64, 96) and (2, C, 61, 83)"
    if result.max_abs_diff is not None:
        console.print(f"check: max |{format} - pytorch| = {result.max_abs_diff:.3g} on {probe} "
                      f"(tolerance {tolerance:g})")
        if result.detections_compared == 0:
            err_console.print("warning: neither PyTorch nor the export detected anything in the check images, "
                              "so only that agreement was checked; rerun with --check-image IMAGE showing objects.")


class _Shard:
    """Every ``world``-th sample from ``rank``: the DDP share of an evaluation."""

    def __init__(self, dataset: Any, rank: int, world: int) -> None:
        self.dataset, self.indices = dataset, list(range(rank, len(dataset), world))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


class _Names:
    """Unique output stems: ``a.png`` and ``a.jpg`` from two folders become ``a`` and ``a-2``."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, path: Path) -> str:
        stem, n = path.stem, 2
        while stem in self.used:
            stem, n = f"{path.stem}-{n}", n + 1
        self.used.add(stem)
        return stem


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
        self.name = _Names()
        self.columns = ["file", "output", "height", "width", "status"] + [f"share_{c}" for c in self.classes]

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

    def finish(self) -> None:
        """Nothing beyond predictions.csv for semantic checkpoints."""

    def _features(self, image: np.ndarray, target: Path) -> None:
        from seglab.inference import prepare_image
        from seglab.models.features import capture_features, save_feature_grid

        x = prepare_image(image, mean=self.mean, std=self.std, in_channels=self.in_channels)
        device = next(self.model.parameters()).device
        save_feature_grid(capture_features(self.model, x[None].to(device), self.features), target)


class _InstanceWriter:
    """Writes one input's instance-id PNG + JSON (and picture), collects its COCO results."""

    def __init__(self, out: Path, info: dict, format: str, alpha: float) -> None:
        self.out, self.format, self.alpha = out, format, alpha
        self.classes, self.cat_ids = _instance_categories(info)
        self.name = _Names()
        self.detections: list[dict] = []
        self.image_id = 0
        self.columns = ["file", "output", "image_id", "height", "width", "status", "detections", "instances"] + \
            [f"count_{c}" for c in self.classes[1:]]

    def write(self, path: Path, image: np.ndarray, inst: dict[str, Any]) -> dict[str, Any]:
        import torch
        from PIL import Image

        from seglab import viz
        from seglab.data.io import write_label
        from seglab.fileio import atomic_path, atomic_write_text
        from seglab.inference import instances_to_coco

        stem = self.name(path)
        self.image_id += 1
        ids, kept = viz.instance_ids(inst["masks"], inst["scores"])
        palette = viz.default_palette(256, ignore_index=None)
        write_label(self.out / f"{stem}.png", ids, palette=palette)
        keep = torch.as_tensor(kept, dtype=torch.long)
        labels = inst["labels"][keep].tolist()
        record = {"labels": [self.cat_ids[c] for c in labels], "classes": [self.classes[c] for c in labels],
                  "scores": [round(float(v), 4) for v in inst["scores"][keep]]}
        atomic_write_text(self.out / f"{stem}.json", json.dumps(record) + "\n")
        if self.format == "color":
            with atomic_path(self.out / f"{stem}_color.png") as tmp:
                Image.fromarray(viz.colorize(ids, palette, ignore_index=None)).save(tmp, format="PNG")
        elif self.format == "overlay":
            viz.save_instance_overlay(self.out / f"{stem}_overlay.png", image, inst, self.classes, self.alpha)
        elif self.format == "panel":
            viz.save_instance_panels(self.out / f"{stem}_panel.png", [(image, None, inst)], self.classes,
                                     titles=[path.name])
        self.detections += instances_to_coco(inst, self.image_id, cat_ids=self.cat_ids)
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(self.classes))
        return {"file": str(path), "output": f"{stem}.png", "image_id": self.image_id, "height": ids.shape[0],
                "width": ids.shape[1], "status": "ok", "detections": len(inst["labels"]),
                "instances": len(labels), **{f"count_{c}": int(counts[i]) for i, c in enumerate(self.classes) if i > 0}}

    def finish(self) -> None:
        """predictions.json: every kept detection (overlaps included) in COCO results format."""
        from seglab.fileio import atomic_write_text

        atomic_write_text(self.out / "predictions.json", json.dumps(self.detections) + "\n")


def _run_predict(paths: list[Path], failures: list[tuple[str, str]], writer: Any,
                 run: Callable[[Iterator[tuple[Path, np.ndarray]]], Iterator[tuple]], channels: int,
                 lookahead: int) -> int:
    """Stream ``paths`` through ``run`` (the model) into ``writer``; predictions.csv gets one row per input."""
    from seglab.fileio import atomic_path

    ok = 0
    writer.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(writer.out / "predictions.csv") as tmp, open(tmp, "w", newline="") as fh, \
            _progress("predict", len(paths)) as advance:
        table = csv.DictWriter(fh, fieldnames=writer.columns, restval="")
        table.writeheader()
        for p, reason in failures:
            table.writerow({"file": p, "status": f"error: {reason}"})

        def readable() -> Iterator[tuple[Path, np.ndarray]]:
            for path, image in _read_ahead(paths, channels, lookahead=lookahead):
                if isinstance(image, SeglabError):
                    failures.append((str(path), str(image)))
                    table.writerow({"file": str(path), "status": f"error: {image}"})
                    advance()
                    continue
                yield path, image

        for path, image, *result in run(readable()):
            try:
                table.writerow(writer.write(path, image, *result))
                ok += 1
            except (SeglabError, OSError) as e:
                failures.append((str(path), str(e)))
                table.writerow({"file": str(path), "status": f"error: {e}"})
            advance()
        writer.finish()
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


def _task(info: dict) -> str:
    """``semantic`` or ``instance``: the checkpoint's word, else the registry's for its model."""
    if info.get("task"):
        return str(info["task"])
    from seglab.models.registry import get_entry

    try:
        return get_entry(info["model"]["name"]).task
    except ModelError:
        return "semantic"


def _require_detector(model: Any, info: dict) -> None:
    from seglab.inference import is_instance_model

    if not is_instance_model(model):
        raise ModelError(f"{info['path']}: says task 'instance' but holds {info['model']['name']!r}, not a "
                         "detector; the checkpoint is inconsistent. Retrain or fix its 'task'.")


def _instance_categories(info: dict) -> tuple[list[str], list[int]]:
    """Class names and COCO category ids by contiguous label (index 0 = background)."""
    classes = list(info["classes"])
    cat_ids = [int(c) for c in info.get("cat_ids") or range(len(classes))]
    if len(cat_ids) != len(classes):
        raise ModelError(f"{info['path']}: {len(classes)} class names but {len(cat_ids)} category ids; the "
                         "checkpoint is inconsistent. Retrain or fix its 'cat_ids'.")
    return classes, cat_ids


def _refuse_for_instance(info: dict, **options: Any) -> None:
    given = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: {info['path']} is an instance checkpoint (Mask R-CNN); tiling, "
                          "overlap, blending, TTA, probabilities and feature grids apply to semantic models. Drop "
                          f"{' and '.join(given)}.")


def _print_instance_metrics(metrics: dict[str, Any], classes: list[str], cat_ids: list[int], title: str) -> None:
    from seglab.engine.instance import STAT_KEYS

    console.print(title, highlight=False)
    summary = Table(show_header=True)
    for col in ("metric", "mask", "box"):
        summary.add_column(col, justify="left" if col == "metric" else "right")
    for key in STAT_KEYS:
        summary.add_row(key, _pct(metrics.get(f"mask_{key}")), _pct(metrics.get(f"box_{key}")))
    console.print(summary)
    per_class = Table(show_header=True)
    for col in ("class", "mask AP", "box AP"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for name, cat in zip(classes[1:], cat_ids[1:], strict=True):
        per_class.add_row(name, *(_pct(metrics[f"{kind}_per_class_AP"].get(cat)) for kind in ("mask", "box")))
    console.print(per_class)


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
