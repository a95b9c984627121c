"""`seglab inspect`: feature maps of chosen layers and a class-activation map per class, for one image."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.app import app, console


@app.command()
def inspect(
    run: Path = typer.Argument(..., help="Run directory (its best.pt) or a checkpoint file."),
    image: Path = typer.Argument(..., help="An image file."),
    layers: str | None = typer.Option(None, "--layers", help="Comma-separated module names, e.g. down.3,up.3 "
                                      "(default: the deepest feature map and the last full-resolution one)."),
    cam_layer: str | None = typer.Option(None, "--cam-layer", help="Layer for Grad-CAM (default: the last of "
                                         "--layers)."),
    out: Path = typer.Option(Path("inspect"), "--out", help="Folder for features_<layer>.png and cam.png."),
) -> None:
    """Write the 16 strongest channels of each layer and a Grad-CAM map per class (semantic checkpoints)."""
    import torch

    from seglab.checkpoint import load_checkpoint
    from seglab.data.io import read_image
    from seglab.errors import ConfigError
    from seglab.fileio import check_output_path
    from seglab.inference.inspect import inspect_image

    check_output_path(out, directory=True)
    model, info = load_checkpoint(run)
    if info.task != "semantic":
        raise ConfigError(f"{info.path}: seglab inspect reads semantic checkpoints; this one is {info.task}.")
    pixels = read_image(image, channels=info.image_channels)
    tensor = torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float() / 255.0
    if info.in_channels == 3 and tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    written = inspect_image(model, tensor, out, layers=[s.strip() for s in (layers or "").split(",") if s.strip()],
                            class_names=info.classes, mean=info.mean, std=info.std, cam_layer=cam_layer,
                            resize=info.resize)
    console.print(f"[green]wrote[/] {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)
