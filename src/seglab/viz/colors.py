"""Colours of classes and masks: palettes, colorized label maps, overlays, error maps, displayable images.

The ignore label has one colour everywhere (:data:`IGNORE_COLOR`, magenta): truth panels, ``--format color``,
error maps, legends ("ignore (255)") and training pictures. It is no colour of the default palette (whose
channels stay at or under 224 for the first 256 classes), so a class drawn black (VOC's background,
CamVid's Sky) never looks like unlabelled pixels. Overlays leave ignored pixels as the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seglab.data.layout import read_palette
from seglab.errors import DataError

IGNORE_COLOR = (255, 0, 255)  # magenta: no class of the default palette (channels <= 224) comes near it
OUT_OF_RANGE_COLOR = (255, 255, 255)
ERROR_COLORS = {"correct": (0, 0, 0), "wrong": (255, 40, 40), "ignore": IGNORE_COLOR}

ArrayLike = np.ndarray | torch.Tensor


# The first 20 class colours, chosen to be far apart to the eye: greedy farthest points in CIEDE2000 over the
# sRGB grid of step 8 with channels <= 224, starting from black, kept away from IGNORE_COLOR, white and the VOC
# colours used from class 20 on. Every pair differs by at least 20.7 CIEDE2000 (VOC's first 20: 4.5, e.g.
# (0, 128, 128) next to (64, 128, 128), which CamVid-like class sets showed as one colour).
DISTINCT_COLORS = (
    (0, 0, 0), (216, 64, 0), (56, 136, 0), (8, 120, 200), (88, 0, 160), (216, 168, 0), (0, 184, 184),
    (96, 72, 0), (120, 8, 40), (152, 136, 144), (0, 88, 80), (168, 224, 120), (80, 80, 96), (224, 56, 104),
    (144, 152, 128), (152, 184, 224), (224, 152, 120), (40, 0, 40), (128, 104, 192), (224, 168, 224),
)


def default_palette(n: int, ignore_index: int | None = 255) -> np.ndarray:
    """The default class colours for ``n`` classes, as an ``(n, 3)`` uint8 array.

    Classes 0-19 get :data:`DISTINCT_COLORS` (perceptually far apart; class 0 black as in VOC), the rest the
    PASCAL VOC color map (its bit-interleave spreads neighbouring ids apart; no colour repeats). Row
    ``ignore_index`` (when ``< n``) is :data:`IGNORE_COLOR`, the color ignored pixels get everywhere in seglab.
    """
    if n < 1:
        raise DataError(f"Expected the palette size `n` to be at least 1, but got {n}.")
    ids = np.arange(n, dtype=np.int64)
    pal = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for ch in range(3):
            pal[:, ch] |= ((ids >> (3 * shift + ch)) & 1) << (7 - shift)
    first = min(n, len(DISTINCT_COLORS))
    pal[:first] = DISTINCT_COLORS[:first]
    if ignore_index is not None and 0 <= ignore_index < n:
        pal[ignore_index] = IGNORE_COLOR
    return pal.astype(np.uint8)


# Kept under its old name: the one palette reader lives with the other file readers.
load_palette = read_palette


def colorize(mask: ArrayLike, palette: np.ndarray, ignore_index: int | None = 255,
             ignore_color: tuple[int, int, int] = IGNORE_COLOR) -> np.ndarray:
    """Paint an ``(H, W)`` index map with ``palette``; returns ``(H, W, 3)`` uint8.

    ``ignore_index`` pixels get ``ignore_color``; ids the palette does not cover are white, so a
    stray label value shows up instead of crashing a training run's sample panel.
    """
    m = mask_array(mask)
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    size = max(int(m.max(initial=0)) + 1, len(pal))
    lut = np.empty((size, 3), dtype=np.uint8)
    lut[:] = OUT_OF_RANGE_COLOR
    lut[: len(pal)] = pal
    out = lut[np.clip(m, 0, size - 1)]
    out[m < 0] = OUT_OF_RANGE_COLOR
    if ignore_index is not None:
        out[m == ignore_index] = ignore_color
    return out


def overlay(image: ArrayLike, mask: ArrayLike, palette: np.ndarray, alpha: float = 0.5,
            ignore_index: int | None = 255) -> np.ndarray:
    """Blend the colorized ``mask`` over ``image`` with weight ``alpha``; ignored pixels stay as is.

    Unlabelled pixels are no prediction: leaving them untinted shows the photo where the label says nothing
    (every labelled pixel, black class 0 included, is tinted).

    Returns:
        ``(H, W, 3)`` uint8.
    """
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"Expected `alpha` in [0, 1], but got {alpha}.")
    img = to_uint8_image(image)
    m = mask_array(mask)
    check_same_size(img, m, "overlay")
    color = colorize(m, palette, ignore_index).astype(np.float32)
    out = img.astype(np.float32) * (1.0 - alpha) + color * alpha
    if ignore_index is not None:
        keep = m == ignore_index
        out[keep] = img[keep]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def error_map(truth: ArrayLike, pred: ArrayLike, ignore_index: int | None = 255) -> np.ndarray:
    """Color where ``pred`` differs from ``truth``: wrong red, correct black, ignored magenta (HxWx3)."""
    t, p = mask_array(truth), mask_array(pred)
    if t.shape != p.shape:
        raise DataError(f"error map: truth is {t.shape[0]}x{t.shape[1]} but prediction is "
                        f"{p.shape[0]}x{p.shape[1]}; predict at the label's size.")
    out = np.empty(t.shape + (3,), dtype=np.uint8)
    out[:] = ERROR_COLORS["correct"]
    out[t != p] = ERROR_COLORS["wrong"]
    if ignore_index is not None:
        out[t == ignore_index] = ERROR_COLORS["ignore"]
    return out


def to_uint8_image(image: ArrayLike, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None) -> np.ndarray:
    """Turn a model input back into a displayable ``(H, W, 3)`` uint8 picture.

    Tensors are ``(C, H, W)`` (float in [0, 1] or uint8), numpy arrays ``(H, W[, C])`` as images
    are read from disk (a float array shaped ``(C, H, W)`` is recognised too). With
    ``mean``/``std`` the normalization of a float input is undone first (``x * std + mean``).
    Gray images are repeated to three channels so every panel cell is RGB.
    """
    if isinstance(image, torch.Tensor):
        a = image.detach().cpu().numpy()
        a = a[None] if a.ndim == 2 else a
        chw = True
    else:
        a = np.asarray(image)
        a = a[..., None] if a.ndim == 2 else a
        chw = a.ndim == 3 and a.dtype != np.uint8 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4)
    if a.ndim != 3:
        raise DataError(f"Expected an image of shape (H, W, C) or (C, H, W), but got shape {a.shape}.")
    if chw:
        a = a.transpose(1, 2, 0)
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if mean is not None and std is not None:
            a = a * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    elif a.shape[-1] == 4:
        a = a[..., :3]
    elif a.shape[-1] != 3:
        raise DataError(f"Expected 1, 3 or 4 image channels, but got {a.shape[-1]} (shape {a.shape}).")
    return np.ascontiguousarray(a)


def mask_array(mask: ArrayLike) -> np.ndarray:
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim == 3 and 1 in (m.shape[0], m.shape[-1]):
        m = m.reshape(m.shape[1:] if m.shape[0] == 1 else m.shape[:2])
    if m.ndim != 2:
        raise DataError(f"Expected an (H, W) index mask, but got shape {m.shape}.")
    if not np.issubdtype(m.dtype, np.integer):
        if m.dtype == bool:
            m = m.astype(np.int64)
        else:
            raise DataError(f"Expected integer class ids in the mask, but got dtype {m.dtype}.")
    return m.astype(np.int64, copy=False)


def check_same_size(img: np.ndarray, mask: np.ndarray, what: str) -> None:
    if img.shape[:2] != mask.shape:
        raise DataError(f"{what}: image is {img.shape[0]}x{img.shape[1]} but mask is "
                        f"{mask.shape[0]}x{mask.shape[1]}; resize the mask to the image (nearest).")
