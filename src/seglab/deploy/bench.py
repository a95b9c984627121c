"""``seglab bench``: CPU latency of one model per backend (torch fp32, torch bf16, ONNX FP32, ONNX INT8).

Each backend is measured in a fresh process (spawned), so its peak RSS is its own and one backend's threads
and caches do not warm the next. Warm-up calls are excluded; p50 / p95 are over the timed calls, img/s is
``1000 / mean ms`` at batch 1. The ONNX files are exported once, before the measured processes start; the INT8
file is calibrated on random inputs of the benchmark's shape (speed only: ``seglab export --int8`` is the
accuracy-gated path).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seglab.errors import ConfigError

BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")


@dataclass(frozen=True)
class BenchOptions:
    """Input shape ``(C, H, W)``, threads, warm-up calls, and the timed calls (at least ``iters``, or
    until ``seconds`` have passed once ``min_iters`` are done) per backend and round. ``rounds`` > 1 measures the
    backends in turn that many times (A B C, A B C, ...), each time in a fresh process, and pools each backend's
    calls: a machine that speeds up or slows down during the run then weighs on every backend alike, so the
    ratios are side by side."""

    input: tuple[int, int, int] = (3, 512, 512)
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    warmup: int = 3
    iters: int = 20
    min_iters: int = 5
    seconds: float = 20.0
    backends: tuple[str, ...] = BACKENDS
    rounds: int = 1


def parse_input(text: str) -> tuple[int, int, int]:
    """``"3x512x512"`` -> ``(3, 512, 512)``."""
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise ConfigError(f"--input {text!r}: expected CxHxW such as 3x512x512.") from e
    if min(c, h, w) < 1:
        raise ConfigError(f"--input {text!r}: every size must be positive.")
    return c, h, w


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 / AMX), where torch's bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def timings(call, options: BenchOptions) -> dict[str, float]:
    """Run ``call`` ``warmup`` times untimed, then time it; p50 / p95 / mean in ms and img/s."""
    for _ in range(options.warmup):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + options.seconds
    while len(times) < options.iters and (len(times) < options.min_iters or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return summary(times)


def summary(times: list[float]) -> dict[str, Any]:
    """p50 / p95 (ms), img/s (from the mean call) and the count of timed calls (``times`` in ms, kept too)."""
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "img_s": 1000.0 / statistics.fmean(times), "calls": len(times), "times": list(times)}


def _peak_rss_mib() -> float | None:
    """This process's peak RSS (``VmHWM``; not ``ru_maxrss``, which a spawned child inherits from its parent
    across exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def measure(backend: str, source: dict[str, Any], options: BenchOptions) -> dict[str, Any]:
    """One backend's row, measured in this process (the parent runs it in a fresh spawned process)."""
    x = np.random.default_rng(0).standard_normal((1, *options.input)).astype(np.float32)
    if backend.startswith("onnx"):
        from seglab.runtime import load_bundle

        bundle = load_bundle(source[backend], threads=options.threads)
        row = timings(lambda: bundle.run(x), options)
    else:
        import torch

        torch.set_num_threads(options.threads)
        model = _torch_model(source).eval()
        t = torch.from_numpy(x)
        bf16 = backend == "torch-bf16"

        def call() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(t)

        row = timings(call, options)
    return {"backend": backend, **row, "peak_rss_mib": _peak_rss_mib()}


def _torch_model(source: dict[str, Any]):
    if source.get("checkpoint"):
        from seglab.checkpoint import load_checkpoint

        return load_checkpoint(source["checkpoint"])[0]
    from seglab.models import build_model

    return build_model(source["model"], source.get("num_classes", 21), in_channels=source["in_channels"],
                       **source.get("options", {}))


def _child(backend: str, source: dict[str, Any], options: BenchOptions, queue) -> None:
    try:
        queue.put(measure(backend, source, options))
    except Exception as e:  # reported as the row's note; the other backends still run
        queue.put({"backend": backend, "note": f"failed: {type(e).__name__}: {str(e)[:160]}"})


