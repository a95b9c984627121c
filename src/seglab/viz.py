"""Pictures of data and predictions: palettes, overlays, input|truth|prediction|error panels, curves.

Everything draws on a bare :class:`matplotlib.figure.Figure` (Agg), never through ``pyplot``: no
display is needed and no global figure state leaks between calls or threads. Every file is
written atomically through :func:`seglab.fileio.atomic_path`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from seglab.data.layout import read_palette
from seglab.errors import DataError
from seglab.fileio import atomic_path

IGNORE_COLOR = (0, 0, 0)
OUT_OF_RANGE_COLOR = (255, 255, 255)
ERROR_COLORS = {"correct": (0, 0, 0), "wrong": (255, 40, 40), "ignore": (128, 128, 128)}

ArrayLike = np.ndarray | torch.Tensor


def default_palette(n: int, ignore_index: int | None = 255) -> np.ndarray:
    """The PASCAL VOC color map for ``n`` classes, as an ``(n, 3)`` uint8 array.

    VOC's bit-interleave spreads neighbouring class ids far apart in color, so adjacent classes
    stay distinguishable. Row ``ignore_index`` (when ``< n``) is black, the color ignored pixels
    get everywhere in seglab.
    """
    if n < 1:
        raise DataError(f"Expected the palette size `n` to be at least 1, but got {n}.")
    ids = np.arange(n, dtype=np.int64)
    pal = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for ch in range(3):
            pal[:, ch] |= ((ids >> (3 * shift + ch)) & 1) << (7 - shift)
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
    m = _mask_array(mask)
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

    Returns:
        ``(H, W, 3)`` uint8.
    """
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"Expected `alpha` in [0, 1], but got {alpha}.")
    img = to_uint8_image(image)
    m = _mask_array(mask)
    _check_same_size(img, m, "overlay")
    color = colorize(m, palette, ignore_index).astype(np.float32)
    out = img.astype(np.float32) * (1.0 - alpha) + color * alpha
    if ignore_index is not None:
        keep = m == ignore_index
        out[keep] = img[keep]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def error_map(truth: ArrayLike, pred: ArrayLike, ignore_index: int | None = 255) -> np.ndarray:
    """Color where ``pred`` differs from ``truth``: wrong red, correct black, ignored grey (HxWx3)."""
    t, p = _mask_array(truth), _mask_array(pred)
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


def save_panels(path: str | os.PathLike, rows: Sequence[tuple[Any, Any, Any]], palette: np.ndarray,
                class_names: Sequence[str] | None = None, ignore_index: int = 255,
                with_error: bool = True, titles: Sequence[str] | None = None) -> Path:
    """Save one figure with a row per sample: input | truth | prediction | error.

    Looking at predictions beside the truth catches what a single number hides (shifted masks,
    a class never predicted, label noise). ``rows`` holds ``(image, truth or None, prediction)``;
    ``image`` is uint8 ``(H, W, 3)`` or float ``(C, H, W)`` in [0, 1] (denormalize with
    :func:`to_uint8_image` first). Rows without truth leave the truth and error cells empty.
    """
    if not rows:
        raise DataError(f"{path}: no samples to draw; pass at least one (image, truth, prediction) row.")
    has_truth = any(r[1] is not None for r in rows)
    cols = ["input"] + (["truth"] if has_truth else []) + ["prediction"]
    cols += ["error"] if has_truth and with_error else []
    fig = Figure(figsize=(3.0 * len(cols), 3.0 * len(rows) + (0.6 if class_names else 0.0)))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, (image, truth, pred) in enumerate(rows):
        cells = {"input": to_uint8_image(image), "prediction": colorize(pred, palette, ignore_index)}
        if truth is not None:
            cells["truth"] = colorize(truth, palette, ignore_index)
            err = error_map(truth, pred, ignore_index)
            cells["error"] = err
        for j, name in enumerate(cols):
            ax = axes[i, j]
            ax.set_axis_off()
            if name in cells:
                ax.imshow(cells[name], interpolation="nearest")
            title = name if i == 0 else ""
            if name == "input" and titles is not None and i < len(titles):
                title = titles[i]
            if name == "error" and truth is not None:
                title = f"error {_error_rate(truth, pred, ignore_index):.1%}"
            ax.set_title(title, fontsize=9)
    if class_names:
        _legend(fig, class_names, palette)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight() if class_names else 0, 1, 1))
    return _save(fig, path)


