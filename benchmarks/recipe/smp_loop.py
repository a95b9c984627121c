"""The plain loop a user would write around segmentation_models_pytorch: the recipe issue's comparison baseline.

Run it in a separate environment (smp is not a seglab dependency), on one thread, for a wall-clock budget:

    python -m venv /tmp/smpvenv && /tmp/smpvenv/bin/pip install torch torchvision segmentation-models-pytorch
    OMP_NUM_THREADS=1 /tmp/smpvenv/bin/python benchmarks/recipe/smp_loop.py DATA --minutes 12 --out smp.json

``Unet('resnet34', encoder_weights=None)``, AdamW 1e-3, cross-entropy, random 256 crops with flips, fp32; the
validation mIoU (dataset-level confusion matrix, ignore 255 excluded, classes absent from truth and
prediction skipped) of the last weights is written to ``--out``. It reads seglab's folder layout directly.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from PIL import Image


def load(root: Path, split: str, channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for img in sorted((root / "images" / split).glob("*.png")):
        x = np.asarray(Image.open(img).convert("L" if channels == 1 else "RGB"), np.float32) / 255.0
        y = np.asarray(Image.open(root / "labels" / split / img.name), np.int64)
        pairs.append((x[None] if channels == 1 else x.transpose(2, 0, 1), y))
    return pairs


def batch(data: list, size: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for x, y in random.sample(data, size):
        i, j = random.randint(0, y.shape[0] - crop), random.randint(0, y.shape[1] - crop)
        x, y = x[:, i:i + crop, j:j + crop], y[i:i + crop, j:j + crop]
        if random.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


@torch.no_grad()
def miou(model: torch.nn.Module, data: list, k: int) -> float:
    model.eval()
    cm = np.zeros((k, k), np.int64)
    for x, y in data:
        h, w = y.shape
        ph, pw = (-h) % 32, (-w) % 32
        logits = model(F.pad(torch.from_numpy(x)[None], (0, pw, 0, ph)))[0, :, :h, :w]
        p, t = logits.argmax(0).numpy().ravel(), y.ravel()
        keep = t != 255
        cm += np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)
    inter, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
    return float(np.mean([i / u for i, u in zip(inter, union, strict=True) if u > 0]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("smp.json"))
    a = ap.parse_args()
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    train, val = load(a.data, "train", a.channels), load(a.data, "val", a.channels)
    model = smp.Unet("resnet34", encoder_weights=None, in_channels=a.channels, classes=a.classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < 60 * a.minutes:
        model.train()
        x, y = batch(train, 4, 256)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    result = {"val_mean_iou": miou(model, val, a.classes), "steps": steps, "images_seen": 4 * steps,
              "train_minutes": round((time.perf_counter() - start) / 60, 2), "seed": a.seed}
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
