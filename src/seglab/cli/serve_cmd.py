"""`seglab serve`: an HTTP server for a bundle or a run (one library call, ``deploy.server.serve``)."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.app import app, console


@app.command()
def serve(
    model: Path = typer.Argument(..., help="A .onnx bundle (onnxruntime, no torch) or a checkpoint / run directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Predictions run at once (threads)."),
    queue: int = typer.Option(16, "--queue", help="Requests allowed to wait beyond --workers; more get 503."),
    threads: int | None = typer.Option(None, "--threads", help="Compute threads per prediction (default: the "
                                       "runtime's choice)."),
    max_bytes: int = typer.Option(20 * 1024 * 1024, "--max-bytes", help="Largest upload accepted (413 beyond)."),
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", help="Largest image accepted, in pixels (413)."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", help="Instance runs and bundles: answer detections "
                                          "scoring at least this."),
) -> None:
    """Serve POST /predict (PNG class map, or JSON detections / segments), GET /health and GET /info; SIGTERM drains."""
    from seglab.deploy.server import Limits, check_limits
    from seglab.deploy.server import serve as run_server

    limits = check_limits(Limits(max_bytes=max_bytes, max_pixels=max_pixels, workers=workers, queue=queue))
    run_server(str(model), host=host, port=port, limits=limits, threads=threads, score_threshold=score_threshold,
               ready=lambda h, p: console.print(f"serving {model} on http://{h}:{p} (POST /predict, GET /health, "
                                                f"GET /info); Ctrl-C or SIGTERM stops after the requests in flight"))
