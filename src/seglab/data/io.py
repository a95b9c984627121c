"""Reading images, label maps and JSON the same way everywhere (dataset, doctors, stats, predict).

``classes.txt`` and ``palette.txt`` belong to the dataset layout: see :mod:`seglab.data.layout`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from seglab.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LABEL_EXTS = (".png",)
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb threshold
EXIF_ORIENTATION = 0x0112
_T = Image.Transpose
# Pillow (10.1+) turns a TIFF by its orientation tag when it loads it, and drops the tag; these undo that
# turn (ImageOps.exif_transpose's, inverted), so TIFFs are read as stored like every other format.
_UNDO_TURN = {2: _T.FLIP_LEFT_RIGHT, 3: _T.ROTATE_180, 4: _T.FLIP_TOP_BOTTOM, 5: _T.TRANSPOSE, 6: _T.ROTATE_90,
              7: _T.TRANSVERSE, 8: _T.ROTATE_270}


def list_files(folder: str | os.PathLike, exts: tuple[str, ...]) -> list[Path]:
    """Files in ``folder`` (not recursive) whose suffix is in ``exts``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def unsupported_files(folder: str | os.PathLike, exts: tuple[str, ...]) -> list[Path]:
    """Image files in ``folder`` that seglab does not read (a ``.webp``, a ``.gif``), sorted by name.

    An image file is one whose extension Pillow registers; ``exts`` (what seglab reads there) does not list
    it. The doctors name these files, so a user with ``.webp`` images is told the format is not supported
    instead of "label has no image"; other files (notes, ``Thumbs.db``) are left alone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    known = Image.registered_extensions()
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in known
                  and p.suffix.lower() not in exts and not p.is_dir())


def unsupported_finding(path: Path, exts: tuple[str, ...], kind: str = "images") -> tuple[str, str]:
    """The doctors' ``(problem, fix)`` for a file of a format seglab does not read."""
    names = ", ".join(e[1:] for e in exts)
    to = "PNG" if exts == LABEL_EXTS else "PNG (or JPEG / TIFF)"
    return (f"format {path.suffix.lower()} is not supported for {kind} ({names})",
            f"convert it to {to} with the same stem, e.g. `python -c \"from PIL import Image; "
            f"Image.open('{path.name}').save('{path.stem}.png')\"`, and remove the {path.suffix} file")


def read_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Read an image as ``uint8`` HxWxC (C = ``channels``: 1 gray or 3 RGB), pixels as stored.

    The EXIF orientation tag is ignored on purpose: labels are drawn on the stored pixels, and turning the
    image alone would pair it with a label turned the other way. The doctor reports tagged images
    (:func:`exif_orientation`). 16-bit and float images are scaled to 0-255 by the range of their finite
    pixels; NaN and infinite pixels (no-data values) are read as 0, the low end of that range.

    Raises:
        DataError: the file is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        with open_image(path) as im:
            return decode_image(im, channels)
    except Exception as e:  # any decoder failure (Pillow raises OSError, SyntaxError, EOFError, ...)
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e}). Re-export the file or "
                        "remove it.") from e


def open_image(source: str | os.PathLike | BinaryIO) -> Image.Image:
    """Open an image file (or an upload's bytes) lazily: the header is read, the pixels wait for a load.

    This is the one place seglab hands a file to Pillow's decoder (tests/data/test_io.py checks that no other
    module calls ``Image.open``), so what a pixel means (stored orientation, 16-bit and float scaling, NaN)
    is decided here and in :func:`decode_image`, once. Use it as ``with open_image(path) as im:``.
    """
    return Image.open(source)


