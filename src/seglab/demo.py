"""`seglab demo`: the whole product in one command on generated data (no downloads, CPU friendly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from seglab.config import RunConfig, config_from_dict
from seglab.errors import ConfigError
from seglab.tasks import INSTANCE, PANOPTIC, SEMANTIC

# A base-16 U-Net on 96 px shapes: mIoU about 0.95 in 15 epochs (about 1.5 minutes on a 2-core CPU, bf16).
SEMANTIC_DEMO: dict[str, Any] = {
    "data": {"crop_size": 96, "scale": [0.75, 1.25], "color_jitter": 0.1, "workers": 0},
    "model": {"name": "unet", "options": {"base_channels": 16}},
    "train": {"epochs": 15, "batch_size": 8, "lr": 0.004, "optimizer": "adamw", "schedule": "cosine",
              "warmup_epochs": 0.5, "precision": "bf16", "loss": "ce", "num_samples": 4},
}

# The issue-9 CPU model (from-scratch ResNet-18 + 96-channel FPN, 64 RoIs per image, 2-layer mask head: the
# maskrcnn_resnet18_fpn defaults) on 128 px images, batch 8. AdamW replaces the SGD 0.02: measured on
# the shapes, it reached mask AP 0.22 after 120 steps where SGD 0.02 reached 0.09 (SGD 0.06 diverged), and
# bf16 autocast made a step ~1.3x faster on an AMX CPU. Evaluating every 4th epoch keeps COCO eval cheap.
# 6 epochs: mask AP 0.669 / AP50 0.918 in 3.98 min of training on a 2-core CPU; 7 epochs reached 0.688 / 0.929
# but the whole command took 4 min 24 s to 4 min 58 s on the same idle machine: too close to 5 minutes.
INSTANCE_DEMO: dict[str, Any] = {
    "data": {"crop_size": 128, "scale": [0.75, 1.25], "hflip": 0.5, "color_jitter": 0.1, "workers": 0},
    "model": {"name": "maskrcnn_resnet18_fpn", "options": {"min_size": 128, "max_size": 128}},
    "train": {"epochs": 6, "batch_size": 8, "lr": 0.001, "optimizer": "adamw", "weight_decay": 0.05,
              "schedule": "cosine", "warmup_epochs": 0.5, "precision": "bf16", "clip_grad": 10.0,
              "eval_every": 4, "num_samples": 4},  # best.pt follows mask_AP, the instance task's default
}


# Panoptic FPN (the R18 Mask R-CNN of the instance demo + a 64-channel semantic FPN branch) on 128 px shapes over
# textured stuff; best.pt follows PQ. 6 epochs: PQ 0.892 (things 0.819, stuff 0.966), mIoU 0.927, mask AP 0.705 in
# 2 min 32 s for the whole command on a fresh clone, idle 2-core CPU (2026-12-05); PQ 0.865 after 3 epochs.
PANOPTIC_DEMO: dict[str, Any] = {
    "data": {"crop_size": 128, "scale": [0.75, 1.25], "hflip": 0.5, "color_jitter": 0.1, "workers": 0},
    "model": {"name": "panoptic_fpn_resnet18", "options": {"min_size": 128, "max_size": 128}},
    "train": {"epochs": 6, "batch_size": 8, "lr": 0.001, "optimizer": "adamw", "weight_decay": 0.05,
              "schedule": "cosine", "warmup_epochs": 0.5, "precision": "bf16", "clip_grad": 10.0,
              "eval_every": 3, "num_samples": 4},
}
DEMOS = {SEMANTIC.name: (SEMANTIC_DEMO, "run", 96), INSTANCE.name: (INSTANCE_DEMO, "run_instance", 128),
         PANOPTIC.name: (PANOPTIC_DEMO, "run_panoptic", 128)}


def demo_config(preset: dict[str, Any], data: Path, out: Path, epochs: int | None, seed: int) -> RunConfig:
    """A demo preset pointed at ``data`` and ``out``, with the seed and an optional epoch override."""
    cfg = config_from_dict(preset)
    cfg.data.root, cfg.train.out, cfg.train.seed = str(data), str(out), seed
    if epochs is not None:
        cfg.train.epochs = epochs
    return cfg


def run_demo(task: str, out: Path, epochs: int | None = None, seed: int = 0, console: Console | None = None) -> dict:
    """Synthesize data, train, evaluate, and print what was produced. Returns the training summary."""
    console = console or Console()
    if task not in DEMOS:
        raise ConfigError(f"--task must be one of {', '.join(DEMOS)}; got {task!r}.")
    preset, run_name, size = DEMOS[task]
    run = Path(out) / run_name
    if task == "panoptic":
        from seglab.data.panoptic.synthetic import make_panoptic

        data = Path(out) / "data_panoptic"
        console.print(f"[bold]1/3[/] generating the panoptic shapes dataset in {data}")
        make_panoptic(data, n_train=240, n_val=60, size=size, seed=seed)
    else:
        from seglab.data.synthetic import make_shapes

        data = Path(out) / "data"
        console.print(f"[bold]1/3[/] generating the shapes dataset in {data}")
        make_shapes(data, n_train=240, n_val=60, size=size, seed=seed)
    cfg = demo_config(preset, data, run, epochs, seed)
    console.print(f"[bold]2/3[/] training {cfg.model.name} for {cfg.train.epochs} epochs on the CPU "
                  f"({cfg.train.precision})")
    from seglab.engine.trainer import train

    summary = train(cfg)
    run = Path(summary["out"])  # runs/demo/run2 when an earlier demo run is kept
    console.print("[bold]3/3[/] final validation metrics")
    table = Table("metric", "value")
    for k, v in summary["last"].items():
        if isinstance(v, float) and k not in ("lr", "epoch_time_s", "images_per_s"):
            table.add_row(k, f"{v:.4f}")
    console.print(table)
    console.print(f"Look at: {run}/report.md, {run}/curves.png, {run}/samples/"
                  + (f", {run}/confusion.png" if task == "semantic" else ""))
    fmt = "" if task == "semantic" else " --save index,overlay"
    console.print(f"Next: seglab evaluate {run} --data {data}   |   seglab predict {run} {data}/images/val "
                  f"--out {out}/predictions{fmt}")
    return summary
