"""Semantic prediction of a bundle in numpy: the same steps as ``seglab.inference`` (torch), step for step.

Normalization (``pixels / 255``, ``- mean``, ``/ std`` in float32), the channel adapter, the tiles (same
starts, same Gaussian/linear window, same strip-by-strip blending), the TTA variants (flips, scales) and the
logits-to-probabilities rule (softmax; one channel = sigmoid foreground) are written to give the class maps
``seglab predict RUN`` gives; tests/runtime/test_parity.py holds them equal on whole, tiled and TTA runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from seglab.errors import ConfigError, DataError

BLENDS = ("gaussian", "linear", "none")


@dataclass(frozen=True)
class RuntimeOptions:
    """Tiling and TTA (semantic) or the score threshold (instance) of one prediction; ``None`` fields take the
    bundle's stored defaults."""

    tile: int | None = None
    overlap: float | None = None
    blend: str | None = None
    tta: str | None = None
    batch_size: int = 4
    score_threshold: float | None = None  # instance bundles: keep detections scoring at least this (default 0.5)

    def resolved(self, stored: dict) -> tuple[int | None, float, str]:
        """``(tile, overlap, blend)``: given values first, then the bundle's, then seglab's defaults."""
        tile = self.tile if self.tile is not None else stored.get("tile")
        overlap = self.overlap if self.overlap is not None else float(stored.get("overlap", 0.25))
        blend = self.blend or str(stored.get("blend", "gaussian"))
        if not 0.0 <= overlap < 1.0:
            raise ConfigError(f"Expected --overlap in [0, 1), but got {overlap}; 0.25 is a good default.")
        if blend not in BLENDS:
            raise ConfigError(f"Expected --blend to be one of {', '.join(BLENDS)}, but got {blend!r}.")
        if tile is not None and int(tile) < 1:
            raise ConfigError(f"Expected a positive --tile size, but got {tile}.")
        if self.batch_size < 1:
            raise ConfigError(f"Expected `batch_size` >= 1, but got {self.batch_size}.")
        return (int(tile) if tile is not None else None), overlap, blend


def parse_tta(spec: str | None) -> tuple[bool, bool, tuple[float, ...]] | None:
    """``"flip,scales=0.75,1"`` -> ``(hflip, vflip, scales)``, as ``seglab.inference.tta.parse_tta``."""
    if spec is None:
        return None
    hflip = vflip = in_scales = False
    scales: list[float] = []
    for raw in str(spec).replace(" ", "").split(","):
        word = raw.lower()
        if word in ("", "none"):
            continue
        if word.startswith("scales="):
            in_scales, word = True, word[len("scales="):]
        if in_scales and word:
            try:
                s = float(word)
            except ValueError:
                s = -1.0
            if not (s > 0 and math.isfinite(s)):
                raise ConfigError(f"--tta {spec!r}: scale {raw!r} is not a positive number. "
                                  "Example: --tta flip,scales=0.75,1,1.25")
            scales.append(s)
        elif word in ("flip", "hflip"):
            hflip = True
        elif word == "vflip":
            vflip = True
        else:
            raise ConfigError(f"--tta {spec!r}: unknown item {raw!r}. Use flip, hflip, vflip and "
                              "scales=a,b,c (e.g. --tta flip,scales=0.75,1,1.25).")
    if not (hflip or vflip or scales):
        return None
    return hflip, vflip, tuple(scales) or (1.0,)


def effective_tta(given: str | None, stored: dict) -> str | None:
    """``--tta`` when given (``none``: off), else (or with ``plan``) the run's recorded advice stored in the bundle,
    as ``seglab predict RUN`` chooses (``seglab.plan.recipe.planned_tta``)."""
    if given is not None and given.strip().lower() != "plan":
        return given
    return stored.get("tta") or None


def normalize(image: np.ndarray, in_channels: int, mean: Sequence[float] | None,
              std: Sequence[float] | None) -> np.ndarray:
    """``(H, W[, C])`` uint8 (or float in [0, 1]) -> the normalized float32 ``(C, H, W)`` the model sees."""
    a = image[..., None] if image.ndim == 2 else image
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"Expected an image (H, W) or (H, W, C), but got shape {a.shape}.")
    t = a.transpose(2, 0, 1).astype(np.float32)
    if a.dtype == np.uint8:
        t /= np.float32(255.0)
    t = _adapt(t, in_channels)
    if mean:
        t = t - np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    if std:
        t = t / np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    return t


def _adapt(t: np.ndarray, want: int) -> np.ndarray:
    have = t.shape[0]
    if have == want:
        return t
    if have == 1:
        return np.repeat(t, want, axis=0)
    if want == 1 and have in (3, 4):
        luma = np.asarray([0.299, 0.587, 0.114], dtype=np.float32).reshape(3, 1, 1)
        return (t[:3] * luma).sum(0, keepdims=True)
    if want == 3 and have == 4:
        return t[:3]
    raise DataError(f"The image has {have} channels but the model expects {want}; "
                    "pass a gray (1), RGB (3) or RGBA (4) image.")


def bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(..., H, W)`` to ``size`` like ``F.interpolate(mode="bilinear", align_corners=False)``."""
    h, w = x.shape[-2:]
    ys, y0, y1 = _coords(h, size[0])
    xs, x0, x1 = _coords(w, size[1])
    top = x[..., y0, :] * (1 - ys)[:, None] + x[..., y1, :] * ys[:, None]
    return (top[..., x0] * (1 - xs) + top[..., x1] * xs).astype(np.float32)


def _coords(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = np.maximum((np.arange(n_out, dtype=np.float32) + 0.5) * np.float32(n_in / n_out) - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return (src - i0).astype(np.float32), i0, i1


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over dim 1 (one channel: sigmoid foreground, ``[1 - p, p]``), as ``inference.tta`` does."""
    logits = logits.astype(np.float32)
    if logits.shape[1] == 1:
        fg = 1.0 / (1.0 + np.exp(-logits))
        return np.concatenate([1.0 - fg, fg], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict_batch(run, batch: np.ndarray, tta: tuple[bool, bool, tuple[float, ...]] | None) -> np.ndarray:
    """Class probabilities ``(N, K, H, W)`` of a normalized batch under every TTA variant, averaged."""
    hflip, vflip, scales = tta or (False, False, (1.0,))
    flips: list[tuple[int, ...]] = [()] + ([(3,)] if hflip else []) + ([(2,)] if vflip else [])
    h, w = batch.shape[-2:]
    total: np.ndarray | None = None
    variants = [(s, f) for s in scales for f in flips]
    for scale, dims in variants:
        x = batch
        if scale != 1.0:
            x = bilinear(x, (max(1, round(h * scale)), max(1, round(w * scale))))
        x = np.flip(x, dims) if dims else x
        logits = run(np.ascontiguousarray(x))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = bilinear(logits, x.shape[-2:])
        p = probabilities(logits)
        p = np.flip(p, dims) if dims else p
        if p.shape[-2:] != (h, w):
            p = bilinear(p, (h, w))
        total = p.copy() if total is None else total + p
    assert total is not None
    return total if len(variants) == 1 else total / np.float32(len(variants))


def window(n: int, blend: str) -> np.ndarray:
    """The tile weight along one side (``inference.tiling._window``): Gaussian sigma = tile / 8."""
    if blend == "none":
        return np.ones(n, dtype=np.float32)
    d = (np.arange(n, dtype=np.float64) + 0.5 - n / 2) / (n / 2)
    w = np.exp(-0.5 * (d * 4.0) ** 2) if blend == "gaussian" else 1.0 - np.abs(d)
    return np.maximum(w, 1e-3).astype(np.float32)


def starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one side; the last tile ends at the border (no padding with made-up pixels)."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, stride)) + [size - tile]


def sliding_window(run, x: np.ndarray, tile: int | None, overlap: float, blend: str, tta, batch_size: int
                   ) -> np.ndarray:
    """Probabilities ``(K, H, W)`` of a normalized image ``(C, H, W)``, whole or blended from tiles."""
    height, width = x.shape[-2:]
    th, tw = (height, width) if tile is None else (min(tile, height), min(tile, width))
    ys = starts(height, th, max(1, th - round(th * overlap)))
    xs = starts(width, tw, max(1, tw - round(tw * overlap)))
    if len(ys) == 1 and len(xs) == 1:
        return predict_batch(run, x[None, :, :th, :tw], tta)[0]
    weight = window(th, blend)[:, None] * window(tw, blend)[None, :]
    acc: np.ndarray | None = None
    wsum = np.zeros((height, width), dtype=np.float32)
    # Tiles go in batches within one row of tiles, in the order (and batches) inference.tiling uses.
    rows = [[(y, xx) for xx in xs[k:k + batch_size]] for y in ys for k in range(0, len(xs), batch_size)]
    for chunk in rows:
        p = predict_batch(run, np.stack([x[:, y:y + th, xx:xx + tw] for y, xx in chunk]), tta)
        if acc is None:
            acc = np.zeros((p.shape[1], height, width), dtype=np.float32)
        for j, (y, xx) in enumerate(chunk):
            acc[:, y:y + th, xx:xx + tw] += p[j] * weight
            wsum[y:y + th, xx:xx + tw] += weight
    assert acc is not None
    return acc / wsum


def resized_size(height: int, width: int, long_side: int | None) -> tuple[int, int]:
    """The ``(h, w)`` an image is scaled to so its long side is ``long_side`` (``seglab.data.resize``'s rule:
    aspect kept, each side rounded half up in integers)."""
    if not long_side:
        return height, width
    m = max(height, width)
    return max(1, (2 * height * long_side + m) // (2 * m)), max(1, (2 * width * long_side + m) // (2 * m))


def resize_planes(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float ``(C, H, W)`` scaled to ``size`` with an antialiased bilinear filter, plane by plane (Pillow's
    float mode: the filter torchvision's ``antialias=True`` reproduces, which ``seglab.inference`` uses)."""
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(p, dtype=np.float32), mode="F")
                         .resize((size[1], size[0]), Image.BILINEAR), dtype=np.float32) for p in x]
    return np.stack(planes)


def predict_image(bundle, image: np.ndarray, options: RuntimeOptions | None = None,
                  return_probs: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The class map ``(H, W)`` int64 of one image (``(H, W[, C])`` uint8) with a semantic bundle.

    With the bundle's ``resize`` (``data.resize``) the normalized image is scaled so its long side has that many
    pixels (:func:`resize_planes`), predicted there, and the log-probabilities are scaled back to the input's
    size (bilinear) before the argmax, as ``seglab.inference`` does. ``return_probs`` also returns the
    probabilities ``(K, h, w)`` at the size the model saw.
    """
    options = options or RuntimeOptions()
    tile, overlap, blend = options.resolved(bundle.tile)
    tta = parse_tta(effective_tta(options.tta, bundle.tile))
    x = normalize(image, bundle.in_channels, bundle.mean, bundle.std)
    height, width = x.shape[-2:]
    size = resized_size(height, width, bundle.resize)
    if size != (height, width):
        x = resize_planes(x, size)
    probs = sliding_window(bundle.run, x, tile, overlap, blend, tta, options.batch_size)
    if probs.shape[-2:] != (height, width):
        labels = bilinear(np.log(np.maximum(probs, np.float32(1e-30))), (height, width)).argmax(0)
    else:
        labels = probs.argmax(0)
    return (labels, probs) if return_probs else labels
