"""``seglab plan``: a dataset fingerprint and a rule-based training recipe, every choice with its reason.

The fingerprint reads the training split once (headers for sizes, labels and a sample of images for the
statistics); the rules are plain code below, in the spirit of nnU-Net's planner but for the user's machine
and time budget: a CPU gets a narrow U-Net and small crops, gray data per-image statistics and 1 input
channel, rare or thin classes a Dice term and foreground-aware sampling. With ``--time`` the epochs come from
the trainer's own measured calibration (``engine/budget.py``), not a guess. The plan is a config file:
``seglab train --plan plan.yaml`` trains it, after any edit.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seglab.config import RunConfig, config_from_dict
from seglab.data.io import DEFAULT_MAX_PIXELS
from seglab.data.label_geometry import ClassScale, Geometry, geometry_table, label_geometry, spread
from seglab.data.layout import detect_task, list_split, pair_by_stem
from seglab.errors import OutputError
from seglab.plan.scale import DEPTH, scale_rules

RARE = 0.01  # a class below 1 % of the labelled pixels is rare
THIN = 0.25  # a class with more than this share of its pixels on a border is thin (ISBI membranes: 0.26)
MIN_STEPS = 40  # fewer steps per epoch repeat the split (ISBI: 5 steps were 47 % of each epoch, the rest checks)


@dataclass
class Fingerprint:
    """What the plan's rules look at (training split)."""

    root: str
    task: str
    num_train: int
    num_val: int
    size: tuple[int, int]  # median (width, height)
    channels: int  # what most images' headers say (1 gray, 3 colour)
    classes: list[str] = field(default_factory=list)
    frequencies: list[float] = field(default_factory=list)
    image_share: list[float] = field(default_factory=list)  # share of images where each class appears
    boundary: list[float] = field(default_factory=list)  # share of each class's pixels on a class border
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    object_sizes: list[float] = field(default_factory=list)  # instance data: 5/50/95th percentile of sqrt(area)
    objects_per_image: float = 0.0
    gray_images: int = 0  # images whose header says gray (every image's header is read)
    long_sides: tuple[int, int, int] = (0, 0, 0)  # min, median, max of the images' longer side
    scale: list[ClassScale] = field(default_factory=list)  # per class: connected-component extents

    @property
    def rare(self) -> list[str]:
        return [c for c, f in zip(self.classes, self.frequencies, strict=True) if 0 < f < RARE]

    @property
    def thin(self) -> list[str]:
        return [c for c, b in zip(self.classes, self.boundary, strict=True) if b > THIN]

    @property
    def widths(self) -> list[float]:
        """Per class: ``2 / boundary`` px (see :mod:`seglab.data.label_geometry`); inf for an absent class."""
        return [2.0 / b if b > 0 else math.inf for b in self.boundary]

    @property
    def mixed(self) -> str:
        """"" when every image has the same channel count, else what the headers say."""
        if 0 < self.gray_images < self.num_train:
            return (f"mixed: {self.gray_images} gray and {self.num_train - self.gray_images} colour images; "
                    f"planned as {'gray' if self.channels == 1 else 'colour'} (most images)")
        return ""


