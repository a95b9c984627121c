"""`seglab export`: a checkpoint to ONNX or TorchScript with its metadata (one library call, then a summary)."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.app import app, console, err_console


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run directory."),
    format: str = typer.Option("onnx", "--format", help="onnx | torchscript"),
    out: Path | None = typer.Option(None, "--out", help="Output file (default: beside the checkpoint)."),
    check: bool = typer.Option(False, "--check", help="Run the exported file and report max |diff| vs PyTorch."),
    tolerance: float | None = typer.Option(None, "--tolerance", help="With --check or --half: fail above this "
                                           "difference (default 1e-3; 1e-2 with --half)."),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's; 18 or more for "
                                     "semantic models)."),
    half: bool = typer.Option(False, "--half", help="ONNX, semantic models: float16 weights (half the file), "
                              "float32 input/output; kept only if onnxruntime matches PyTorch within --tolerance."),
    check_image: list[Path] | None = typer.Option(None, "--check-image", help="Instance checkpoints: an image "
                                                  "to run the --check on (repeatable; default: noise)."),
    int8: bool = typer.Option(False, "--int8", help="Semantic models: static INT8 ONNX calibrated on your images; "
                              "written only if val mIoU drops by at most --max-drop vs FP32."),
    data: Path | None = typer.Option(None, "--data", help="--int8: dataset root (default: the run's data.root)."),
    calib_split: str = typer.Option("val", "--calib-split", help="--int8: split whose images calibrate."),
    calib_images: int = typer.Option(64, "--calib-images", help="--int8: images used for calibration."),
    max_drop: float = typer.Option(0.01, "--max-drop", help="--int8: largest val mIoU drop allowed (absolute)."),
) -> None:
    """Export a checkpoint to ONNX (axes batch/height/width) or TorchScript, with metadata inside."""
    from seglab.checkpoint import load_checkpoint
    from seglab.cli.progress import status
    from seglab.export import export_checkpoint, read_metadata
    from seglab.tasks import task_kind

    model, info = load_checkpoint(checkpoint)
    if int8:
        return _export_int8(model, info, out, format, data, calib_split, calib_images, max_drop)
    with status(f"exporting {info.model} to {format}"):
        result = export_checkpoint(model, info, out, format=format, check=check, tolerance=tolerance,
                                   check_images=check_image, opset=opset, half=half)
    size_mb = result.path.stat().st_size / 1e6
    graph = f", opset {result.opset}" if result.opset else ""
    meta = read_metadata(result.path) if task_kind(info.task).detector else {}
    if info.task == "instance":  # any size: the runtime scales each picture as the detector does, then the graph
        det = meta["seglab.detector"]
        console.print(f"exported {info.model} -> {result.path} ({format}{graph}, one RGB image of any size per call, "
                      f"scaled to a short side of {det['min_size']} px (long side at most {det['max_size']}) "
                      f"before the graph, {size_mb:.1f} MB)")
        probe = (f"{len(check_image)} image(s)" if check_image else "two noise images") + \
            f" at their own sizes, {result.detections_compared} detections compared"
    elif task_kind(info.task).detector:  # Panoptic FPN exports for one fixed-size image
        h, w = meta["seglab.input_size"]
        console.print(f"exported {info.model} -> {result.path} ({format}{graph}, one {h}x{w} RGB image per call, "
                      f"{size_mb:.1f} MB)")
        probe = (f"{len(check_image)} image(s)" if check_image else "two noise images") + \
            f" at {h}x{w}, {result.detections_compared} detections compared and the semantic maps (share of " \
            "pixels differing)"
    else:
        precision = ", float16 weights" if result.half else ""
        console.print(f"exported {info.model} -> {result.path} ({format}{graph}{precision}, dynamic axes "
                      f"batch/height/width, {size_mb:.1f} MB)")
        probe = "inputs (1, C, 64, 96) and (2, C, 61, 83)"
    if result.max_abs_diff is not None:
        console.print(f"check: max |{format} - pytorch| = {result.max_abs_diff:.3g} on {probe} "
                      f"(tolerance {result.tolerance:g})")
        if result.detections_compared == 0:
            err_console.print("warning: neither PyTorch nor the export detected anything in the check images, "
                              "so only that agreement was checked; rerun with --check-image IMAGE showing objects.")


def _export_int8(model, info, out: Path | None, format: str, data: Path | None, calib_split: str, calib_images: int,
                 max_drop: float) -> None:
    """``--int8``: one call (``export_int8``); both scores are printed whether it passes or is refused."""
    from seglab.cli.progress import status
    from seglab.errors import ConfigError
    from seglab.export.int8 import Int8Options, export_int8

    if format != "onnx":
        raise ConfigError(f"--int8 writes ONNX, not {format}. Drop --format or --int8.")
    target = out or Path(info.path).with_suffix(".int8.onnx")
    options = Int8Options(data=str(data) if data else None, calib_split=calib_split, calib_images=calib_images,
                          max_drop=max_drop)
    with status(f"exporting {info.model} to INT8 ONNX"):
        r = export_int8(model, info, target, options, callback=lambda text: err_console.print(text))
    console.print(f"exported {info.model} -> {r.path} (INT8, calibrated on {r.calib_images} image(s), "
                  f"{r.path.stat().st_size / 1e6:.1f} MB)")
    console.print(f"val {r.metric} on {r.images} image(s): FP32 {r.fp32:.4f}, INT8 {r.int8:.4f} "
                  f"(drop {r.fp32 - r.int8:+.4f}, allowed {max_drop:g}); stored in the file's metadata")
