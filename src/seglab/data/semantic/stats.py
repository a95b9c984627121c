"""Dataset statistics: class pixel frequencies, class weights against imbalance, per-channel mean/std.

Formulas (``n_c`` = labelled pixels of class ``c`` in the split, ignore pixels excluded; ``N = sum_c n_c``;
``P`` = the set of classes with ``n_c > 0``, ``K' = |P|``):

- ``frequencies[c] = n_c / N``.
- ``weights_inverse[c] = N / (K' * n_c)``: inverse frequency normalised so that the pixel-weighted mean
  weight ``sum_c f_c * w_c`` is 1 (scikit-learn's "balanced"), so a weighted loss keeps the scale of the
  unweighted one.
- ``weights_median[c] = median_{k in P}(freq_k) / freq_c`` with ``freq_c = n_c / T_c`` and ``T_c`` = the
  labelled pixels of the images where ``c`` is present: median-frequency balancing (Eigen & Fergus 2015,
  as used by SegNet, Badrinarayanan et al. 2017).
- Classes absent from the split (``n_c = 0``) get weight 0 in both and are listed in ``absent_classes``.
- ``mean``/``std``: per channel over every image pixel, values scaled to [0, 1] (the ``Normalize`` inputs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from seglab.data.io import open_image, pil_pixel_limit, read_image, read_label, stored_size
from seglab.data.layout import CLASSES_FILE, list_split, pair_by_stem, read_classes
from seglab.errors import ConfigError, DataError

__all__ = ["compute_stats", "class_weights", "image_headers", "majority_channels"]
BAND = 1 << 20  # pixels per row band: what one image's per-pixel temporaries are bounded by


def _class_names(root: Path, num_classes: int | None) -> list[str] | None:
    """``classes.txt`` as training reads it (:func:`seglab.data.layout.read_classes`), checked against K."""
    names = read_classes(root)
    if names is not None and num_classes is not None and len(names) != num_classes:
        raise ConfigError(f"{root / CLASSES_FILE}: lists {len(names)} classes but num_classes={num_classes}. "
                          "Fix classes.txt or pass the matching --num-classes.")
    return names


def _pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """The samples the dataset reads (pairing by stem as in training); any unpaired file is an error here."""
    images = list_split(root / "images" / split)
    if not images:
        raise DataError(f"{root / 'images' / split}: no images found. Expected images/{split}/<stem>.png|jpg "
                        "under the dataset root; check the path and --split.")
    found = pair_by_stem(images, list_split(root / "labels" / split))
    unmatched = sorted(p.stem for p in found.unlabelled + found.orphans)
    if unmatched:
        raise DataError(f"{root}: {len(unmatched)} image/label stems in split '{split}' have no partner "
                        f"(e.g. {', '.join(unmatched[:5])}). "
                        f"Run `seglab data check {root}` for the full list.")
    return found.pairs


def _bands(array: np.ndarray) -> Iterator[np.ndarray]:
    """Row bands of about :data:`BAND` pixels: per-pixel temporaries (bool masks, bincount's own intp copy)
    stay a bounded size whatever the image's size."""
    rows = max(1, BAND // max(1, int(np.prod(array.shape[1:]))))
    for top in range(0, array.shape[0], rows):
        yield array[top:top + rows]


def _count_classes(label: np.ndarray, path: Path, num_classes: int, ignore_index: int) -> np.ndarray:
    counts, bad = np.zeros(num_classes, np.int64), set()
    for band in _bands(label):
        ok = (band != ignore_index) & (band >= 0) & (band < num_classes)
        counts += np.bincount(band[ok], minlength=num_classes)[:num_classes]
        outside = band[~ok & (band != ignore_index)]
        if outside.size:
            bad |= set(np.unique(outside).tolist())
    if bad:
        raise DataError(f"{path}: label values {sorted(bad)[:10]} are outside 0..{num_classes - 1} "
                        f"(ignore={ignore_index}). Pass the right --num-classes / --ignore-index, "
                        "or fix the label.")
    return counts


def _infer_num_classes(pairs: list[tuple[Path, Path]], ignore_index: int) -> int:
    top = -1
    for _, lab in pairs:
        for band in _bands(read_label(lab)):
            values = band[band != ignore_index]
            top = max(top, int(values.max()) if values.size else -1)
    return top + 1


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def image_headers(paths: list[Path]) -> list[tuple[int, int, int]]:
    """``(width, height, channels)`` of every image from its header (nothing decoded): 1 for gray modes, 3
    otherwise, as :func:`seglab.data.io.read_image` reads them by default."""
    out = []
    for path in paths:
        try:
            with pil_pixel_limit(None), open_image(path) as im:
                w, h = stored_size(im)
                out.append((w, h, 1 if im.mode in GRAY_MODES else 3))
        except Exception as e:  # any decoder failure, as in read_image
            raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e}). Re-export the file or remove "
                            f"it (`seglab data check` lists every unreadable file).") from e
    return out


def majority_channels(headers: list[tuple[int, int, int]]) -> int:
    """The channel count most images have (3 on a tie: a colour image read as gray loses what gray read as
    colour keeps)."""
    gray = sum(c == 1 for _, _, c in headers)
    return 1 if gray > len(headers) - gray else 3


