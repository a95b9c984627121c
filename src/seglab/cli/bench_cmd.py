"""`seglab bench`: CPU latency per backend for a model, run or bundle (one library call, then a table)."""

from __future__ import annotations

import typer

from seglab.cli.app import app, console, err_console


@app.command()
def bench(
    target: str = typer.Argument(..., help="A model name (`seglab models`), a checkpoint / run directory, or a "
                                 ".onnx bundle."),
    input: str = typer.Option("3x512x512", "--input", help="Input shape CxHxW (batch 1)."),
    threads: int | None = typer.Option(None, "--threads", help="Compute threads for every backend (default: all "
                                       "cores)."),
    iters: int = typer.Option(20, "--iters", help="Timed calls per backend (after --warmup untimed ones)."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed calls first."),
    seconds: float = typer.Option(20.0, "--seconds", help="Stop timing a backend after this (5 calls at least)."),
    rounds: int = typer.Option(1, "--rounds", help="Measure the backends in turn this many times, each in a "
                               "fresh process, and pool each one's calls: ratios side by side on a machine whose "
                               "speed drifts."),
    option: list[str] | None = typer.Option(None, "--option", "-o", help="Model option KEY=VALUE for a model "
                                            "name (repeatable), e.g. -o base_channels=16."),
) -> None:
    """Latency p50/p95 (ms), img/s and peak RSS for torch fp32, torch bf16, ONNX FP32 and ONNX INT8."""
    import os

    from seglab.deploy.bench import BenchOptions, parse_input, parse_options
    from seglab.deploy.bench import bench as run_bench

    options = BenchOptions(input=parse_input(input), threads=threads or os.cpu_count() or 1, warmup=warmup,
                           iters=iters, seconds=seconds, rounds=rounds)
    report = run_bench(target, options, model_options=parse_options(option or []),
                       callback=lambda text: err_console.print(text))
    c, h, w = report.input
    console.print(f"{report.target}: input 1x{c}x{h}x{w}, CPU {report.cpu}, {report.threads} thread(s)")
    console.print(f"{'backend':<12} {'p50 ms':>9} {'p95 ms':>9} {'img/s':>8} {'peak RSS MiB':>13}  note")
    for r in report.rows:
        if "img_s" in r:
            console.print(f"{r['backend']:<12} {r['p50_ms']:>9.1f} {r['p95_ms']:>9.1f} {r['img_s']:>8.2f} "
                          f"{r['peak_rss_mib'] or float('nan'):>13.0f}  {r['calls']} timed calls"
                          + (f" in {r['rounds']} rounds" if r.get("rounds", 1) > 1 else ""))
        else:
            console.print(f"{r['backend']:<12} {'-':>9} {'-':>9} {'-':>8} {'-':>13}  {r.get('note', '')}")
    for a, b in (("onnx-int8", "onnx-fp32"), ("onnx-fp32", "torch-fp32")):
        ratio = report.speedup(a, b)
        if ratio is not None:
            console.print(f"{a} / {b}: {ratio:.2f}x img/s")
