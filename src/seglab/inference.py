"""Predict class maps from a trained model: whole images or overlapping tiles, optional TTA.

Tiled inference walks the image in rows of tiles ("strips"). Overlapping tile probabilities are
blended with a window (Gaussian, linear or flat) into an accumulator that only spans the rows
still being written; once a strip is complete its rows are turned into labels and the buffer
moves down. Memory is therefore the input, the output and one strip buffer of ``K`` float32
planes (``tile_height x width x K``, plus one weight plane) allocated once, independent of the
image height, and only ``batch_size`` tiles of logits exist at once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch import nn

from seglab.errors import ConfigError, DataError

BLENDS = ("gaussian", "linear", "none")
FINALIZE_ROWS = 64
ImageLike = Image.Image | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: flips and scales whose probabilities are averaged."""

    hflip: bool = False
    vflip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def variants(self) -> list[tuple[float, tuple[int, ...]]]:
        """Every ``(scale, flip dims)`` pair to run; dims index an ``(N, C, H, W)`` tensor."""
        flips: list[tuple[int, ...]] = [()] + ([(3,)] if self.hflip else []) + ([(2,)] if self.vflip else [])
        return [(s, f) for s in self.scales for f in flips]


def parse_tta(spec: str | TTA | None) -> TTA | None:
    """Parse ``"flip"``, ``"hflip,vflip"`` or ``"flip,scales=0.75,1,1.25"`` into a :class:`TTA`.

    ``flip`` means horizontal flip (the only one most scenes are symmetric under). Empty or
    ``"none"`` gives ``None``.

    Raises:
        ConfigError: an unknown word or a scale that is not a positive number.
    """
    if spec is None or isinstance(spec, TTA):
        return spec
    hflip = vflip = False
    scales: list[float] = []
    in_scales = False
    for raw in str(spec).replace(" ", "").split(","):
        word = raw.lower()
        if word in ("", "none"):
            continue
        if word.startswith("scales="):
            in_scales, word = True, word[len("scales="):]
        if in_scales and word:
            try:
                scale = float(word)
            except ValueError:
                scale = -1.0
            if not (scale > 0 and math.isfinite(scale)):
                raise ConfigError(f"--tta {spec!r}: scale {raw!r} is not a positive number. "
                                  "Example: --tta flip,scales=0.75,1,1.25")
            scales.append(scale)
        elif word in ("flip", "hflip"):
            hflip = True
        elif word == "vflip":
            vflip = True
        else:
            raise ConfigError(f"--tta {spec!r}: unknown item {raw!r}. Use flip, hflip, vflip and "
                              "scales=a,b,c (e.g. --tta flip,scales=0.75,1,1.25).")
    if not (hflip or vflip or scales):
        return None
    return TTA(hflip=hflip, vflip=vflip, scales=tuple(scales) or (1.0,))