def plot_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Plot loss, mIoU and learning rate per epoch from ``metrics.csv`` rows (3 side-by-side axes).

    Values may be strings (straight from :class:`csv.DictReader`); missing or empty cells are
    skipped, so a run without validation loss still plots.
    """
    epochs = [_num(r.get("epoch"), i) for i, r in enumerate(rows)]
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    panels = ((axes[0], "loss", ("train_loss", "val_loss")), (axes[1], "mIoU", ("mean_iou",)),
              (axes[2], "learning rate", ("lr",)))
    for ax, title, keys in panels:
        for key in keys:
            pts = [(e, _num(r.get(key))) for e, r in zip(epochs, rows, strict=True)]
            pts = [(e, v) for e, v in pts if not math.isnan(v)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.has_data() and len(keys) > 1:
            ax.legend(fontsize=8)
    if axes[2].has_data() and all(v > 0 for v in (_num(r.get("lr")) for r in rows) if not math.isnan(v)):
        axes[2].set_yscale("log")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(cm: ArrayLike, class_names: Sequence[str] | None, path: str | os.PathLike,
                   normalize: bool = True) -> Path:
    """Plot a ``(C, C)`` confusion matrix (rows = truth, columns = prediction).

    With ``normalize`` each row is divided by its total, so a rare class's recall is as readable
    as a frequent one's; classes absent from the truth get an all-zero row.
    """
    m = cm.detach().cpu().numpy() if isinstance(cm, torch.Tensor) else np.asarray(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"Expected a square (C, C) confusion matrix, but got shape {m.shape}.")
    c = m.shape[0]
    names = list(class_names) if class_names else [str(i) for i in range(c)]
    if len(names) != c:
        raise DataError(f"confusion matrix has {c} classes but {len(names)} class names were given.")
    m = m.astype(np.float64)
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    side = min(max(4.0, 0.45 * c + 2.0), 30.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), names, rotation=90 if c > 6 else 0, fontsize=8)
    ax.set_yticks(range(c), names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title("confusion (row-normalized)" if normalize else "confusion (pixels)")
    if c <= 20:
        top = m.max() if m.size else 0.0
        for i in range(c):
            for j in range(c):
                txt = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.5 * top else "black")
    fig.tight_layout()
    return _save(fig, path)


def _legend(fig: Figure, class_names: Sequence[str], palette: np.ndarray) -> None:
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    handles = [Patch(facecolor=tuple(pal[i] / 255.0) if i < len(pal) else "white", edgecolor="grey",
                     label=name) for i, name in enumerate(class_names[:40])]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)


def _error_rate(truth: ArrayLike, pred: ArrayLike, ignore_index: int | None) -> float:
    t, p = _mask_array(truth), _mask_array(pred)
    valid = t != ignore_index if ignore_index is not None else np.ones(t.shape, dtype=bool)
    n = int(valid.sum())
    return float(((t != p) & valid).sum()) / n if n else 0.0


def _mask_array(mask: ArrayLike) -> np.ndarray:
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


def _check_same_size(img: np.ndarray, mask: np.ndarray, what: str) -> None:
    if img.shape[:2] != mask.shape:
        raise DataError(f"{what}: image is {img.shape[0]}x{img.shape[1]} but mask is "
                        f"{mask.shape[0]}x{mask.shape[1]}; resize the mask to the image (nearest).")


def _num(v: Any, default: float = math.nan) -> float:
    try:
        return float(v) if v not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    return path


def instance_ids(masks: ArrayLike, scores: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paint binary instance masks into one id map: 0 = background, 1..M = instances.

    Where masks overlap, the higher-scoring instance wins (the first one without ``scores``). An
    instance left with no pixel is dropped, so the ids are exactly 1..M, the instance-mask folder
    contract (``masks/<split>/<stem>.png``).

    Returns:
        ``(ids (H, W) int64, kept)``: ``kept[k - 1]`` is the input index of instance id ``k``.
    """
    m = torch.as_tensor(masks).bool().cpu().numpy()
    if m.ndim != 3:
        raise DataError(f"Expected instance masks of shape (N, H, W), but got shape {m.shape}.")
    order = np.arange(len(m)) if scores is None else \
        np.argsort(-torch.as_tensor(scores).float().cpu().numpy(), kind="stable")
    owner = np.full(m.shape[1:], -1, np.int64)
    for k in order[::-1]:  # lowest score first: higher scores paint over it
        owner[m[k]] = k
    kept = np.array([k for k in order if (owner == k).any()], dtype=np.int64)
    ids = np.zeros(m.shape[1:], np.int64)
    for new, k in enumerate(kept, 1):
        ids[owner == k] = new
    return ids, kept