def _weights(counts: np.ndarray, present_totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = counts > 0
    inverse = np.zeros(len(counts))
    median = np.zeros(len(counts))
    if present.any():
        inverse[present] = counts.sum() / (present.sum() * counts[present])
        freq = counts[present] / present_totals[present]
        median[present] = np.median(freq) / freq
    return inverse, median


def _accumulate(pairs: list[tuple[Path, Path]], num_classes: int, ignore_index: int, channels: int | None,
                callback: Callable[[int, int], None] | None) -> tuple:
    """One pass over the split: class counts, T_c, images per class, ignored pixels, pixel moments."""
    counts = np.zeros(num_classes, np.int64)
    present_totals = np.zeros(num_classes, np.int64)  # T_c: labelled pixels of images containing c
    images_per_class = np.zeros(num_classes, np.int64)
    ignored = 0
    hist = np.zeros((channels or 0, 256), np.int64)  # pixel values per channel: exact moments, no float copy
    for done, (img_path, lab_path) in enumerate(pairs, 1):
        label = read_label(lab_path)
        c = _count_classes(label, lab_path, num_classes, ignore_index)
        counts += c
        present_totals += (c > 0) * c.sum()
        images_per_class += c > 0
        ignored += label.size - int(c.sum())
        del label
        if channels:
            for band in _bands(read_image(img_path, channels=channels)):
                for c in range(channels):
                    hist[c] += np.bincount(band[..., c].ravel(), minlength=256)
        if callback is not None:
            callback(done, len(pairs))
    if not channels:
        return counts, present_totals, images_per_class, ignored, None
    values = np.arange(256, dtype=np.float64) / 255.0
    n_pix = max(1, int(hist[0].sum()))
    return counts, present_totals, images_per_class, ignored, (hist @ values, hist @ (values * values), n_pix)


def compute_stats(root: str | os.PathLike, split: str = "train", num_classes: int | None = None,
                  ignore_index: int = 255, callback: Callable[[int, int], None] | None = None,
                  images: bool = True, channels: int | None = None, geometry: bool = False) -> dict:
    """Class statistics and normalisation values of ``root``'s ``split`` (formulas in the module docstring).

    ``num_classes`` defaults to the length of ``classes.txt``, else the largest label value + 1. With
    ``images=False`` the images are not read (no ``mean``/``std``), which is all class weights need.
    ``channels`` (1 or 3) is how images are read for mean/std, as the model's ``in_channels`` will read
    them; by default what most images' headers say (1 gray, 3 colour). ``callback(done, total)`` follows each
    image. ``geometry``: also the object scale of a sample of the labels (:mod:`seglab.data.label_geometry`)
    and the images' sizes from their headers.

    Returns:
        dict with ``num_images``, ``num_classes``, ``classes``, ``pixel_counts``, ``ignored_pixels``,
        ``frequencies``, ``images_per_class``, ``weights_inverse``, ``weights_median``,
        ``absent_classes`` and, with ``images``, ``mean`` / ``std`` (one value per channel).
    """
    root = Path(root)
    pairs = _pairs(root, split)
    names = _class_names(root, num_classes)
    if num_classes is None:
        num_classes = len(names) if names else _infer_num_classes(pairs, ignore_index)
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}.")
    names = names or [f"class_{i}" for i in range(num_classes)]
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (gray) or 3 (RGB), got {channels}.")
    headers = image_headers([img for img, _ in pairs]) if images or geometry else []
    channels = (channels or majority_channels(headers)) if images else None
    counts, present_totals, images_per_class, ignored, moments = _accumulate(
        pairs, num_classes, ignore_index, channels, callback)
    inverse, median = _weights(counts, present_totals)
    total = max(int(counts.sum()), 1)
    out = {
        "root": str(root), "split": split, "num_images": len(pairs), "num_classes": num_classes,
        "classes": names, "ignore_index": ignore_index, "pixel_counts": counts.tolist(),
        "ignored_pixels": ignored, "frequencies": (counts / total).tolist(),
        "images_per_class": images_per_class.tolist(), "weights_inverse": inverse.tolist(),
        "weights_median": median.tolist(), "absent_classes": [names[i] for i in np.flatnonzero(counts == 0)],
    }
    if geometry:
        out.update(_geometry(headers, [lab for _, lab in pairs], num_classes, ignore_index))
    if moments is not None:
        sums, sq_sums, n_pix = moments
        mean = sums / n_pix
        out["mean"] = mean.tolist()
        out["std"] = np.sqrt(np.maximum(sq_sums / n_pix - mean * mean, 0.0)).tolist()
    return out


def _geometry(headers: list[tuple[int, int, int]], labels: list[Path], num_classes: int, ignore_index: int) -> dict:
    """``image_sizes`` (from the headers) and ``geometry`` (object scale of a sample of the labels)."""
    from seglab.data.label_geometry import geometry_json, label_geometry, spread

    longs = sorted(max(w, h) for w, h, _ in headers)
    return {"image_sizes": {"long_min": longs[0], "long_median": longs[len(longs) // 2], "long_max": longs[-1],
                            "gray_images": sum(c == 1 for _, _, c in headers)},
            "geometry": geometry_json(label_geometry(spread(labels), num_classes, ignore_index))}


def class_weights(root: str | os.PathLike, split: str = "train", num_classes: int | None = None,
                  method: str = "inverse", ignore_index: int = 255) -> list[float]:
    """Per-class loss weights for ``CrossEntropyLoss(weight=...)``: ``"inverse"`` or ``"median"`` frequency.

    Absent classes get 0 (see the module docstring for the formulas).
    """
    if method not in ("inverse", "median"):
        raise ConfigError(f"class weight method: expected 'inverse' or 'median', got {method!r}.")
    stats = compute_stats(root, split, num_classes, ignore_index, images=False)
    return stats["weights_inverse" if method == "inverse" else "weights_median"]
