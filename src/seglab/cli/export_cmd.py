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
) -> None:
    """Export a checkpoint to ONNX (axes batch/height/width) or TorchScript, with metadata inside."""
    from seglab.checkpoint import load_checkpoint
    from seglab.cli.progress import status
    from seglab.export import export_checkpoint, read_metadata

    model, info = load_checkpoint(checkpoint)
    with status(f"exporting {info.model} to {format}"):
        result = export_checkpoint(model, info, out, format=format, check=check, tolerance=tolerance,
                                   check_images=check_image, opset=opset, half=half)
    size_mb = result.path.stat().st_size / 1e6
    graph = f", opset {result.opset}" if result.opset else ""
    if info.task != "semantic":  # detectors (instance, panoptic) export for one fixed-size image
        h, w = read_metadata(result.path)["seglab.input_size"]
        console.print(f"exported {info.model} -> {result.path} ({format}{graph}, one {h}x{w} RGB image per call, "
                      f"{size_mb:.1f} MB)")
        probe = (f"{len(check_image)} image(s)" if check_image else "two noise images") + \
            f" at {h}x{w}, {result.detections_compared} detections compared" + \
            (" and the semantic maps (share of pixels differing)" if info.task == "panoptic" else "")
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
