"""Forward+backward throughput of every semantic model at 256x256 (CPU, batch 4, fp32 and bf16 autocast),
and U-Net/ResNet-34 against segmentation_models_pytorch's ``Unet('resnet34')`` measured in the same run.

Run: ``python benchmarks/models.py [--quick]``. Each measurement runs for about ``--seconds`` after one
warm-up step (at least ``--min-iters`` steps); big models therefore get fewer steps, reported per row.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import write_result
from seglab.models import build_model, count_parameters, list_models

SIZE, BATCH, CLASSES = 256, 4, 21


def step_fn(model: torch.nn.Module, x: torch.Tensor, bf16: bool):
    """One training-style step: forward (optionally under bf16 autocast), loss, backward."""

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        logits = out["out"] if isinstance(out, dict) else out
        logits.float().mean().backward()

    return step


def images_per_s(step, seconds: float, min_iters: int) -> tuple[float, int]:
    """Warm up once, then time whole steps until ``seconds`` have passed (at least ``min_iters``)."""
    step()
    n, start = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - start < seconds:
        step()
        n += 1
    return BATCH * n / (time.perf_counter() - start), n


def interleaved(steps: dict[str, object], rounds: int) -> dict[str, float]:
    """Alternate the candidates step by step so drifting machine load hits both alike; images/s each."""
    for s in steps.values():
        s()
    total = dict.fromkeys(steps, 0.0)
    for _ in range(rounds):
        for name, s in steps.items():
            t = time.perf_counter()
            s()
            total[name] += time.perf_counter() - t
    return {k: BATCH * rounds / v for k, v in total.items()}


def bench_registry(seconds: float, min_iters: int, only: list[str] | None = None) -> list[dict]:
    rows = []
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    for entry in list_models():
        if entry.task != "semantic" or (only and entry.name not in only):
            continue
        torch.manual_seed(0)
        model = build_model(entry.name, CLASSES).train()
        row = {"model": entry.name, "params_M": count_parameters(entry.name, CLASSES) / 1e6}
        for label, bf16 in (("fp32", False), ("bf16", True)):
            ips, n = images_per_s(step_fn(model, x, bf16), seconds, min_iters)
            row[f"{label}_img_s"], row[f"{label}_iters"] = ips, n
        print(row, flush=True)
        rows.append(row)
    return rows


def bench_smp(rounds: int) -> tuple[list[dict], str]:
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return [], "segmentation_models_pytorch is not installed: the smp comparison was skipped."
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    torch.manual_seed(0)
    ours = build_model("unet", CLASSES, encoder="resnet34").train()
    ours_nearest = build_model("unet", CLASSES, encoder="resnet34", upsample="nearest").train()
    theirs = smp.Unet("resnet34", encoder_weights=None, classes=CLASSES).train()
    rows = []
    for label, bf16 in (("fp32", False), ("bf16", True)):
        r = interleaved({"seglab": step_fn(ours, x, bf16), "seglab_nearest": step_fn(ours_nearest, x, bf16),
                         "smp": step_fn(theirs, x, bf16)}, rounds)
        rows.append({"model": f"unet encoder=resnet34 vs smp.Unet('resnet34') [{label}]",
                     "seglab_img_s": r["seglab"], "seglab_nearest_img_s": r["seglab_nearest"],
                     "smp_img_s": r["smp"], "ratio": r["seglab"] / r["smp"],
                     "ratio_nearest": r["seglab_nearest"] / r["smp"], "rounds": rounds})
        print(rows[-1], flush=True)
    return rows, f"smp {smp.__version__}, encoder_weights=None, same input and loss, steps interleaved."


def remeasure(names: list[str], seconds: float, min_iters: int) -> None:
    """Measure ``names`` again and put their rows into results/models.json in place of the old ones.

    A row that looked wrong (hrnet_w18 at 0.086 img/s from a single timed step) can be fixed without
    re-running the whole zoo; the row records its own conditions, since the file's header describes the rest.
    """
    import datetime
    import json
    import os

    from _common import RESULTS, render_doc

    path = RESULTS / "models.json"
    record = json.loads(path.read_text())
    load = os.getloadavg()[0]
    new = {r["model"]: r for r in bench_registry(seconds, min_iters, names)}
    for r in new.values():
        r["measured"] = (f"re-measured {datetime.date.today().isoformat()}: threads {torch.get_num_threads()}, "
                         f"1-min load average {load:.1f} on {os.cpu_count()} cores before the run")
    record["rows"] = [new.get(r.get("model"), r) for r in record["rows"]]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    render_doc()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="time budget per measurement")
    parser.add_argument("--min-iters", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="interleaved steps for the smp comparison")
    parser.add_argument("--quick", action="store_true", help="smp comparison only")
    parser.add_argument("--model", action="append", default=[], help="re-measure only this model (repeatable): "
                        "its row in results/models.json is replaced and says when, with how many threads and at "
                        "what machine load it was measured; the other rows stay as they are")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        remeasure(args.model, args.seconds, args.min_iters)
        return
    smp_rows, smp_note = bench_smp(args.rounds)
    rows = [] if args.quick else bench_registry(args.seconds, args.min_iters)
    notes = (f"Forward+backward training steps at {SIZE}x{SIZE}, batch {BATCH}, {CLASSES} classes, CPU, default "
             "widths; img/s = images per second (higher is better); *_iters = timed steps after one warm-up. "
             "ratio = seglab img/s / smp img/s (target >= 1.0); `seglab` is unet(encoder='resnet34') as "
             "shipped (2x2 transposed-conv upsampling), `seglab_nearest` the same with upsample='nearest' "
             f"(smp's choice). {smp_note}")
    write_result("models", "Model zoo training throughput (CPU)", smp_rows + rows, notes=notes)


if __name__ == "__main__":
    main()
