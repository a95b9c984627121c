"""Sliding-window (tiled) prediction with blended overlaps in bounded memory.

Tiled inference walks the image in rows of tiles ("strips"). Overlapping tile probabilities are
blended with a window (Gaussian, linear or flat) into an accumulator that only spans the rows
still being written; once a strip is complete its rows are turned into labels and the buffer
moves down. Memory is therefore the input, the output and one strip buffer of ``K`` float32
planes (``tile_height x width x K``, plus one weight plane) allocated once, independent of the
image height, and only ``batch_size`` tiles of logits exist at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from seglab.errors import ConfigError
from seglab.inference.source import ImageSource, check_batch_size
from seglab.inference.tta import TTA, predict_batch

BLENDS = ("gaussian", "linear", "none")
FINALIZE_ROWS = 64


@dataclass(frozen=True)
class TileOptions:
    """How an image is cut into tiles; every default of tiled prediction is written here, once.

    ``tile`` is the tile side (or ``(height, width)``), ``None`` for the whole image; ``overlap`` the
    fraction shared by neighbouring tiles, in [0, 1); ``blend`` weighs overlapping tiles (``gaussian``:
    the centre counts most, ``linear``, ``none``); ``batch_size`` tiles (or images) per forward pass.
    """

    tile: int | tuple[int, int] | None = None
    overlap: float = 0.25
    blend: str = "gaussian"
    batch_size: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"Expected --overlap in [0, 1), but got {self.overlap}; {TileOptions.overlap} is a "
                              "good default.")
        if self.blend not in BLENDS:
            raise ConfigError(f"Expected --blend to be one of {', '.join(BLENDS)}, but got {self.blend!r}.")
        check_batch_size(self.batch_size)
        if self.tile is not None:
            th, tw = self._pair()
            if th < 1 or tw < 1:
                raise ConfigError(f"Expected a positive --tile size, but got {self.tile}.")

    def _pair(self) -> tuple[int, int]:
        assert self.tile is not None
        return (self.tile, self.tile) if isinstance(self.tile, int) else (int(self.tile[0]), int(self.tile[1]))

    def tile_size(self, height: int, width: int) -> tuple[int, int]:
        """The tile shape for an image of this size (a tile larger than the image is clipped to it)."""
        if self.tile is None:
            return height, width
        th, tw = self._pair()
        return min(th, height), min(tw, width)


def sliding_window(model: nn.Module, src: ImageSource, options: TileOptions, tta: TTA | None, dev: torch.device,
                   return_probs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels ``(H, W)`` (and probabilities ``(K, H, W)``) of ``src`` predicted tile by tile."""
    (th, tw), (height, width) = options.tile_size(src.height, src.width), (src.height, src.width)
    ys = _starts(height, th, max(1, th - round(th * options.overlap)))
    xs = _starts(width, tw, max(1, tw - round(tw * options.overlap)))
    if len(ys) == 1 and len(xs) == 1:  # one tile: no blending, bit-identical to the whole image
        p = predict_batch(model, src.read(0, 0, th, tw)[None].to(dev), tta=tta)[0]
        return p.argmax(0).cpu(), (p.cpu() if return_probs else None)
    weight = _window(th, options.blend).to(dev)[:, None] * _window(tw, options.blend).to(dev)[None, :]
    labels = torch.empty((height, width), dtype=torch.int64)
    probs_out: torch.Tensor | None = None
    # One strip buffer, allocated once: rows [top, top + th) of the image. Each tile row starts at
    # `top` (the rows above it are final), so every tile lands at buffer row 0.
    acc: torch.Tensor | None = None  # (K, th, W) weighted probability sums
    wsum = torch.zeros((th, width), device=dev)
    top = 0
    for i, y in enumerate(ys):
        for chunk in _chunks(xs, options.batch_size):
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
        _shift(acc, wsum, th - done)
        top += done
    return labels, probs_out


def _shift(acc: torch.Tensor, wsum: torch.Tensor, keep: int) -> None:
    """Move the overlap with the next tile row (the last ``keep`` rows) to the top; zero the rest."""
    done = acc.shape[1] - keep
    if keep > 0:
        acc[:, :keep] = acc[:, done:].clone()
        wsum[:keep] = wsum[done:].clone()
    acc[:, keep:].zero_()
    wsum[keep:].zero_()


def _finalize(acc: torch.Tensor, wsum: torch.Tensor, rows: int, labels: torch.Tensor,
              probs: torch.Tensor | None) -> None:
    # In place, a few rows at a time: no strip-sized temporaries.
    for r0 in range(0, rows, FINALIZE_ROWS):
        r1 = min(rows, r0 + FINALIZE_ROWS)
        final = acc[:, r0:r1].div_(wsum[r0:r1])
        labels[r0:r1] = final.argmax(0).cpu()
        if probs is not None:
            probs[:, r0:r1] = final.cpu()


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