def fingerprint(root: str | Path, ignore_index: int = 255, num_classes: int | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Fingerprint:
    """The fingerprint of ``root``'s training split: every image's header (sizes, channels); semantic data: the
    labels read (class statistics, the label geometry of a sample) after the checks training makes, so the plan
    refuses what training would refuse; instance data: object sizes and counts."""
    from seglab.data.semantic.stats import compute_stats, image_headers, majority_channels

    root = Path(root)
    task = detect_task(root)
    if task == "semantic":  # cached: training then skips the scan
        from seglab.data.preflight import preflight

        for split in ("train", "val"):
            if list_split(root / "images" / split) or split == "train":
                preflight(root, split, num_classes, ignore_index, max_pixels)
    images = list_split(root / "images" / "train")
    headers = image_headers(images)
    size = (int(statistics.median(w for w, _, _ in headers)), int(statistics.median(h for _, h, _ in headers))) \
        if headers else (0, 0)
    longs = sorted(max(w, h) for w, h, _ in headers) or [0]
    fp = Fingerprint(str(root), task, len(images), len(list_split(root / "images" / "val")), size,
                     majority_channels(headers) if headers else 3, gray_images=sum(c == 1 for _, _, c in headers),
                     long_sides=(longs[0], int(statistics.median(longs)), longs[-1]))
    if task == "instance":
        from seglab.data.instance.stats import instance_stats

        st = instance_stats(root, "train")
        fp.object_sizes = [st["object_size"][k] for k in ("p5", "p50", "p95")] if st["num_objects"] else []
        fp.objects_per_image = st["objects_per_image"]["mean"]
    if task != "semantic":
        return fp
    s = compute_stats(root, "train", num_classes, ignore_index=ignore_index, channels=fp.channels)
    labels = [lab for _, lab in pair_by_stem(images, list_split(root / "labels" / "train")).pairs]
    fp.classes, fp.frequencies = s["classes"], s["frequencies"]
    fp.image_share = [n / max(1, s["num_images"]) for n in s["images_per_class"]]
    geometry = label_geometry(spread(labels), s["num_classes"], ignore_index)
    fp.boundary, fp.scale = geometry.boundary, geometry.scale
    fp.mean, fp.std = s["mean"], s["std"]
    return fp


def fingerprint_lines(fp: Fingerprint) -> list[str]:
    """The fingerprint's facts beyond the class table, in words (``seglab plan`` prints them)."""
    low, mid, high = fp.long_sides
    lines = [f"{fp.num_train} train / {fp.num_val} val images; longer side {low}-{high} px (median {mid}); "
             f"{fp.mixed or _headers(fp, 'gray' if fp.channels == 1 else 'colour')}"]
    if fp.task == "instance" and fp.object_sizes:
        lines.append("objects: sqrt(area) {:.0f} / {:.0f} / {:.0f} px (5th / 50th / 95th percentile), {:.1f} per "
                     "image".format(*fp.object_sizes, fp.objects_per_image))
    return lines


def scale_table(fp: Fingerprint) -> list[list[str]]:
    """The object-scale rows (a header first) of a semantic fingerprint."""
    return geometry_table(fp.classes, Geometry(fp.boundary, fp.scale))


def refuse_existing_plan(out: Path, force: bool) -> None:
    """``seglab plan`` never replaces a file silently (an edited plan is work)."""
    if out.exists() and not force:
        raise OutputError(f"{out} already exists (an earlier plan, perhaps edited): pass --out OTHER.yaml to write "
                          "another file, or --force to replace it.")


def rules(fp: Fingerprint, device: str = "cpu") -> list[tuple[str, Any, str]]:
    """``(config key, value, reason)`` for every decision of the plan."""
    gpu = device.startswith("cuda")
    short = min(fp.size) if fp.size[0] else 256
    if fp.task in ("instance", "panoptic"):
        return _detector_rules(fp, gpu, short)
    width, batch = (32, 8) if gpu else (16, 4)
    scale, depth, depth_why = scale_rules(fp, 512 if gpu else 256)
    options = {"base_channels": width, **({"depth": depth} if depth != DEPTH else {})}
    out = [("model.name", "unet", "a U-Net: strong on small datasets, any input size"),
           ("model.options", options,
            f"width {width}: {'a GPU' if gpu else 'a CPU'} trains it in minutes per epoch{depth_why}"),
           *scale,
           ("train.batch_size", batch, f"a constant for {'a GPU' if gpu else 'a CPU'} (the batch the plan's "
            "recipes were measured with), not fitted to the device's memory"),
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
    advice = evaluation_advice(fp)
    tta = [("data.tta", advice[0].removeprefix("--tta "), f"evaluate/predict average these flips by default "
            f"(--tta none turns them off): {advice[1]}")] if advice and advice[0] else []
    return out + (_gray_rules(fp) if fp.channels == 1 else _colour_rules(fp)) + tta


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it bf16 autocast is slower."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _precision(gpu: bool, unet: bool = True) -> tuple[str, str]:
    """bf16 where the hardware computes it; the measurement cited is the U-Net's only for the U-Net."""
    if gpu:
        return "bf16", "bf16 autocast: tensor cores, half the activation memory"
    if cpu_has_bf16():
        return "bf16", ("this CPU has native bf16 (AVX512-BF16/AMX): the U-Net step measured 1.7x faster than "
                        "fp32 (benchmarks/plan_step.py)" if unet else "this CPU has native bf16 (AVX512-BF16/AMX), "
                        "so bf16 autocast runs its matrix products natively (not measured for this model)")
    return "fp32", "this CPU lacks native bf16 (AVX512-BF16/AMX), where bf16 autocast is slower than fp32"


def _headers(fp: Fingerprint, kind: str) -> str:
    """The fact a channel rule used, in words: how many image headers say gray or colour."""
    n = fp.gray_images if kind == "gray" else fp.num_train - fp.gray_images
    return f"{kind} in {'all' if n == fp.num_train else n} of {fp.num_train} image headers"


def _gray_rules(fp: Fingerprint) -> list[tuple[str, Any, str]]:
    """Gray data is planned as ISBI's microscopy was measured: one magnification and no upright (so its
    evaluation flips both ways, :func:`evaluation_advice`). The rule sees only the channel count, and says so."""
    assume = ("; the rule assumes one magnification and no upright, as in microscopy (ISBI) — gray data with an "
              "upright (X-ray, documents) may want data.rotate=0")
    return [("data.in_channels", 1, f"{_headers(fp, 'gray')}: one input channel"),
            ("data.scale", [1.0, 1.0], f"{_headers(fp, 'gray')}: no rescaling keeps thin structures as wide as in "
             f"validation (ISBI, 4 min: val mIoU 0.793, 0.753 at 0.5-2x){assume}"),
            ("data.rotate", 15.0, f"{_headers(fp, 'gray')}: small rotations (vertical flips and quarter turns on "
             f"top measured no gain on ISBI: -0.007 at 4 min, -0.004 at 12 min){assume}"),
            ("data.hflip", 0.5, "horizontal flips: a mirrored image is as likely as the original"),
            ("data.color_jitter", 0.2, "brightness and contrast jitter of 0.2: exposure varies between images")]


def _colour_rules(fp: Fingerprint) -> list[tuple[str, Any, str]]:
    """The augmentations colour data trains with (the defaults, listed so the plan shows what is applied)."""
    return [("data.scale", [0.5, 2.0], f"{_headers(fp, 'colour')}: photographs show objects at many distances: "
             "random rescale 0.5-2x (CamVid's measured recipe, 0.281 val mIoU at 15 min)"),
            ("data.hflip", 0.5, "horizontal flips: scenes have an upright but no handedness"),
            ("data.color_jitter", 0.2, "brightness, contrast and saturation jitter of 0.2: lighting varies "
             "between photographs")]


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
            ("train.batch_size", 8 if gpu else 4, f"a constant for {'a GPU' if gpu else 'a CPU'} (the batch the "
             "detection recipes were measured with), not fitted to the device's memory"),
            ("train.optimizer", "adamw", "AdamW from scratch (measured better than SGD 0.02 on the demo)"),
            ("train.lr", 1e-3, "AdamW's usual rate for detection from scratch"),
            ("train.precision", *_precision(gpu, unet=False))]


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


def planned_tta(tta: str | None, config: dict | None) -> tuple[str | None, str | None]:
    """The TTA an evaluation or prediction uses, and a note when it came from the run: ``--tta`` when given
    (``none`` turns TTA off), else (or with ``--tta plan``) the plan's advice recorded in the run's config.yaml
    (``data.tta``), so ``seglab train --data D`` users get it without reading the plan."""
    recorded = ((config or {}).get("data") or {}).get("tta")
    if tta is not None and tta.strip().lower() != "plan":
        return tta, None
    if not recorded:
        return None, "--tta plan: this run records no TTA advice (data.tta); no TTA" if tta else None
    return recorded, (f"TTA {recorded}: the plan's advice, recorded in the run's config.yaml (data.tta); "
                      "--tta none turns it off")


def plan_config(fp: Fingerprint, device: str = "cpu", base: RunConfig | None = None) -> tuple[RunConfig, list]:
    """The config the rules give (on ``base``) and the decisions."""
    decisions = rules(fp, device)
    updates: dict[str, dict[str, Any]] = {"data": {"root": fp.root}}
    for key, value, _ in decisions:
        section, name = key.split(".", 1)
        updates.setdefault(section, {})[name] = value
    return config_from_dict(updates, dataclasses.replace(base) if base else RunConfig()), decisions


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
