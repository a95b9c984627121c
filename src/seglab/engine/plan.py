"""``seglab plan``: a dataset fingerprint and a rule-based training recipe, every choice with its reason.

The fingerprint reads the training split once (headers for sizes, labels and a sample of images for the
statistics); the rules are plain code below, in the spirit of nnU-Net's planner but for the user's machine
and time budget: a CPU gets a narrow U-Net and small crops, gray data per-image statistics and 1 input
channel, rare or thin classes a Dice term and foreground-aware sampling. With ``--time`` the epochs come from
the trainer's own measured calibration (``engine/budget.py``), not a guess. The plan is a config file:
``seglab train --plan plan.yaml`` trains it, after any edit.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seglab.config import RunConfig, config_from_dict
from seglab.data.io import image_size, read_label
from seglab.data.layout import detect_task, list_split, pair_by_stem

RARE = 0.01  # a class below 1 % of the labelled pixels is rare
THIN = 0.25  # a class with more than this share of its pixels on a border is thin (ISBI membranes: 0.26)
SAMPLE = 100  # labels read for the boundary statistics
MIN_STEPS = 40  # fewer steps per epoch repeat the split (ISBI: 5 steps were 47 % of each epoch, the rest checks)


@dataclass
class Fingerprint:
    """What the plan's rules look at (training split)."""

    root: str
    task: str
    num_train: int
    num_val: int
    size: tuple[int, int]  # median (width, height)
    channels: int
    classes: list[str] = field(default_factory=list)
    frequencies: list[float] = field(default_factory=list)
    image_share: list[float] = field(default_factory=list)  # share of images where each class appears
    boundary: list[float] = field(default_factory=list)  # share of each class's pixels on a class border
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    object_sizes: list[float] = field(default_factory=list)  # instance data: 5/50/95th percentile of sqrt(area)
    objects_per_image: float = 0.0

    @property
    def rare(self) -> list[str]:
        return [c for c, f in zip(self.classes, self.frequencies, strict=True) if 0 < f < RARE]

    @property
    def thin(self) -> list[str]:
        return [c for c, b in zip(self.classes, self.boundary, strict=True) if b > THIN]


def _boundary_share(labels: list[Path], num_classes: int, ignore_index: int) -> list[float]:
    on_edge, total = np.zeros(num_classes), np.zeros(num_classes)
    for path in labels:
        lab = read_label(path).astype(np.int64)
        edge = np.zeros(lab.shape, bool)  # a pixel with a 4-neighbour of another value
        vertical, horizontal = lab[1:] != lab[:-1], lab[:, 1:] != lab[:, :-1]
        edge[1:] |= vertical
        edge[:-1] |= vertical
        edge[:, 1:] |= horizontal
        edge[:, :-1] |= horizontal
        ok = (lab != ignore_index) & (lab < num_classes)
        on_edge += np.bincount(lab[ok & edge], minlength=num_classes)[:num_classes]
        total += np.bincount(lab[ok], minlength=num_classes)[:num_classes]
    return (on_edge / np.maximum(total, 1)).tolist()


def fingerprint(root: str | Path, ignore_index: int = 255) -> Fingerprint:
    """The fingerprint of ``root``'s training split (semantic: labels read; instance: sizes and counts)."""
    from seglab.data.stats import compute_stats

    root = Path(root)
    task = detect_task(root)
    images = list_split(root / "images" / "train")
    sizes = [s for s, _ in (image_size(p, 10**10) for p in images) if s]
    size = (int(statistics.median(w for w, _ in sizes)), int(statistics.median(h for _, h in sizes))) if sizes \
        else (0, 0)
    fp = Fingerprint(str(root), task, len(images), len(list_split(root / "images" / "val")), size, 3)
    if task == "instance":
        from seglab.data.instance_stats import instance_stats

        st = instance_stats(root, "train")
        fp.object_sizes = [st["object_size"][k] for k in ("p5", "p50", "p95")] if st["num_objects"] else []
        fp.objects_per_image = st["objects_per_image"]["mean"]
    if task != "semantic":
        return fp
    s = compute_stats(root, "train", ignore_index=ignore_index)
    labels = [lab for _, lab in pair_by_stem(images, list_split(root / "labels" / "train")).pairs]
    picks = np.linspace(0, len(labels) - 1, min(SAMPLE, len(labels))).round().astype(int)
    fp.channels, fp.classes, fp.frequencies = len(s["mean"]), s["classes"], s["frequencies"]
    fp.image_share = [n / max(1, s["num_images"]) for n in s["images_per_class"]]
    fp.boundary = _boundary_share([labels[i] for i in picks], s["num_classes"], ignore_index)
    fp.mean, fp.std = s["mean"], s["std"]
    return fp


