"""CPU latency per backend (``seglab bench``) for every model in ``seglab models``, plus the INT8 targets at 512.

Two results: ``cpu_latency_targets`` (the planned CPU U-Net, ``unet`` with ``base_channels=16``, and
``lraspp_mobilenet_v3`` at 3x512x512: is ONNX INT8 >= 1.5x ONNX FP32, is ONNX FP32 >= torch eager fp32?) and
``cpu_latency`` (every registered model at ``--size``, default 256: the 512 run of the large models does not fit
a shared 2-core machine's time). Random weights (speed does not depend on them), batch 1, each backend in its
own process (``seglab.deploy.bench``). Instance and panoptic models are listed without numbers: ``seglab bench``
times semantic models.

Usage: python benchmarks/cpu_latency.py [--size 256] [--threads 2] [--target-threads 1 2] [--only-targets]
       [--models a b] [--rounds 3] [--target-rounds 3]
"""

from __future__ import annotations

import argparse
import os

from _common import write_result

TARGETS = [("unet", {"base_channels": 16}), ("lraspp_mobilenet_v3", {})]


def rows_for(name: str, options: dict, size: int, threads: int, iters: int, seconds: float,
             with_threads: bool = False, rounds: int = 1) -> list[dict]:
    from seglab.deploy.bench import BenchOptions, bench

    label = name + "".join(f" {k}={v}" for k, v in options.items()) + (f", {threads} thread(s)" if with_threads else "")
    report = bench(name, BenchOptions(input=(3, size, size), threads=threads, warmup=2, iters=iters, min_iters=3,
                                      seconds=seconds, rounds=rounds), model_options=options)
    out = []
    for r in report.rows:
        row = {"model": label, "input": f"3x{size}x{size}", "backend": r["backend"]}
        if "img_s" in r:
            row.update({"p50_ms": round(r["p50_ms"], 1), "p95_ms": round(r["p95_ms"], 1),
                        "img_s": round(r["img_s"], 2), "peak_rss_mib": r["peak_rss_mib"], "calls": r["calls"]})
        else:
            row["note"] = r.get("note", "")
        out.append(row)
    for a, b in (("onnx-int8", "onnx-fp32"), ("onnx-fp32", "torch-fp32")):
        ratio = report.speedup(a, b)
        if ratio is not None:
            out.append({"model": label, "input": f"3x{size}x{size}", "backend": f"{a} / {b}",
                        "note": f"{ratio:.2f}x img/s"})
    print("\n".join(map(str, out)), flush=True)
    return out


def main() -> None:
    import seglab.models  # noqa: F401  (registers every model)
    from seglab.deploy.bench import cpu_model
    from seglab.models.registry import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--target-threads", type=int, nargs="+", default=[1, min(2, os.cpu_count() or 1)],
                        help="thread counts the 512 targets are measured at (INT8 gains more on one thread)")
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--target-rounds", type=int, default=3,
                        help="the targets' backends measured in turn this many times (seglab bench --rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="the same for every model's row")
    parser.add_argument("--only-targets", action="store_true")
    parser.add_argument("--skip-targets", action="store_true")
    parser.add_argument("--models", nargs="*")
    args = parser.parse_args()
    where = f"CPU {cpu_model()}, {args.threads} threads, batch 1, random weights"
    if not args.skip_targets:
        rows = []
        threads = sorted(set(args.target_threads))
        for n in threads:
            for name, options in TARGETS:
                rows += rows_for(name, options, 512, n, args.iters, args.seconds, with_threads=True,
                                 rounds=args.target_rounds)
        at = f"CPU {cpu_model()}, {' and '.join(map(str, threads))} thread(s), batch 1, random weights"
        write_result("cpu_latency_targets", "CPU latency targets at 512: INT8 vs FP32 vs torch eager", rows,
                     notes=f"Written by `python benchmarks/cpu_latency.py --only-targets`. {at}. Targets: "
                           "onnx-int8 / onnx-fp32 >= 1.5x; onnx-fp32 / torch-fp32 >= 1.0x. "
                           f"The backends measured in turn {args.target_rounds} times (each time in a fresh "
                           "process, calls pooled: seglab bench --rounds) with nothing else running; the ratios "
                           "are the claim (absolute CPU times depend on the machine).",
                     command="python benchmarks/cpu_latency.py --only-targets")
    if args.only_targets:
        return
    rows = []
    for name in args.models or sorted(MODELS):
        entry = MODELS[name]
        if entry.task != "semantic":
            rows.append({"model": name, "input": "-", "backend": "-",
                         "note": f"{entry.task}: not measured (seglab bench times semantic models)"})
            continue
        rows += rows_for(name, {}, args.size, args.threads, args.iters, args.seconds, rounds=args.rounds)
        write_result("cpu_latency", f"CPU latency of every model at {args.size}x{args.size} (seglab bench)", rows,
                     command=f"python benchmarks/cpu_latency.py --skip-targets --size {args.size}",
                     notes=f"{where}; default options of each model; the backends measured in turn {args.rounds} "
                           "time(s), each in a fresh process, calls pooled. "
                           f"{args.size} px, not 512: the large models' 512 run does not fit this shared 2-core "
                           "machine's time.")


if __name__ == "__main__":
    main()