def decode_image(im: Image.Image, channels: int = 3) -> np.ndarray:
    """An opened image's pixels as ``uint8`` HxWxC, the way :func:`read_image` reads files (the stored
    orientation; 16-bit and float scaled by their finite range). Raises what Pillow raises on a damaged file."""
    tag = exif_orientation(im)
    im.load()
    if tag in _UNDO_TURN and exif_orientation(im, loaded=True) != tag:  # Pillow turned it (TIFF)
        im = im.transpose(_UNDO_TURN[tag])
    arr = np.asarray(_to_mode(im, "L" if channels == 1 else "RGB"))
    return arr[..., None] if arr.ndim == 2 else arr


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F") and mode in ("L", "RGB"):
        # 16-bit / float images: scale to 8 bit by their own range so they are not saturated. The range is
        # that of the finite pixels: one NaN (a no-data pixel) must not turn the whole image black; NaN and
        # infinite pixels themselves are read as 0, the low end (documented in read_image).
        a = np.asarray(im, dtype=np.float32)
        finite = np.isfinite(a)
        lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
        a = (np.where(finite, a, lo) - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
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
        with open_image(path) as im:
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
    except Exception as e:  # any decoder failure, as in read_image
        raise DataError(f"{path}: cannot read label ({type(e).__name__}: {e}). Re-export the file or "
                        "remove it.") from e
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr.astype(np.int32) if arr.dtype.itemsize > 1 else arr


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (UTF-8, a byte-order mark allowed); a syntax error names the line and column.

    Only the syntax is checked here: what the document must hold is checked by its reader (for COCO files
    :func:`seglab.data.instance.checks.load_coco`).

    Raises:
        DataError: the file is missing, unreadable, not UTF-8 or not valid JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found. Check the dataset root and split name.") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}. "
                        "Fix the file (a JSON linter shows the spot) or re-export it.") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); JSON files must be UTF-8. "
                        "Re-export the file as UTF-8.") from e
    except RecursionError as e:
        raise DataError(f"{path}: JSON nested too deeply to read. Re-export the file.") from e
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read JSON ({e}). Re-export the file.") from e


def show_value(value: Any, limit: int = 60) -> str:
    """A JSON value as messages quote it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value: Any) -> bool:
    """An integer from a JSON document (``true`` / ``false`` are not integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite number from a JSON document (not a bool, not NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def exif_orientation(im: Image.Image, loaded: bool = False) -> int:
    """EXIF orientation tag (1 = as stored; 2-8 = viewers show the image turned or mirrored), read without
    decoding the pixels; 1 when there is no tag or the EXIF block is unreadable.

    seglab never applies the tag (:func:`read_image`); the doctor reports it. A PNG's eXIf chunk may follow
    the pixel data, and Pillow's ``getexif`` then decodes the whole image, so an unloaded PNG only looks at
    the chunks already read.
    """
    if im.format == "PNG" and "exif" not in im.info and not loaded:
        return 1
    try:
        tag = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a malformed EXIF block: seglab ignores EXIF anyway
        return 1
    return tag if is_int(tag) else 1


def stored_size(im: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image as stored, which is what :func:`read_image` returns.

    Pillow reports a TIFF's size already turned by its orientation tag; the TIFF header's own width and
    length are the stored size.
    """
    if im.format == "TIFF":
        with contextlib.suppress(Exception):
            return int(im.tag_v2[256]), int(im.tag_v2[257])  # ImageWidth, ImageLength
    return im.size


def image_size(path: str | os.PathLike, max_pixels: int) -> tuple[tuple[int, int] | None, str | None]:
    """``((width, height), None)`` as stored (what :func:`read_image` returns), from the header only;
    ``(None, reason)`` when the file cannot be used (unreadable, or over ``max_pixels``). Never raises."""
    try:
        with open_image(path) as im:
            w, h = stored_size(im)
    except Exception as e:  # any decoder failure is a finding about the file; the caller reports it
        return None, f"cannot read image ({type(e).__name__}: {e})"
    if w * h > max_pixels:
        return None, f"image has {w * h} pixels, over the limit of {max_pixels}"
    return (w, h), None


@contextlib.contextmanager
def pil_pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Temporarily set Pillow's decompression-bomb limit (None: no limit, for reading headers only).

    Pillow's limit is a process-wide global; seglab's ``--max-pixels`` must be able to lift it, and the
    doctor must read the size of a huge file from its header to report it instead of crashing.
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


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