def run_isolated(backend: str, source: dict[str, Any], options: BenchOptions) -> dict[str, Any]:
    """``measure`` in a fresh spawned process (its own peak RSS, no shared thread pools)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(backend, source, options, queue))
    proc.start()
    try:
        row = queue.get(timeout=max(600.0, options.seconds * 4))
    except Exception:
        row = {"backend": backend, "note": "failed: no result (crashed or timed out)"}
    proc.join(timeout=30)
    return row


@dataclass
class BenchReport:
    """Rows per backend with where they were measured."""

    target: str
    cpu: str
    threads: int
    input: tuple[int, int, int]
    rows: list[dict[str, Any]]
    task: str = "semantic"

    def speedup(self, a: str, b: str) -> float | None:
        """img/s of backend ``a`` over backend ``b`` (``None`` when either is missing)."""
        rate = {r["backend"]: r.get("img_s") for r in self.rows}
        return rate[a] / rate[b] if rate.get(a) and rate.get(b) else None


def bench(target: str, options: BenchOptions | None = None, *, model_options: dict[str, Any] | None = None,
          callback=None) -> BenchReport:
    """Measure ``target`` (a registry model name, a checkpoint / run directory, or a ``.onnx`` bundle).

    Raises:
        ConfigError: an unknown backend or a bad input shape; ModelError / CheckpointError: unloadable target.
    """
    options = options or BenchOptions()
    unknown = [b for b in options.backends if b not in BACKENDS]
    if unknown or options.threads < 1 or options.rounds < 1:
        raise ConfigError(f"bench: unknown backend(s) {unknown} (known: {', '.join(BACKENDS)}), --threads < 1 or "
                          "--rounds < 1.")
    say = callback or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="seglab-bench-") as tmp:
        source, task, skipped = _prepare(target, options, model_options or {}, Path(tmp), say)
        measured: dict[str, list[dict[str, Any]]] = {b: [] for b in options.backends if b not in skipped}
        for r in range(options.rounds):
            for backend in measured:
                say(f"measuring {backend}" + (f" (round {r + 1} of {options.rounds})" if options.rounds > 1 else ""))
                measured[backend].append(run_isolated(backend, source, options))
        rows = [{"backend": b, "note": skipped[b]} if b in skipped else _pooled(b, measured[b])
                for b in options.backends]
    return BenchReport(target, cpu_model(), options.threads, options.input, rows, task)


def _pooled(backend: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a backend's rounds: every timed call pooled, the largest peak RSS; a failed round's note wins."""
    failed = [r for r in runs if "times" not in r]
    if failed:
        return failed[0]
    rss = [r["peak_rss_mib"] for r in runs if r.get("peak_rss_mib") is not None]
    row = summary([t for r in runs for t in r["times"]])
    del row["times"]
    return {"backend": backend, **row, "peak_rss_mib": max(rss) if rss else None, "rounds": len(runs)}


def _prepare(target: str, options: BenchOptions, model_options: dict[str, Any], tmp: Path, say
             ) -> tuple[dict[str, Any], str, dict[str, str]]:
    """The source each backend loads, the task, and the backends that cannot run (with why)."""
    from seglab.runtime import is_bundle

    c = options.input[0]
    skipped: dict[str, str] = {}
    if not has_bf16():
        skipped["torch-bf16"] = "n/a: this CPU has no native bfloat16 (AVX512-BF16 / AMX)"
    if is_bundle(target):
        from seglab.runtime import load_bundle

        bundle = load_bundle(target)
        if bundle.task != "semantic":
            raise ConfigError(f"bench {target}: a {bundle.task} bundle; seglab bench times semantic models (batch 1 "
                              "tensors). Time a detector with `seglab serve` and its load test instead.")
        int8 = "int8" in str(bundle.meta.get("seglab.precision", ""))
        source = {"onnx-int8" if int8 else "onnx-fp32": target}
        for b in ("torch-fp32", "torch-bf16"):
            skipped[b] = "n/a: a bundle holds no torch model"
        skipped["onnx-fp32" if int8 else "onnx-int8"] = "n/a: give the run to compare FP32 and INT8"
        return source, bundle.task, skipped
    model, source, task = _load_torch(target, c, model_options)
    if task != "semantic":
        skipped.update({b: "n/a: bench exports semantic models to ONNX" for b in ("onnx-fp32", "onnx-int8")})
        return source, task, skipped
    wanted = [b for b in ("onnx-fp32", "onnx-int8") if b in options.backends]
    if wanted:
        try:
            _export(model, source, c, tmp, options, "onnx-int8" in wanted, say)
        except Exception as e:  # seglab's ModelError (no ONNX for this model) and the quantizer's own errors
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            for b in ("onnx-fp32", "onnx-int8"):
                if b not in source:
                    skipped[b] = f"n/a: {reason}"
    return source, task, skipped


def _load_torch(target: str, in_channels: int, model_options: dict[str, Any]):
    from seglab.models.registry import get_entry

    if Path(target).exists():
        from seglab.checkpoint import load_checkpoint

        model, info = load_checkpoint(target)
        return model, {"checkpoint": str(target), "in_channels": info.in_channels, "name": info.model}, info.task
    task = getattr(get_entry(target), "task", "semantic")
    source = {"model": target, "in_channels": in_channels, "options": model_options, "name": target}
    if task != "semantic":
        raise ConfigError(f"bench {target}: a {task} model; seglab bench times semantic models (batch 1 tensors).")
    return _torch_model(source).eval(), source, task


def _export(model, source: dict[str, Any], c: int, tmp: Path, options: BenchOptions, int8: bool, say) -> None:
    from seglab.export import export_model
    from seglab.export.int8 import quantize

    say("exporting ONNX FP32")
    fp32 = tmp / "fp32.onnx"
    export_model(model, fp32, in_channels=c, model_name=source["name"],
                 metadata={"seglab.classes": [], "seglab.in_channels": c})
    source["onnx-fp32"] = str(fp32)
    if int8:
        say("quantizing ONNX INT8 (random calibration: speed only)")
        rng = np.random.default_rng(0)
        samples = iter([{"image": rng.standard_normal((1, *options.input)).astype(np.float32)} for _ in range(4)])
        quantize(fp32, tmp / "int8.onnx", _reader(samples))
        source["onnx-int8"] = str(tmp / "int8.onnx")


def _reader(items):
    """An onnxruntime calibration reader over an iterator of input dicts."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(items, None)

    return Reader()


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["base_channels=16", "encoder=resnet18"]`` -> ``{"base_channels": 16, "encoder": "resnet18"}``."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE, e.g. base_channels=16.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
