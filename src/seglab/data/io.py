"""Reading images, label maps and palettes the same way everywhere (dataset, doctor, stats, predict)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from seglab.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LABEL_EXTS = (".png",)
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb threshold


def list_files(folder: str | os.PathLike, exts: tuple[str, ...]) -> list[Path]:
    """Files in ``folder`` (not recursive) whose suffix is in ``exts``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def read_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Read an image as ``uint8`` HxWxC (C = ``channels``: 1 gray or 3 RGB), EXIF rotation applied.

    Raises:
        DataError: the file is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im = _to_mode(im, "L" if channels == 1 else "RGB")
            arr = np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read image ({e}). Re-export the file or remove it.") from e
    return arr[..., None] if arr.ndim == 2 else arr


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I", "F") and mode in ("L", "RGB"):
        # 16-bit / float images: scale to 8 bit by their own range so they are not saturated.
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        im = Image.fromarray(a.round().astype(np.uint8))
    return im.convert(mode)


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as an HxW integer array of class indices.

    'L' and 'P' (palette) PNGs give their stored indices (never the palette colors); 16-bit PNGs
    give int32. Multi-channel labels are refused: they are color-coded and need
    ``seglab data convert``.

    Raises:
        DataError: unreadable file or a label that is not single-channel.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                raise DataError(
                    f"{path}: label has {len(im.getbands())} channels ({mode}); labels must be "
                    "single-channel class indices. Convert color-coded labels with "
                    f"`seglab data convert rgb-to-index {path.parent.parent.parent} --palette palette.txt "
                    f"--out {path.parent.parent.parent}_index`."
                )
            arr = np.asarray(im)
    except DataError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read label ({e}). Re-export the file or remove it.") from e
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr.astype(np.int32) if arr.dtype.itemsize > 1 else arr


def read_palette(path: str | os.PathLike) -> np.ndarray:
    """Read a palette file as a ``(K, 3)`` uint8 array; line ``i`` is the color of class ``i``.

    Lines are ``r g b`` or ``name r g b`` (names may contain spaces; commas also separate); blank
    lines and ``#`` comments are skipped.

    Raises:
        DataError: unreadable file, a line without three integers 0-255 (naming file and line), or no
            colors at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the palette ({e}). Pass a readable UTF-8 palette.txt.") from e
    colors = []
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split("#", 1)[0].replace(",", " ").split()
        if not parts:
            continue
        try:
            rgb = [int(v) for v in parts[-3:]]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            # "file:line" first for editors; the line again after ": " for the doctor, which drops the path.
            raise DataError(f"{path}:{n}: line {n} is {raw.strip()!r}; expected 'r g b' or 'name r g b' "
                            "with three integers 0-255. Fix or delete that line.")
        colors.append(rgb)
    if not colors:
        raise DataError(f"{path}: palette has no colors. Write one 'r g b' line per class.")
    return np.asarray(colors, dtype=np.uint8)


def write_label(path: str | os.PathLike, label: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write an HxW index map as PNG atomically: 8-bit ('L', or 'P' with ``palette``) or 16-bit."""
    from seglab.fileio import atomic_path

    label = np.asarray(label)
    if label.max(initial=0) > 255:
        im = Image.fromarray(label.astype(np.uint16))
    else:
        im = Image.fromarray(label.astype(np.uint8))
        if palette is not None:  # putpalette turns the 'L' image into 'P' keeping the indices
            im.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
