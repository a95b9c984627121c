"""The plan's CPU U-Net step in each precision and memory format: the evidence for its bf16 + channels_last rule.

Question: on this machine, how fast is one training step (forward, loss, backward, AdamW) of the model
`seglab plan` picks for a CPU (U-Net width 16, 256x256 crops, batch 4), in fp32 and bf16 autocast, with
contiguous and channels-last memory? One thread (as the recipe comparisons run), the same random batch for
every setting, settings alternated round by round so machine noise hits all of them. Reported: the median
step time and the speed-up over fp32 contiguous.

    OMP_NUM_THREADS=1 python benchmarks/plan_step.py [--rounds 3] [--steps 5] [--channels 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from _common import write_result
from seglab.models import build_model

SETTINGS = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))


def make(channels: int, channels_last: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model("unet", 2, in_channels=channels, base_channels=16).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.AdamW(model.parameters(), 3e-3)


def step_times(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               precision: str, steps: int) -> list[float]:
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times[1:]  # the first step allocates and picks kernels


def run(rounds: int, steps: int, channels: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, channels, 256, 256, generator=g)
    y = torch.randint(0, 2, (4, 256, 256), generator=g)
    built = {s: make(channels, s[1]) for s in SETTINGS}
    times: dict[tuple, list[float]] = {s: [] for s in SETTINGS}
    for _ in range(rounds):
        for s in SETTINGS:
            xs = x.contiguous(memory_format=torch.channels_last) if s[1] else x
            times[s] += step_times(*built[s], xs, y, s[0], steps)
    base = statistics.median(times[SETTINGS[0]])
    rows = []
    for s in SETTINGS:
        med = statistics.median(times[s])
        rows.append({"precision": s[0], "memory format": "channels_last" if s[1] else "contiguous",
                     "s/step": round(med, 3), "img/s": round(4 / med, 2), "speed-up vs fp32": round(base / med, 2)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--channels", type=int, default=1)
    a = p.parse_args()
    rows = run(a.rounds, a.steps, a.channels)
    write_result("plan_step", "The plan's CPU U-Net (width 16, 256x256, batch 4): precision and memory format",
                 rows, notes=f"{a.channels} input channel(s), 2 classes, AdamW; median of {a.rounds} alternating "
                 f"rounds x {a.steps} steps after a warm-up step, one random batch for all settings. Set "
                 "OMP_NUM_THREADS=1 to match the recipe comparisons (one thread per run). bf16 needs a CPU with "
                 "AVX512-BF16 or AMX to be faster; elsewhere the plan's fp32 fallback is the row to read.")


if __name__ == "__main__":
    main()
