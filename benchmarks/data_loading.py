"""Dataset loading + joint augmentation throughput at 512x512, one worker, vs a plain PIL + numpy loop.

Run: ``python benchmarks/data_loading.py [--images 16] [--repeats 5]``. Both pipelines read the same
synthetic 512x512 RGB images and index labels from a temp folder and do the same work per sample: decode,
random rescale by 0.5-2.0 (image bilinear, label nearest), pad + random 512x512 crop (label padded with
ignore), horizontal flip, brightness/contrast/saturation jitter of 0.2 on the image, scale to [0, 1],
normalize, and hand back a float32 C x H x W tensor with an int64 H x W mask. One process and one torch
thread, as in a DataLoader worker. The two are interleaved within each repeat so background load hits them
alike; the table reports the median repeat.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _common import write_result
from seglab.data.synthetic import make_shapes
from seglab.data.transforms import build_train_transforms

SIZE = 512
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def seglab_pipeline(root: Path) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """SegmentationFolder + build_train_transforms (what `seglab train` uses)."""
    from seglab.data.semantic.dataset import SegmentationFolder

    tf = build_train_transforms(SIZE, scale=(0.5, 2.0), hflip=0.5, color_jitter=0.2, mean=MEAN, std=STD)
    ds = SegmentationFolder(root, "train", transforms=tf)
    return ds.__getitem__


def plain_pipeline(root: Path) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """A hand-written PIL + numpy loop doing the same work, the way a training script usually does it."""
    images = sorted((root / "images" / "train").glob("*.png"))
    labels = [root / "labels" / "train" / p.name for p in images]
    rng = np.random.default_rng(0)
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)

    def load(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = Image.open(images[i]).convert("RGB"), Image.open(labels[i])
        f = rng.uniform(0.5, 2.0)
        size = (round(img.width * f), round(img.height * f))
        x = np.asarray(img.resize(size, Image.BILINEAR), np.float32)
        y = np.asarray(lab.resize(size, Image.NEAREST), np.int64)
        ph, pw = max(SIZE - x.shape[0], 0), max(SIZE - x.shape[1], 0)
        x = np.pad(x, ((0, ph), (0, pw), (0, 0)))
        y = np.pad(y, ((0, ph), (0, pw)), constant_values=255)
        top, left = rng.integers(0, x.shape[0] - SIZE + 1), rng.integers(0, x.shape[1] - SIZE + 1)
        x, y = x[top:top + SIZE, left:left + SIZE], y[top:top + SIZE, left:left + SIZE]
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        x = x * rng.uniform(0.8, 1.2)  # brightness
        gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
        c = rng.uniform(0.8, 1.2)
        x = np.clip((x - gray.mean()) * c + gray.mean(), 0, 255)  # contrast
        s = rng.uniform(0.8, 1.2)
        gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        x = np.clip((x - gray) * s + gray, 0, 255)  # saturation
        x = (x / 255.0 - mean) / std
        return (torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(y)))

    return load


def _time(load: Callable[[int], tuple[torch.Tensor, torch.Tensor]], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        x, y = load(i)
        assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32 and y.shape == (SIZE, SIZE)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs one intra-op thread
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_shapes(Path(tmp) / "shapes512", n_train=args.images, n_val=0, size=SIZE, seed=0)
        pipelines = {"seglab: SegmentationFolder + build_train_transforms": seglab_pipeline(root),
                     "plain PIL + numpy loop": plain_pipeline(root)}
        for load in pipelines.values():
            _time(load, 2)  # warm-up: imports, allocator, file cache
        rates: dict[str, list[float]] = {k: [] for k in pipelines}
        for _ in range(args.repeats):
            for name, load in pipelines.items():
                rates[name].append(_time(load, args.images))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ours, plain = med.values()
    rows = [{"pipeline": k, "images/s (median)": v, "ms/image": 1000 / v, "images/s (best)": max(rates[k])}
            for k, v in med.items()]
    for row in rows:
        print(row)
    notes = (f"Ratio seglab / plain = **{ours / plain:.2f}x** images/s per worker (median of {args.repeats} "
             f"interleaved repeats over {args.images} synthetic {SIZE}x{SIZE} shapes images; one process, "
             "one torch thread). Same work in both: decode, rescale 0.5-2.0, pad + crop 512, flip, "
             "brightness/contrast/saturation 0.2, normalize. seglab also re-checks each label's values "
             "(the dataset's per-read validation); the plain loop does not.")
    print(notes)
    write_result("data_loading", "Data loading + joint augmentation, 512x512, one worker", rows, notes)


if __name__ == "__main__":
    main()