def save_instance_overlay(path: str | os.PathLike, image: ArrayLike, instances: dict[str, Any],
                          class_names: Sequence[str], alpha: float = 0.55) -> Path:
    """Save ``image`` with each instance in its own colour, labelled "class score".

    The picture keeps its size, enlarged by a whole factor when its long side is under 512 px so that
    the labels stay readable.
    """
    picture = to_uint8_image(image)
    h, w = picture.shape[:2]
    zoom = max(1, 512 // max(h, w))
    fig = Figure(figsize=(w * zoom / 100, h * zoom / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    _draw_instances(ax, picture, instances, class_names, alpha)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    return _save(fig, path)


def save_instance_panels(path: str | os.PathLike, rows: Sequence[tuple[Any, dict | None, dict | None]],
                         class_names: Sequence[str], titles: Sequence[str] | None = None) -> Path:
    """Save a truth | prediction figure, one row per image, instances coloured and labelled.

    Args:
        path: output image file (written atomically).
        rows: ``(image (3, H, W) float [0, 1] or (H, W, 3) uint8, truth, prediction)``; truth/prediction
            dicts hold ``masks`` (N, H, W) binary, ``labels`` (N,) contiguous, ``boxes`` (N, 4) XYXY and for
            predictions ``scores`` (N,). A ``None`` truth shows the plain input instead.
        class_names: name of each contiguous label (index 0 = background).
        titles: optional row titles.
    """
    fig = Figure(figsize=(6.0, 3.0 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for r, (image, truth, pred) in enumerate(rows):
        picture = to_uint8_image(image)
        cells = (("truth", truth), ("prediction", pred)) if truth is not None else \
            (("input", None), ("prediction", pred))
        for c, (name, inst) in enumerate(cells):
            ax = axes[r, c]
            ax.set_axis_off()
            title = name if titles is None else f"{titles[r]} {name}"
            if inst is not None:
                _draw_instances(ax, picture, inst, class_names)
                title += f" ({len(inst['labels'])})"
            elif name == "input":
                ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _draw_instances(ax: Any, picture: np.ndarray, inst: dict, class_names: Sequence[str],
                    alpha: float = 0.55) -> None:
    """Overlay instance k in palette colour k and label it at its box corner.

    Where instances overlap, the higher-scoring one is shown (the later one without scores).
    """
    masks = torch.as_tensor(inst["masks"]).bool().cpu().numpy().reshape(-1, *picture.shape[:2])
    scores = inst.get("scores")
    order = range(len(masks)) if scores is None else \
        np.argsort(torch.as_tensor(scores).float().cpu().numpy(), kind="stable")
    ids = np.zeros(picture.shape[:2], np.int64)
    for k in order:
        ids[masks[k]] = k + 1
    palette = default_palette(len(masks) + 1, ignore_index=None)
    ax.imshow(overlay(picture, ids, palette, alpha=alpha, ignore_index=0), interpolation="nearest")
    boxes = torch.as_tensor(inst["boxes"]).float().reshape(-1, 4).tolist()
    for k, (label, box) in enumerate(zip(torch.as_tensor(inst["labels"]).tolist(), boxes, strict=True)):
        text = class_names[label] if 0 <= label < len(class_names) else str(label)
        if scores is not None:
            text += f" {float(scores[k]):.2f}"
        ax.text(box[0], box[1], text, fontsize=6, color="white", va="bottom",
                bbox={"facecolor": tuple(palette[k + 1] / 255.0), "alpha": 0.8, "pad": 1, "edgecolor": "none"})