def rules(fp: Fingerprint, device: str = "cpu") -> list[tuple[str, Any, str]]:
    """``(config key, value, reason)`` for every decision of the plan."""
    gpu = device.startswith("cuda")
    short = min(fp.size) if fp.size[0] else 256
    if fp.task in ("instance", "panoptic"):
        return _detector_rules(fp, gpu, short)
    width, batch = (32, 8) if gpu else (16, 4)
    crop = min(512 if gpu else 256, short - short % 32)
    out = [("model.name", "unet", "a U-Net: strong on small datasets, any input size"),
           ("model.options", {"base_channels": width},
            f"width {width}: {'a GPU' if gpu else 'a CPU'} trains it in minutes per epoch"),
           ("data.crop_size", crop, f"median image {fp.size[0]}x{fp.size[1]}: {crop} px crops "
            f"({'whole-image validation' if crop >= short else 'validation on full images'})"),
           ("train.batch_size", batch, "what fits the device at that crop"),
           ("train.precision", *_precision(gpu)),
           ("train.channels_last", True, "channels-last memory: the U-Net step measured 1.26x faster in bf16 on "
            "a CPU (benchmarks/plan_step.py), and tensor cores want it on GPUs"),
           ("train.optimizer", "adamw", "AdamW + cosine: robust without tuning"),
           ("train.lr", 3e-3, "a narrow net from scratch takes a high AdamW rate"),
           ("train.warmup_epochs", 1.0, "one warm-up epoch keeps the first steps stable")]
    repeats = math.ceil(MIN_STEPS * batch / max(1, fp.num_train))
    if repeats > 1:
        out.append(("data.repeats", repeats, f"{fp.num_train} training images: {repeats} passes per epoch "
                    f"({repeats * fp.num_train // batch} steps), so validation and logging stay a small share"))
    if fp.mean:
        out += [("data.mean", [round(v, 4) for v in fp.mean], "the dataset's own statistics (training split)"),
                ("data.std", [round(max(v, 1e-3), 4) for v in fp.std], "the dataset's own statistics")]
    if fp.rare or fp.thin:
        why = ", ".join(filter(None, [f"rare: {', '.join(fp.rare)}" if fp.rare else "",
                                      f"thin: {', '.join(fp.thin)}" if fp.thin else ""]))
        out.append(("train.loss", "ce+dice", f"{why}: Dice weighs every class alike and rewards thin shapes"))
    if fp.rare and min(s for c, s in zip(fp.classes, fp.image_share, strict=True) if c in fp.rare) < 0.5:
        out.append(("data.sampler", "balanced", "rare classes appear in few images: repeat-factor sampling"))
    return out + (_gray_rules() if fp.channels == 1 else [])


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it bf16 autocast is slower."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _precision(gpu: bool) -> tuple[str, str]:
    if gpu:
        return "bf16", "bf16 autocast: tensor cores, half the activation memory"
    if cpu_has_bf16():
        return "bf16", ("this CPU has native bf16 (AVX512-BF16/AMX): the U-Net step measured 1.7x faster than "
                        "fp32 (benchmarks/plan_step.py)")
    return "fp32", "this CPU lacks native bf16 (AVX512-BF16/AMX), where bf16 autocast is slower than fp32"


def _gray_rules() -> list[tuple[str, Any, str]]:
    """One-channel data is treated as microscopy-like: one magnification and no upright (so its evaluation
    flips both ways, :func:`evaluation_advice`)."""
    return [("data.in_channels", 1, "gray images: one input channel"),
            ("data.scale", [1.0, 1.0], "gray (microscopy-like) images share one magnification: no rescaling "
             "keeps thin structures as wide as in validation (ISBI, 4 min: val mIoU 0.793, 0.753 at 0.5-2x)"),
            ("data.rotate", 15.0, "gray (microscopy-like) data has no upright: small rotations (vertical flips and "
             "quarter turns on top measured no gain on ISBI: -0.007 at 4 min, -0.004 at 12 min)")]


DETECTORS = {("instance", False): ("maskrcnn_resnet18_fpn", "instance data: Mask R-CNN, the smallest backbone "
                                   "on a CPU"),
             ("instance", True): ("maskrcnn_resnet50_fpn_v2", "instance data on a GPU: Mask R-CNN R50-FPN v2"),
             ("panoptic", False): ("panoptic_fpn_resnet18", "panoptic data: Panoptic FPN (Mask R-CNN + a semantic "
                                   "FPN branch), the smallest backbone on a CPU"),
             ("panoptic", True): ("panoptic_fpn_resnet50", "panoptic data on a GPU: Panoptic FPN R50, the paper's "
                                  "model")}