def predict(
    model: nn.Module,
    image: ImageLike,
    *,
    tile: int | tuple[int, int] | None = None,
    overlap: float = 0.25,
    blend: str = "gaussian",
    tta: str | TTA | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    return_probs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Predict the class map of one image, whole or in overlapping tiles.

    Args:
        model: segmentation model returning logits ``(N, K, H, W)`` or ``{"out": logits}``.
        image: PIL image, numpy ``(H, W[, C])`` uint8 (or float in [0, 1]), or a tensor
            ``(C, H, W)`` float in [0, 1] / uint8. Gray/RGB are adapted to the model's input channels.
        tile: tile side (or ``(height, width)``); ``None`` runs the whole image at once. A tile larger
            than the image is clipped to it, so a covering tile gives exactly the whole-image result.
        overlap: fraction of the tile shared with the next one, in [0, 1).
        blend: weighting of overlapping tiles: ``gaussian`` (centre counts most), ``linear``, ``none``.
        tta: see :func:`parse_tta`; probabilities of all variants are averaged.
        mean, std: per-channel normalization applied to [0, 1] pixels (the checkpoint's).
        device: where the model runs; default the model's own device.
        batch_size: tiles per forward pass.
        return_probs: also return the class probabilities.

    Returns:
        ``labels`` int64 ``(H, W)`` on the CPU, or ``(labels, probs)`` with probs float32 ``(K, H, W)``.
    """
    if batch_size < 1:
        raise ConfigError(f"Expected `batch_size` >= 1, but got {batch_size}.")
    tta = parse_tta(tta)
    dev = _device(model, device)
    src = _Source(image, _in_channels(model), mean, std)
    th, tw = (src.height, src.width) if tile is None else _tile_size(tile, src.height, src.width)
    with torch.inference_mode(), eval_mode(model):
        labels, probs = _sliding(model, src, (th, tw), _check_overlap(overlap), _check_blend(blend), tta,
                                 dev, batch_size, return_probs)
    return (labels, probs) if return_probs else labels


def predict_many(
    model: nn.Module,
    items: Iterable[tuple[Any, ImageLike]],
    *,
    batch_size: int = 4,
    tile: int | tuple[int, int] | None = None,
    overlap: float = 0.25,
    blend: str = "gaussian",
    tta: str | TTA | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    return_probs: bool = False,
) -> Iterator[tuple[Any, ImageLike, torch.Tensor, torch.Tensor | None]]:
    """Stream predictions for ``(key, image)`` pairs: yields ``(key, image, labels, probs or None)``.

    Consecutive images of the same size are stacked into batches of ``batch_size`` (whole-image
    mode); with ``tile`` each image is tiled on its own. Only one batch of images is held at a
    time, so thousands of files stream in bounded memory. Arguments as in :func:`predict`.
    """
    if batch_size < 1:
        raise ConfigError(f"Expected `batch_size` >= 1, but got {batch_size}.")
    common = dict(overlap=overlap, blend=blend, tta=tta, mean=mean, std=std, device=device)
    if tile is not None:
        for key, image in items:
            labels, probs = predict(model, image, tile=tile, batch_size=batch_size, return_probs=True, **common)
            yield key, image, labels, probs if return_probs else None
        return
    tta = parse_tta(tta)
    dev = _device(model, device)
    channels = _in_channels(model)
    pending: list[tuple[Any, ImageLike, torch.Tensor]] = []

    def flush() -> Iterator[tuple[Any, ImageLike, torch.Tensor, torch.Tensor | None]]:
        with torch.inference_mode(), eval_mode(model):
            p = predict_batch(model, torch.stack([x for _, _, x in pending]).to(dev), tta=tta)
        labels = p.argmax(1).cpu()
        for j, (key, image, _) in enumerate(pending):
            yield key, image, labels[j], p[j].cpu() if return_probs else None
        pending.clear()

    for key, image in items:
        x = prepare_image(image, mean=mean, std=std, in_channels=channels)
        if pending and (x.shape != pending[0][2].shape or len(pending) >= batch_size):
            yield from flush()
        pending.append((key, image, x))
    if pending:
        yield from flush()


def prepare_image(image: ImageLike, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  in_channels: int | None = None) -> torch.Tensor:
    """The normalized float32 ``(C, H, W)`` tensor the model sees for ``image`` (see :func:`predict`)."""
    src = _Source(image, in_channels, mean, std)
    return src.read(0, 0, src.height, src.width)


def predict_batch(model: nn.Module, images: torch.Tensor, *, tta: str | TTA | None = None) -> torch.Tensor:
    """Class probabilities ``(N, K, H, W)`` of an already normalized batch ``(N, C, H, W)``.

    This is the one place logits become probabilities (softmax; a single-channel output is read
    as a sigmoid foreground), shared by whole-image, tiled and batched prediction.
    """
    tta = parse_tta(tta) or TTA()
    h, w = images.shape[-2:]
    total: torch.Tensor | None = None
    variants = tta.variants()
    for scale, dims in variants:
        x = images
        if scale != 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = x.flip(dims) if dims else x
        p = _probs(model, x)
        p = p.flip(dims) if dims else p
        if p.shape[-2:] != (h, w):
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
        total = p if total is None else total.add_(p)
    assert total is not None
    return total if len(variants) == 1 else total.div_(len(variants))


def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    num_classes: int,
    ignore_index: int = 255,
    tta: str | TTA | None = None,
    tile: int | tuple[int, int] | None = None,
    overlap: float = 0.25,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` on ``dataset`` (items ``(image (C, H, W) in [0, 1], mask)``).

    Predictions are made at each image's full size and scored with one confusion matrix over the
    whole dataset (:class:`seglab.metrics.SegMetrics`), all-reduced with ``.reduce()`` so a dataset
    sharded over DDP processes gives the same numbers as one process.

    Returns:
        ``SegMetrics.compute()``'s dict (``mean_iou``, ``per_class_iou``, ``confusion_matrix``, ...).
    """
    from seglab.metrics import SegMetrics

    metrics = SegMetrics(num_classes, ignore_index=ignore_index)
    total = len(dataset)
    for i in range(total):
        image, mask = dataset[i]
        labels = predict(model, image, tile=tile, overlap=overlap, tta=tta, mean=mean, std=std, device=device)
        metrics.update(labels[None], torch.as_tensor(mask).long()[None])
        if callback is not None:
            callback(i + 1, total)
    metrics.reduce()
    return metrics.compute()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode and restore its previous train/eval flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def model_output(out: Any) -> torch.Tensor:
    """The logits tensor of a model's output (a tensor, ``{"out": ...}`` or a tuple's first item)."""
    if isinstance(out, dict):
        return out["out"]
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def _probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = model_output(model(x)).float()
    if logits.shape[-2:] != x.shape[-2:]:
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    if logits.shape[1] == 1:
        fg = torch.sigmoid(logits)
        return torch.cat([1.0 - fg, fg], dim=1)
    return logits.softmax(dim=1)


def _sliding(model: nn.Module, src: _Source, tile: tuple[int, int], overlap: float, blend: str,
             tta: TTA | None, dev: torch.device, batch_size: int, return_probs: bool,
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    (th, tw), (height, width) = tile, (src.height, src.width)
    ys = _starts(height, th, max(1, th - round(th * overlap)))
    xs = _starts(width, tw, max(1, tw - round(tw * overlap)))
    if len(ys) == 1 and len(xs) == 1:  # one tile: no blending, bit-identical to the whole image
        p = predict_batch(model, src.read(0, 0, th, tw)[None].to(dev), tta=tta)[0]
        return p.argmax(0).cpu(), (p.cpu() if return_probs else None)
    weight = _window(th, blend).to(dev)[:, None] * _window(tw, blend).to(dev)[None, :]
    labels = torch.empty((height, width), dtype=torch.int64)
    probs_out: torch.Tensor | None = None
    # One strip buffer, allocated once: rows [top, top + th) of the image. Each tile row starts at
    # `top` (the rows above it are final), so every tile lands at buffer row 0.
    acc: torch.Tensor | None = None  # (K, th, W) weighted probability sums
    wsum = torch.zeros((th, width), device=dev)
    top = 0
    for i, y in enumerate(ys):
        for chunk in _chunks(xs, batch_size):
            batch = torch.stack([src.read(y, x, th, tw) for x in chunk]).to(dev)
            p = predict_batch(model, batch, tta=tta)
            if acc is None:
                acc = torch.zeros((p.shape[1], th, width), device=dev)
                if return_probs:
                    probs_out = torch.empty((p.shape[1], height, width), dtype=torch.float32)
            for j, x in enumerate(chunk):
                acc[:, :, x:x + tw].addcmul_(p[j], weight)
                wsum[:, x:x + tw].add_(weight)
            del p, batch
        assert acc is not None and y == top
        done = (ys[i + 1] if i + 1 < len(ys) else height) - top  # rows no later tile touches
        _finalize(acc, wsum, done, labels[top:top + done],
                  None if probs_out is None else probs_out[:, top:top + done])
        keep = th - done  # the overlap with the next tile row moves to the top of the buffer
        if keep > 0:
            acc[:, :keep] = acc[:, done:].clone()
            wsum[:keep] = wsum[done:].clone()
        acc[:, keep:].zero_()
        wsum[keep:].zero_()
        top += done
    return labels, probs_out


def _finalize(acc: torch.Tensor, wsum: torch.Tensor, rows: int, labels: torch.Tensor,
              probs: torch.Tensor | None) -> None:
    # In place, a few rows at a time: no strip-sized temporaries.
    for r0 in range(0, rows, FINALIZE_ROWS):
        r1 = min(rows, r0 + FINALIZE_ROWS)
        final = acc[:, r0:r1].div_(wsum[r0:r1])
        labels[r0:r1] = final.argmax(0).cpu()
        if probs is not None:
            probs[:, r0:r1] = final.cpu()


class _Source:
    """The input image kept in its compact form; tiles are converted to normalized float on demand."""

    def __init__(self, image: ImageLike, in_channels: int | None, mean: Sequence[float] | None,
                 std: Sequence[float] | None) -> None:
        self.array: np.ndarray | None = None
        self.tensor: torch.Tensor | None = None
        if isinstance(image, Image.Image):
            mode = "L" if in_channels == 1 else "RGB"
            image = np.asarray(image.convert(mode))
        if isinstance(image, np.ndarray):
            self.array = _check_array(image)
            self.height, self.width, channels = self.array.shape
        elif isinstance(image, torch.Tensor):
            self.tensor = _check_tensor(image)
            channels, self.height, self.width = self.tensor.shape
        else:
            raise DataError("Expected a PIL image, a numpy array or a tensor, "
                            f"but got {type(image).__name__}.")
        self.adapt = _channel_adapter(channels, in_channels)
        n = in_channels or channels
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v is not None and v.numel() not in (1, n):
                raise ConfigError(f"Expected `{name}` to have 1 or {n} values, but got {v.numel()}.")
        if self.std is not None and bool((self.std <= 0).any()):
            raise ConfigError(f"Expected `std` values > 0, but got {self.std.flatten().tolist()}.")

    def read(self, y: int, x: int, h: int, w: int) -> torch.Tensor:
        """Rows ``y:y+h``, columns ``x:x+w`` as a normalized float32 ``(C, h, w)`` tensor."""
        if self.array is not None:
            # np.array copies the tile: arrays from PIL are read-only, which torch warns about.
            part = torch.from_numpy(np.array(self.array[y:y + h, x:x + w])).permute(2, 0, 1)
            t = part.float().div_(255.0) if part.dtype == torch.uint8 else part.float()
        else:
            assert self.tensor is not None
            part = self.tensor[:, y:y + h, x:x + w]
            t = part.float().div(255.0) if part.dtype == torch.uint8 else part.float()
        t = self.adapt(t)
        if self.mean is not None:
            t = t - self.mean
        if self.std is not None:
            t = t / self.std
        return t


def _check_array(a: np.ndarray) -> np.ndarray:
    a = a[..., None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"Expected a numpy image (H, W) or (H, W, C), but got shape {a.shape}.")
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"Expected a uint8 or float [0, 1] numpy image, but got dtype {a.dtype}; "
                        "convert with seglab.data.io.read_image or scale to uint8.")
    return a


def _check_tensor(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1] == 0 or t.shape[2] == 0:
        raise DataError(f"Expected an image tensor (C, H, W), but got shape {tuple(t.shape)}; "
                        "predict one image at a time.")
    return t.cpu()


def _channel_adapter(have: int, want: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if want is None or have == want:
        return lambda t: t
    if have == 1:
        return lambda t: t.expand(want, -1, -1)
    if want == 1 and have in (3, 4):
        luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # ITU-R BT.601, as Pillow's "L"
        return lambda t: (t[:3] * luma).sum(0, keepdim=True)
    if want == 3 and have == 4:
        return lambda t: t[:3]
    raise DataError(f"The image has {have} channels but the model expects {want}; "
                    "pass a gray (1), RGB (3) or RGBA (4) image.")


def _in_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        dev = torch.device(device)
        model.to(dev)
        return dev
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _tile_size(tile: int | tuple[int, int], height: int, width: int) -> tuple[int, int]:
    th, tw = (tile, tile) if isinstance(tile, int) else tuple(tile)
    if th < 1 or tw < 1:
        raise ConfigError(f"Expected a positive --tile size, but got {tile}.")
    return min(th, height), min(tw, width)


def _check_overlap(overlap: float) -> float:
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"Expected --overlap in [0, 1), but got {overlap}; 0.25 is a good default.")
    return overlap


def _check_blend(blend: str) -> str:
    if blend not in BLENDS:
        raise ConfigError(f"Expected --blend to be one of {', '.join(BLENDS)}, but got {blend!r}.")
    return blend


def _starts(size: int, tile: int, stride: int) -> list[int]:
    # The last tile is shifted back to end at the border, so every tile has the same shape
    # (batchable) and none of them is padded with made-up pixels.
    if size <= tile:
        return [0]
    return list(range(0, size - tile, stride)) + [size - tile]


def _window(n: int, blend: str) -> torch.Tensor:
    if blend == "none":
        return torch.ones(n)
    d = (torch.arange(n, dtype=torch.float64) + 0.5 - n / 2) / (n / 2)  # -1 .. 1 across the tile
    # sigma = tile / 8 as in nnU-Net's sliding window; edges keep a small positive weight so a
    # border pixel covered by a single tile is still defined.
    w = torch.exp(-0.5 * (d * 4.0) ** 2) if blend == "gaussian" else 1.0 - d.abs()
    return w.clamp_min(1e-3).float()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for k in range(0, len(items), size):
        yield items[k:k + size]


# --- instance segmentation (Mask R-CNN checkpoints) -----------------------------------------------------


def is_instance_model(model: nn.Module) -> bool:
    """True for torchvision-style detectors (Mask R-CNN): they take a list of images, return dicts."""
    return hasattr(model, "roi_heads") and hasattr(model, "rpn")


def predict_instances(
    model: nn.Module,
    items: Iterable[tuple[Any, ImageLike]],
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    batch_size: int = 4,
    device: str | torch.device | None = None,
) -> Iterator[tuple[Any, ImageLike, dict[str, torch.Tensor]]]:
    """Stream Mask R-CNN detections for ``(key, image)`` pairs: yields ``(key, image, instances)``.

    ``image`` is a picture as read from disk (``(H, W, 3)`` uint8) or a ``(3, H, W)`` float tensor in
    [0, 1]; the model resizes and normalizes internally. ``instances`` holds the detections scoring at
    least ``score_threshold``, best first, on the CPU: ``boxes`` (N, 4) XYXY pixels, ``labels`` (N,)
    contiguous class indices, ``scores`` (N,), ``masks`` (N, H, W) bool (probability > ``mask_threshold``)
    and ``mask_probs`` (N, H, W) float. Consecutive images of the same size are batched, up to ``batch_size``.
    """
    if batch_size < 1:
        raise ConfigError(f"Expected `batch_size` >= 1, but got {batch_size}.")
    for name, v in (("score_threshold", score_threshold), ("mask_threshold", mask_threshold)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"Expected `{name}` in [0, 1], but got {v}.")
    dev = _device(model, device)
    pending: list[tuple[Any, ImageLike, torch.Tensor]] = []

    def flush() -> Iterator[tuple[Any, ImageLike, dict[str, torch.Tensor]]]:
        with torch.inference_mode(), eval_mode(model):
            outputs = model([x.to(dev) for _, _, x in pending])
        for (key, image, _), out in zip(pending, outputs, strict=True):
            yield key, image, _select(out, score_threshold, mask_threshold)
        pending.clear()

    for key, image in items:
        x = prepare_image(image, in_channels=3)
        # Only same-size images share a batch: the model pads a batch to its largest image, and the padding
        # would change detections near the border (results would depend on the batch's neighbours).
        if pending and (x.shape != pending[0][2].shape or len(pending) >= batch_size):
            yield from flush()
        pending.append((key, image, x))
    if pending:
        yield from flush()


def detect_dataset(
    model: nn.Module,
    dataset: Any,
    *,
    cat_ids: Sequence[int] | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """COCO-results detections of ``model`` on an instance dataset (items ``(image, target)``).

    Every detection the model returns is kept (AP integrates over scores; thresholding would only
    lower it). ``cat_ids[label]`` maps contiguous labels back to the dataset's category ids.
    """
    total = len(dataset)

    def items() -> Iterator[tuple[int, torch.Tensor]]:
        for i in range(total):
            image, target = dataset[i]
            yield int(target["image_id"]), image

    detections: list[dict] = []
    for done, (image_id, _, inst) in enumerate(predict_instances(model, items(), score_threshold=0.0,
                                                                 batch_size=batch_size, device=device), 1):
        detections += instances_to_coco(inst, image_id, cat_ids=cat_ids)
        if callback is not None:
            callback(done, total)
    return detections


def instances_to_coco(inst: dict[str, torch.Tensor], image_id: int,
                      cat_ids: Sequence[int] | None = None) -> list[dict]:
    """One image's :func:`predict_instances` result as COCO results (masks from ``mask_probs``, RLE)."""
    from seglab.metrics.coco import predictions_to_coco

    out = {"boxes": inst["boxes"], "labels": inst["labels"], "scores": inst["scores"],
           "masks": inst["mask_probs"][:, None]}
    return predictions_to_coco([out], [image_id], cat_ids=cat_ids)


def _select(out: dict[str, torch.Tensor], score_threshold: float, mask_threshold: float) -> dict[str, torch.Tensor]:
    scores = out["scores"].float().cpu()
    keep = torch.nonzero(scores >= score_threshold).flatten()
    keep = keep[scores[keep].argsort(descending=True, stable=True)]
    probs = out["masks"][keep.to(out["masks"].device), 0].float().cpu()
    return {"boxes": out["boxes"][keep.to(out["boxes"].device)].float().cpu(),
            "labels": out["labels"][keep.to(out["labels"].device)].cpu(), "scores": scores[keep],
            "masks": probs > mask_threshold, "mask_probs": probs}
