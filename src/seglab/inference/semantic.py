"""Semantic prediction: class maps of whole images or overlapping tiles, batches of files, and evaluation.

``predict`` handles one image, ``predict_many`` streams ``(key, image)`` pairs in bounded memory, and
``evaluate`` scores a dataset at full resolution with one confusion matrix (DDP-reduced). Tiling lives
in :mod:`seglab.inference.tiling`, TTA in :mod:`seglab.inference.tta`, image preparation in
:mod:`seglab.inference.source`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from seglab.inference.source import (
    ImageLike,
    ImageSource,
    check_batch_size,
    eval_mode,
    model_device,
    model_in_channels,
    prepare_image,
    same_size_batches,
)
from seglab.inference.tiling import TileOptions, sliding_window
from seglab.inference.tta import TTA, parse_tta, predict_batch

_DEFAULT = TileOptions()


def predict(
    model: nn.Module,
    image: ImageLike,
    *,
    tile: int | tuple[int, int] | None = None,
    overlap: float = _DEFAULT.overlap,
    blend: str = _DEFAULT.blend,
    tta: str | TTA | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = _DEFAULT.batch_size,
    return_probs: bool = False,
    resize: int | None = None,
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
        tta: see :func:`~seglab.inference.tta.parse_tta`; probabilities of all variants are averaged.
        mean, std: per-channel normalization applied to [0, 1] pixels (the checkpoint's).
        device: where the model runs; default the model's own device.
        batch_size: tiles per forward pass.
        return_probs: also return the class probabilities.
        resize: the checkpoint's ``data.resize``: the image is scaled to this long side first (tiles and TTA
            work at that scale), and the scores are scaled back, so outputs always have the input's size.

    Returns:
        ``labels`` int64 ``(H, W)`` on the CPU, or ``(labels, probs)`` with probs float32 ``(K, H, W)``.
    """
    check_batch_size(batch_size)
    options = TileOptions(tile=tile, overlap=overlap, blend=blend, batch_size=batch_size)
    return predict_tiled(model, image, options, tta=tta, mean=mean, std=std, device=device,
                         return_probs=return_probs, resize=resize)


def predict_tiled(model: nn.Module, image: ImageLike, options: TileOptions, *, tta: str | TTA | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  device: str | torch.device | None = None, return_probs: bool = False,
                  resize: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`predict` with the tiling given as one :class:`TileOptions`."""
    tta = parse_tta(tta)
    dev = model_device(model, device)
    src = ImageSource(image, model_in_channels(model), mean, std)
    if resize is not None:
        src = src.resized(resize)
    with torch.inference_mode(), eval_mode(model):
        labels, probs = sliding_window(model, src, options, tta, dev, return_probs or src.original is not None)
    if src.original is not None and probs is not None:
        labels, probs = back_to_original(probs, src.original, return_probs)
    return (labels, probs) if return_probs else labels  # type: ignore[return-value]


def back_to_original(probs: torch.Tensor, hw: tuple[int, int],
                     with_probs: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels ``(H, W)`` (and probabilities ``(K, H, W)``) at ``hw`` from probabilities ``(K, h, w)`` of a resized
    input (``data.resize``).

    The log-probabilities are interpolated: they differ from the logits by one value per pixel, so the argmax
    equals that of bilinearly upsampled logits (what validation scores) and the probabilities stay a softmax.
    """
    from seglab.data.resize import restore_size

    up = restore_size(probs.clamp_min(1e-30).log()[None], hw)[0]
    return up.argmax(0), (up.softmax(0) if with_probs else None)


def predict_many(
    model: nn.Module,
    items: Iterable[tuple[Any, ImageLike]],
    *,
    batch_size: int = _DEFAULT.batch_size,
    tile: int | tuple[int, int] | None = None,
    overlap: float = _DEFAULT.overlap,
    blend: str = _DEFAULT.blend,
    tta: str | TTA | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    return_probs: bool = False,
    resize: int | None = None,
) -> Iterator[tuple[Any, ImageLike, torch.Tensor, torch.Tensor | None]]:
    """Stream predictions for ``(key, image)`` pairs: yields ``(key, image, labels, probs or None)``.

    Consecutive images of the same size are stacked into batches of ``batch_size`` (whole-image
    mode); with ``tile`` each image is tiled on its own. Only one batch of images is held at a
    time, so thousands of files stream in bounded memory. Arguments as in :func:`predict`; with ``resize``
    each image is predicted on its own (each goes back to its own size).
    """
    check_batch_size(batch_size)
    options = TileOptions(tile=tile, overlap=overlap, blend=blend, batch_size=batch_size)
    if tile is not None or resize is not None:
        for key, image in items:
            labels, probs = predict_tiled(model, image, options, tta=tta, mean=mean, std=std, device=device,
                                          return_probs=True, resize=resize)
            yield key, image, labels, probs if return_probs else None
        return
    tta = parse_tta(tta)
    dev = model_device(model, device)
    channels = model_in_channels(model)

    def prepare(image: ImageLike) -> torch.Tensor:
        return prepare_image(image, mean=mean, std=std, in_channels=channels)

    for batch in same_size_batches(items, prepare, batch_size):
        with torch.inference_mode(), eval_mode(model):
            p = predict_batch(model, torch.stack([x for _, _, x in batch]).to(dev), tta=tta)
        labels = p.argmax(1).cpu()
        for j, (key, image, _) in enumerate(batch):
            yield key, image, labels[j], p[j].cpu() if return_probs else None


def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    num_classes: int,
    ignore_index: int = 255,
    tta: str | TTA | None = None,
    tile: int | tuple[int, int] | None = None,
    overlap: float = _DEFAULT.overlap,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    callback: Callable[[int, int], None] | None = None,
    resize: int | None = None,
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` on ``dataset`` (items ``(image (C, H, W) in [0, 1], mask)``).

    Predictions are made at each image's full size (with ``resize``: at that long side, scored after the scores
    are scaled back to the label's size) and scored with one confusion matrix over the whole dataset
    (:class:`seglab.metrics.SegMetrics`), all-reduced with ``.reduce()`` so a dataset sharded over DDP processes
    gives the same numbers as one process.

    Returns:
        ``SegMetrics.compute()``'s dict (``mean_iou``, ``per_class_iou``, ``confusion_matrix``, ...) and
        ``BoundaryMetrics.compute()``'s (``boundary_iou``, ``boundary_f1`` and their per-class lists, 3 px band).
    """
    from seglab.metrics import BoundaryMetrics, SegMetrics

    metrics = SegMetrics(num_classes, ignore_index=ignore_index)
    boundary = BoundaryMetrics(num_classes, ignore_index=ignore_index)
    options = TileOptions(tile=tile, overlap=overlap)
    total = len(dataset)
    for i in range(total):
        image, mask = dataset[i]
        labels = predict_tiled(model, image, options, tta=tta, mean=mean, std=std, device=device, resize=resize)
        target = torch.as_tensor(mask).long()[None]
        metrics.update(labels[None], target)
        boundary.update(labels[None].to(target.device), target)
        if callback is not None:
            callback(i + 1, total)
    metrics.reduce()
    boundary.reduce()
    return {**metrics.compute(), **boundary.compute()}
