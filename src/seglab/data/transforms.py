"""Joint augmentation on ``torchvision.transforms.v2`` so image, mask, boxes and instance masks move together.

Every transform here receives ``(image, target)`` where ``image`` is a ``tv_tensors.Image`` (uint8, C x H x W)
and ``target`` is either a ``tv_tensors.Mask`` (int64, H x W, semantic class indices) or, for the instance
task, a dict ``{"boxes": BoundingBoxes, "masks": Mask (N, H, W), "labels": Tensor (N,)}``. Geometric
transforms draw their parameters once per call and apply them to every tv_tensor, which is what fixes the
study guide's "augmentation mismatch" pitfall without re-seeding tricks. Random draws come from torch's
global RNG, so ``torch.manual_seed`` (and the DataLoader's per-worker seeding) makes them reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from seglab.data.resize import LongSide
from seglab.errors import ConfigError

__all__ = ["RandomScale", "RandomRot90", "RandomElastic", "DropEmptyInstances", "EvalResize", "SemanticMask",
           "build_train_transforms", "build_instance_train_transforms", "build_panoptic_train_transforms",
           "build_eval_transforms"]


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(not isinstance(s, int) or s < 1 for s in hw):
        raise ConfigError(f"{name}: expected a positive int or (height, width), got {size!r}.")
    return hw  # type: ignore[return-value]


def _check_range(value: Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0 < lo <= hi:
        raise ConfigError(f"{name}: expected (min, max) with 0 < min <= max, got {tuple(value)!r}.")
    return lo, hi


class RandomScale(v2.Transform):
    """Resize by one random factor drawn uniformly from ``scale`` (image bilinear, masks nearest).

    The study guide's "resize 0.5-2.0 then crop": scaling relative to the image's own size keeps object
    sizes varied, unlike torchvision's ``RandomResize`` which draws an absolute size.
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0),
                 interpolation: InterpolationMode = InterpolationMode.BILINEAR) -> None:
        super().__init__()
        self.scale = _check_range(scale, "scale")
        self.interpolation = interpolation

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        factor = float(torch.empty(1).uniform_(self.scale[0], self.scale[1]))
        return {"size": [max(1, round(h * factor)), max(1, round(w * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            # nearest-exact samples pixel centres like bilinear does, so mask edges stay on image edges
            return F.resize(inpt, params["size"], interpolation=InterpolationMode.NEAREST_EXACT)
        return F.resize(inpt, params["size"], interpolation=self.interpolation, antialias=True)


class RandomRot90(v2.Transform):
    """Turn image and mask together by a random multiple of 90 degrees (each of the four equally likely).

    With both flips this gives all eight symmetries of the square: exact pixel moves, no interpolation, so
    thin structures keep their width. For data with no upright (microscopy, aerial); square crops only,
    since a quarter turn swaps height and width. Boxes are not supported (semantic training only).
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": int(torch.randint(4, (1,)))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            raise ConfigError("data.rot90 turns semantic images and masks only; it does not apply to boxes.")
        if not isinstance(inpt, torch.Tensor) or params["k"] == 0:
            return inpt
        turned = torch.rot90(inpt.as_subclass(torch.Tensor), params["k"], dims=(-2, -1))
        return tv_tensors.wrap(turned, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else turned


class RandomElastic(v2.Transform):
    """Warp image and mask by one smooth random field: the U-Net paper's elastic deformation for ISBI.

    Displacements drawn on a coarse ``grid`` x ``grid`` lattice with ``magnitude`` pixels standard deviation,
    interpolated bicubically to every pixel (Ronneberger et al. 2015: a 3x3 grid, 10 px). Images resample
    bilinearly, masks nearest (values stay exact, ignore included); edges reflect. torchvision's
    ``ElasticTransform`` blurs a per-pixel noise field instead, which took 0.1-0.15 s per 256x256 crop on one
    CPU thread for smooth fields; this is about 100x cheaper.
    """

    def __init__(self, magnitude: float, grid: int = 3) -> None:
        super().__init__()
        if magnitude < 0 or grid < 2:
            raise ConfigError(f"data.elastic must be >= 0 (pixels of displacement; 0 turns it off) on a grid of "
                              f">= 2 points; got {magnitude} on {grid}.")
        self.magnitude, self.grid = float(magnitude), int(grid)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        coarse = torch.randn(1, 2, self.grid, self.grid) * self.magnitude
        shift = nnf.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        grid = torch.stack([xs + shift[0] * 2 / max(1, w - 1), ys + shift[1] * 2 / max(1, h - 1)], dim=-1)
        return {"grid": grid[None]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            raise ConfigError("data.elastic warps semantic images and masks only; it does not apply to boxes.")
        if not isinstance(inpt, torch.Tensor):
            return inpt
        x = inpt.as_subclass(torch.Tensor)
        flat = x.reshape(1, -1, *x.shape[-2:]).float()
        mode = "nearest" if isinstance(inpt, tv_tensors.Mask) else "bilinear"
        out = nnf.grid_sample(flat, params["grid"], mode=mode, padding_mode="reflection", align_corners=True)
        out = out.reshape(x.shape)
        out = out.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out.to(x.dtype)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


class SemanticMask(tv_tensors.Mask):
    """The class-index map of a panoptic target: a ``Mask`` (resized nearest, moved with the image) of its own
    type, so padding fills it with the void index while instance masks pad with 0 (v2 fills by exact type)."""


class DropEmptyInstances(v2.Transform):
    """Drop instances whose mask lost every pixel (cropped away); boxes alone can't tell for odd shapes.

    Per-instance values are the tensors whose first dimension is the number of instances; a panoptic
    target's :class:`SemanticMask` is never one, even when its height happens to equal that number.
    """

    def forward(self, *inputs: Any) -> Any:
        image, target = inputs if len(inputs) == 2 else (inputs[0], None)
        if not isinstance(target, dict) or "masks" not in target:
            return inputs if len(inputs) > 1 else inputs[0]
        masks = target["masks"]
        keep = (masks.flatten(1) != 0).any(dim=1)
        n = len(masks)
        out = {k: (_take(v, keep) if isinstance(v, torch.Tensor) and not isinstance(v, SemanticMask)
                   and v.ndim >= 1 and len(v) == n else v) for k, v in target.items()}
        return image, out


def _take(value: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    # plain indexing unwraps tv_tensors; re-wrap so later steps still see BoundingBoxes / Mask
    kept = value.as_subclass(torch.Tensor)[keep]
    return tv_tensors.wrap(kept, like=value) if isinstance(value, tv_tensors.TVTensor) else kept


def _fill(ignore_index: int) -> dict[type, int]:
    return {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}


def _finish(mean: Sequence[float] | None, std: Sequence[float] | None) -> list[v2.Transform]:
    """To float in [0, 1] (images only; masks keep their integer dtype), then optional Normalize."""
    steps: list[v2.Transform] = [v2.ToDtype(torch.float32, scale=True)]
    if (mean is None) != (std is None):
        raise ConfigError("mean/std: give both or neither (per-channel values from `seglab data stats`).")
    if mean is not None and std is not None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ConfigError(f"mean/std: expected equal lengths and std > 0, got mean={mean}, std={std}.")
        steps.append(v2.Normalize(list(mean), list(std)))
    return steps


def _flips(hflip: float, vflip: float) -> list[v2.Transform]:
    """Horizontal and vertical flips with their probabilities (boxes and masks follow the image)."""
    steps: list[v2.Transform] = []
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if vflip > 0:
        steps.append(v2.RandomVerticalFlip(vflip))
    return steps


def build_train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    rotate: float = 0.0,
    color_jitter: float = 0.2,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    ignore_index: int = 255,
    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
    vflip: float = 0.0,
    rot90: bool = False,
    elastic: float = 0.0,
    resize: int | None = None,
) -> Callable:
    """Semantic training pipeline: ``(Image uint8 (C,H,W), Mask (H,W)) -> (float Image, Mask)``.

    With ``resize`` (``data.resize``) every image and mask is first scaled to that long side
    (:class:`LongSide`), so crops and augmentation work at the scale validation and inference use. Then random
    rescale by a factor in ``scale``, random crop to ``crop_size`` (padding image with 0 and the
    mask with ``ignore_index`` when smaller, so padding never counts as a class), horizontal flip with
    probability ``hflip`` (and vertical with ``vflip``), a random quarter turn with ``rot90`` (square crops), a
    smooth elastic warp of ``elastic`` pixels (:class:`RandomElastic`),
    rotation by up to ``rotate`` degrees (masks nearest, uncovered area ignored), brightness/contrast/
    saturation jitter of strength ``color_jitter`` on the image only, then float in [0, 1] and
    ``Normalize(mean, std)`` when given.
    """
    steps: list[v2.Transform] = [LongSide(resize)] if resize is not None else []
    crop = _pair(crop_size, "crop_size")
    if rot90 and crop[0] != crop[1]:
        raise ConfigError(f"data.rot90 needs square crops (a quarter turn swaps height and width); crop_size is "
                          f"{crop[0]}x{crop[1]}. Use one crop size or turn rot90 off.")
    if tuple(scale) != (1.0, 1.0):
        steps.append(RandomScale(scale, interpolation))
    steps.append(v2.RandomCrop(crop, pad_if_needed=True, fill=_fill(ignore_index)))
    steps += _flips(hflip, vflip) + ([RandomRot90()] if rot90 else []) + ([RandomElastic(elastic)] if elastic else [])
    if rotate > 0:
        # rotation has no nearest-exact; plain nearest is what masks use, so the grids still match
        nearest = interpolation in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT)
        rot = InterpolationMode.NEAREST if nearest else interpolation
        steps.append(v2.RandomRotation(rotate, interpolation=rot, fill=_fill(ignore_index)))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    return v2.Compose(steps + _finish(mean, std))


def build_instance_train_transforms(
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    color_jitter: float = 0.2,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    min_box_size: float = 1.0,
    vflip: float = 0.0,
    resize: int | None = None,
) -> Callable:
    """Instance training pipeline: ``(Image, {"boxes", "masks", "labels"}) -> (float Image, same dict)``.

    Same rescale/crop/flips/jitter as the semantic pipeline; instance masks pad with 0 (background),
    boxes are clipped to the crop, and instances left with no mask pixels or a box side under
    ``min_box_size`` are dropped together with their labels (``SanitizeBoundingBoxes``). ``resize``
    (``data.resize``) first scales image, boxes and masks to that long side.
    """
    steps: list[v2.Transform] = [LongSide(resize)] if resize is not None else []
    if tuple(scale) != (1.0, 1.0):
        steps.append(RandomScale(scale))
    steps += [v2.RandomCrop(_pair(size, "size"), pad_if_needed=True, fill=0)]
    steps += _flips(hflip, vflip)
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps += [v2.ClampBoundingBoxes(), DropEmptyInstances(), v2.SanitizeBoundingBoxes(min_size=min_box_size)]
    return v2.Compose(steps + _finish(mean, std))


def build_panoptic_train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    color_jitter: float = 0.2,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    void: int = 255,
    vflip: float = 0.0,
    resize: int | None = None,
) -> Callable:
    """Panoptic training pipeline: ``(Image, {"boxes", "masks", "labels", "semantic", ...}) -> same``.

    The instance pipeline's rescale / crop to ``crop_size`` / flip / jitter, with the target's ``semantic``
    (a :class:`SemanticMask`, as :class:`seglab.data.panoptic.PanopticDataset` gives it) resized nearest
    and padded with ``void``, instance masks padded with 0; boxes are clamped to the crop and instances
    cropped away are dropped with their boxes and labels (the dataset then re-derives tight boxes). ``resize``
    (``data.resize``) first scales everything to that long side (the semantic map nearest, void kept).
    """
    steps: list[v2.Transform] = [LongSide(resize)] if resize is not None else []
    if tuple(scale) != (1.0, 1.0):
        steps.append(RandomScale(scale))
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: 0, SemanticMask: void}
    steps.append(v2.RandomCrop(_pair(crop_size, "crop_size"), pad_if_needed=True, fill=fill))
    steps += _flips(hflip, vflip)
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    # No SanitizeBoundingBoxes: it would index every Mask, the semantic map included, by instance.
    steps += [v2.ClampBoundingBoxes(), DropEmptyInstances()]
    return v2.Compose(steps + _finish(mean, std))


class EvalResize(v2.Transform):
    """Resize the image only to ``size`` for evaluation; labels stay at full size for honest metrics.

    Call :meth:`restore` on the model output to bring logits back to the original ``(H, W)`` before
    comparing with the untouched label.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        super().__init__()
        self.size = list(_pair(size, "size"))

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)):
            return F.resize(inpt, self.size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        return inpt

    @staticmethod
    def restore(logits: torch.Tensor, original_hw: tuple[int, int]) -> torch.Tensor:
        """Bilinearly resize logits ``(N, C, h, w)`` (or ``(C, h, w)``) back to ``original_hw``."""
        squeeze = logits.ndim == 3
        x = logits[None] if squeeze else logits
        x = nnf.interpolate(x.float(), size=tuple(original_hw), mode="bilinear", align_corners=False)
        return x[0] if squeeze else x


def build_eval_transforms(
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    size: int | tuple[int, int] | None = None,
) -> Callable:
    """Deterministic eval pipeline: float in [0, 1] + optional Normalize, full size unless ``size``.

    Models pad internally, so full size is the default; with ``size`` an :class:`EvalResize` resizes the
    image only (use ``EvalResize.restore`` on the logits).
    """
    steps: list[v2.Transform] = [EvalResize(size)] if size is not None else []
    return v2.Compose(steps + _finish(mean, std))
