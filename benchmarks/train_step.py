"""Training throughput: seglab's Trainer vs the study guide's plain `train_epoch`, same model and data.

Question: what does the engine (seeded sampler, autocast, accumulation bookkeeping, non-finite check,
progress, hooks) cost per image? Both sides read the same synthetic 256x256 dataset through the same
SegmentationFolder + transforms, train a U-Net (base 32) with batch 8 and Adam, and alternate rounds
so machine noise hits both. Reported: images/s per side and the ratio trainer / plain (target >= 0.95),
in fp32 and in bf16 + channels_last.

    python benchmarks/train_step.py [--images 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from _common import write_result
from seglab.config import config_from_dict
from seglab.data.synthetic import make_shapes
from seglab.engine.trainer import Trainer
from seglab.models import build_model


def plain_train_epoch(model, dataloader, criterion, optimizer, device, autocast, channels_last) -> float:
    """The study guide's loop (forward, loss, zero_grad, backward, step), plus the same autocast."""
    model.train()
    total_loss = 0.0
    for images, masks in dataloader:
        images, masks = images.to(device), masks.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast():
            outputs = model(images)
            loss = criterion(outputs.float(), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
    return total_loss / len(dataloader)


def make_config(data: Path, out: Path, precision: str, channels_last: bool):
    return config_from_dict({
        "data": {"root": str(data), "crop_size": 256, "scale": [1.0, 1.0], "color_jitter": 0.0, "workers": 0},
        "model": {"name": "unet", "options": {"base_channels": 32}},
        "train": {"out": str(out), "epochs": 1, "batch_size": 8, "lr": 1e-4, "optimizer": "adam",
                  "schedule": "constant", "warmup_epochs": 0.0, "precision": precision,
                  "channels_last": channels_last, "num_samples": 0},
    })


def run(images: int, rounds: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_shapes(Path(tmp) / "data", n_train=images, n_val=2, size=256, seed=0)
        for precision, cl in (("fp32", False), ("bf16", True)):
            trainer = Trainer(make_config(data, Path(tmp) / f"run_{precision}", precision, cl))
            plain_model = build_model("unet", trainer.task.num_classes, base_channels=32)
            if cl:
                plain_model = plain_model.to(memory_format=torch.channels_last)
            loader = torch.utils.data.DataLoader(trainer.task.train_set, batch_size=8, shuffle=True, drop_last=True)
            opt = torch.optim.Adam(plain_model.parameters(), lr=1e-4)
            ce = nn.CrossEntropyLoss(ignore_index=255)
            n = len(loader) * 8
            best = {"trainer": float("inf"), "plain": float("inf")}
            for _ in range(rounds):
                t0 = time.perf_counter()
                trainer.train_epoch()
                best["trainer"] = min(best["trainer"], time.perf_counter() - t0)
                trainer.state.epoch_pos = 0
                t0 = time.perf_counter()
                plain_train_epoch(plain_model, loader, ce, opt, "cpu", trainer.autocast, cl)
                best["plain"] = min(best["plain"], time.perf_counter() - t0)
            tr, pl = n / best["trainer"], n / best["plain"]
            rows.append({"setting": f"{precision}" + (" + channels_last" if cl else ""),
                         "trainer img/s": round(tr, 2), "plain loop img/s": round(pl, 2),
                         "ratio trainer/plain": round(tr / pl, 3)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    rows = run(a.images, a.rounds)
    write_result("train_step", "Training step: seglab Trainer vs the study guide's plain loop (U-Net base 32, "
                 "256x256, batch 8, CPU)", rows,
                 notes=f"{a.images} images per epoch, best of {a.rounds} alternating rounds; both sides load data "
                 "through the same SegmentationFolder + transforms. Target ratio >= 0.95.")


if __name__ == "__main__":
    main()