def _detector_rules(fp: Fingerprint, gpu: bool, short: int) -> list[tuple[str, Any, str]]:
    """Instance and panoptic data: a Mask R-CNN based model, sized for the device, crops that keep objects."""
    side = 512 if gpu else 320
    name = DETECTORS[fp.task, gpu]
    crop = max(32, min(short, side + side // 5) // 32 * 32)
    options = {"min_size": min(side, short), "max_size": min(side, max(fp.size))}
    factor = min(options["min_size"] / short, options["max_size"] / max(1, *fp.size))  # torchvision's resize
    heads, why = _detector_heads(fp, gpu, factor)
    return [("model.name", *name),
            ("model.options", {**options, **heads},
             f"median image {fp.size[0]}x{fp.size[1]}: resized to at most {side} px" + why),
            ("data.crop_size", crop, f"{crop} px crops keep whole objects (Penn-Fudan: 256 px crops at scale "
             "0.5-2 reached mask AP 0.059 in 16 epochs, 384 px at 0.6-1.0 0.097 in 6)"),
            ("data.scale", [0.6, 1.0], "shrink only: enlarged crops cut objects the detector must see whole"),
            ("train.weight_decay", 0.05, "AdamW's decay of the measured detection recipes (demo, Penn-Fudan)"),
            ("train.batch_size", 8 if gpu else 4, "what fits the device"),
            ("train.optimizer", "adamw", "AdamW from scratch (measured better than SGD 0.02 on the demo)"),
            ("train.lr", 1e-3, "AdamW's usual rate for detection from scratch"),
            ("train.precision", *_precision(gpu))]


def _detector_heads(fp: Fingerprint, gpu: bool, factor: float) -> tuple[dict[str, Any], str]:
    """Anchor sizes from the objects' sizes after resizing (``factor``), and the RoIs sampled per image from the
    objects per image (CPU models; the GPU model keeps torchvision's 512)."""
    if not fp.object_sizes:
        return {}, ""
    lo, hi = fp.object_sizes[0] * factor, fp.object_sizes[-1] * factor
    first = int(min(32, max(8, 2 ** math.floor(math.log2(max(lo, 1.0))))))  # the finest map's anchor
    while first < 32 and first * 16 < hi:  # five doubling sizes: the large objects first, if both don't fit
        first *= 2
    sizes = [first * 2**i for i in range(5)]  # one per FPN map and the pool map, doubling
    wide = " (more than five doublings: the larger objects are covered first)" if lo < first or hi > sizes[-1] else ""
    why = (f"; objects {lo:.0f}-{hi:.0f} px after resizing (5th-95th percentile of sqrt(area)){wide}: anchors "
           f"{sizes[0]}-{sizes[-1]} px")
    if gpu:
        return {"anchor_sizes": sizes}, why
    rois = 64 if fp.objects_per_image <= 8 else 128
    return ({"anchor_sizes": sizes, "box_batch_size_per_image": rois},
            f"{why}; {fp.objects_per_image:.1f} objects per image: {rois} sampled RoIs per image")


def evaluation_advice(fp: Fingerprint) -> tuple[str, str] | None:
    """The ``seglab evaluate``/``predict`` flags the plan suggests after training (may be none), with the reason;
    semantic only: detector checkpoints score whole images without TTA."""
    if fp.task != "semantic":
        return None
    if fp.channels == 1:
        return ("--tta hflip,vflip", "no upright: the mean of the flipped predictions (ISBI, plan at 12 min: "
                "+0.005 val mIoU; -0.003 to +0.007 over six runs)")
    return ("", "no TTA: mirror TTA changed the plan's CamVid val mIoU by -0.0005 and -0.006 (two 15 min runs), at "
                "twice the cost")


def plan_config(fp: Fingerprint, device: str = "cpu", base: RunConfig | None = None) -> tuple[RunConfig, list]:
    """The config the rules give (on ``base``) and the decisions."""
    decisions = rules(fp, device)
    updates: dict[str, dict[str, Any]] = {"data": {"root": fp.root}}
    for key, value, _ in decisions:
        section, name = key.split(".", 1)
        updates.setdefault(section, {})[name] = value
    return config_from_dict(updates, dataclasses.replace(base) if base else RunConfig()), decisions


# Rules that depend on the model the plan chooses (its width, its measured step, its learning rate) and on how
# an epoch is counted; a run that names its own model keeps its registry defaults for these. Every other rule
# (channels, normalization, augmentation for the data's kind, crop, loss, sampling) comes from the data alone.
MODEL_RULES = frozenset({"model.name", "model.options", "train.batch_size", "train.precision", "train.channels_last",
                         "train.optimizer", "train.lr", "train.warmup_epochs", "train.weight_decay", "data.repeats"})


def apply_plan(cfg: RunConfig, device: str, given: Iterable[str] = (), fp: Fingerprint | None = None
               ) -> tuple[RunConfig, str | None]:
    """``cfg`` with the plan for its data applied, and a note that says what was applied and what was kept.

    What the user wrote always wins: keys in ``given`` (``section.key``: flags, ``--set``/``--vary`` items,
    keys of a ``--config``/``--plan`` file) and values that differ from the built-in defaults (configs built in
    Python) are kept. With ``model.name`` unset the whole plan applies (:data:`MODEL_RULES` included); with a
    model named, only the data's rules. ``--model-opt`` values apply on top of the planned options. ``cfg`` is
    not changed. ``device``: ``"cpu"`` or ``"cuda"`` (a ``torch.device.type``).
    """
    if not cfg.data.root:
        return cfg, None
    fp = fp or fingerprint(cfg.data.root, cfg.data.ignore_index)
    chosen, given, default = cfg.model.name is None, set(given), RunConfig()
    decisions = rules(fp, "cuda" if str(device).startswith("cuda") else "cpu")
    updates: dict[str, dict[str, Any]] = {}
    applied, kept = [], []
    for key, value, _ in decisions:
        section, name = key.split(".", 1)
        if key in MODEL_RULES and not chosen:
            continue
        if key == "model.options":
            value = {**value, **cfg.model.options}
        elif key != "model.name" and (key in given or getattr(getattr(cfg, section), name) != getattr(
                getattr(default, section), name)):
            kept.append(key)
            continue
        updates.setdefault(section, {})[name] = value
        applied.append((key, value))
    channels = updates.get("data", {}).get("in_channels", cfg.data.in_channels)
    if "mean" in updates.get("data", {}) and len(updates["data"]["mean"]) != channels:  # the user's own channels
        del updates["data"]["mean"], updates["data"]["std"]
        applied = [(k, v) for k, v in applied if k not in ("data.mean", "data.std")]
    planned = config_from_dict(updates, copy.deepcopy(cfg))
    settings = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in applied if k.startswith(("data.", "train.")))
    yours = f"; your own {', '.join(sorted(kept))} kept" if kept else ""
    if chosen:
        options = ", ".join(f"{k}={v}" for k, v in planned.model.options.items())
        return planned, (f"no --model given, so the plan for this data and {device}: {planned.model.name}"
                         + (f" ({options})" if options else "") + (f", {settings}" if settings else "") + yours
                         + ". `seglab plan DATA` gives each reason; pass --model to choose (`seglab models`).")
    return planned, (f"the plan's rules for this data with your {cfg.model.name}: {settings or 'nothing to change'}"
                     + yours + "; the plan's model settings (" + ", ".join(sorted(k for k in MODEL_RULES if k not in (
                         "model.name", "model.options"))) + ") are left to you. `seglab plan DATA` gives each "
                     "reason.")


def given_keys(config: str | Path | None = None, updates: dict[str, dict[str, Any]] | None = None,
               sets: Iterable[str] = ()) -> set[str]:
    """``section.key`` of every value a user wrote: ``updates`` (flags), ``--set`` items, keys of a ``--config``,
    ``--plan`` or ``--base`` file. The plan leaves them alone, even where they equal the built-in defaults."""
    from seglab.config import section_of

    keys = {f"{s}.{k}" for s, kv in (updates or {}).items() for k in kv}
    for item in sets:
        key = item.split("=", 1)[0].strip()
        keys.add(key if "." in key else f"{section_of(key)}.{key}")
    if config is not None and Path(config).is_file():
        raw = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        keys |= {f"{s}.{k}" for s, kv in raw.items() if isinstance(kv, dict) for k in kv} if isinstance(raw, dict) \
            else set()
    return keys


def resolve_run(cfg: RunConfig, given: Iterable[str] = ()) -> tuple[RunConfig, str | None]:
    """The config a ``seglab train`` command trains, the plan applied for its device (``--print-config`` shows
    exactly this); a resumed run trains its own ``config.yaml`` unchanged."""
    if cfg.train.resume:
        return cfg, None
    from seglab.distributed import resolve_device

    return apply_plan(cfg, resolve_device(cfg.train.device).type, given)


def plan_yaml(cfg: RunConfig, decisions: list[tuple[str, Any, str]], notes: list[str]) -> str:
    """The plan as a config file: every planned key with its reason as a comment."""
    reasons = {k: why for k, _, why in decisions}
    lines = ["# seglab plan: edit and train with `seglab train --plan FILE`.", *[f"# {n}" for n in notes]]
    for section, values in cfg.to_dict().items():
        lines.append(f"{section}:")
        for key, value in values.items():
            text = yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()[1:-1]
            why = reasons.get(f"{section}.{key}")
            lines.append(f"  {text}" + (f"  # {why}" if why else ""))
    return "\n".join(lines) + "\n"
