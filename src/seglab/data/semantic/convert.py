"""Label format converters: RGB color codes <-> class indices, 0/255 masks -> 0/1, palette PNG -> plain 'L'.

Each converter reads every label file of ``src_dir`` and writes a PNG with the same stem into ``out_dir``
(atomically). ``src_dir`` is either a folder of label files or a dataset root holding ``labels/<split>/``;
for a root, each split is written to ``out_dir/labels/<split>/`` and the images (hard links where possible)
and ``classes.txt`` are mirrored, so ``out_dir`` is a ready dataset. The output folder must differ from the
input one: converters never overwrite their input, so a wrong palette costs nothing. Progress goes to
``callback(done, total)`` after each file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.io import IMAGE_EXTS, LABEL_EXTS, list_files, read_image, read_label, write_label
from seglab.data.layout import CLASSES_FILE, read_palette
from seglab.errors import ConfigError, DataError
from seglab.fileio import atomic_path, check_output_path, refuse_overwrite

__all__ = ["load_palette", "rgb_to_index", "index_to_rgb", "binary_to_index", "palette_to_l"]


PaletteLike = str | os.PathLike | Sequence[Sequence[int]] | np.ndarray
Callback = Callable[[int, int], None]
_COLOR_EXTS = tuple(e for e in IMAGE_EXTS if e not in (".jpg", ".jpeg"))  # lossy JPEG smears label colors


def load_palette(path: str | os.PathLike) -> np.ndarray:
    """Read a palette file (see :func:`seglab.data.layout.read_palette`) whose colors must all differ.

    Raises:
        ConfigError: the file is missing or malformed, or two classes share a color. The palette is a
            converter option (``--palette``), so its problems are option errors here.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: palette file not found. "
                          "Write one line 'r g b' (or 'name r g b') per class.")
    try:
        colors = read_palette(path)
    except DataError as e:
        raise ConfigError(str(e)) from e
    return _check_palette(colors.astype(np.int64), str(path))


def _check_palette(palette: np.ndarray, where: str) -> np.ndarray:
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ConfigError(f"{where}: a palette is a non-empty list of (r, g, b) colors, "
                          f"got shape {palette.shape}.")
    codes = _codes(palette)
    if len(np.unique(codes)) != len(codes):
        dup = [tuple(int(v) for v in palette[i]) for i in range(len(codes)) if (codes == codes[i]).sum() > 1]
        raise ConfigError(f"{where}: colors {sorted(set(dup))} appear more than once; "
                          "each class needs its own.")
    return palette.astype(np.uint8)


def _as_palette(palette: PaletteLike) -> np.ndarray:
    if isinstance(palette, (str, os.PathLike)):
        return load_palette(palette)
    return _check_palette(np.asarray(palette, dtype=np.int64).reshape(-1, 3), "palette")


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _plan(src_dir: str | os.PathLike, out_dir: str | os.PathLike,
          exts: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(input, output) paths, checked before anything is written.

    Refuses an output folder equal to its input folder or that cannot be written, any output that would
    replace an input (other names of one file included), and two inputs that would write one output.
    """
    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise DataError(f"{src}: folder not found. "
                        "Pass a folder of label files or a dataset root with labels/.")
    check_output_path(out, directory=True)
    folders = [(src, out)]
    if (src / "labels").is_dir():
        folders = [(d, out / "labels" / d.name) for d in sorted((src / "labels").iterdir()) if d.is_dir()]
    pairs = []
    for s, o in folders:
        if o.resolve() == s.resolve():
            raise DataError(f"{o}: the output folder is the input folder; converters never overwrite their "
                            "input. Pass a different --out (e.g. a sibling folder).")
        pairs += [(p, o / f"{p.stem}.png") for p in list_files(s, exts)]
    if not pairs:
        raise DataError(f"{src}: no label files ({', '.join(exts)}) found. Check the path.")
    seen: dict[Path, Path] = {}
    for s, o in pairs:
        if o in seen:
            raise DataError(f"{seen[o]} and {s} would both be written as {o}; one would replace the other. "
                            "Keep one label file per stem.")
        seen[o] = s
    refuse_overwrite([o for _, o in pairs], [s for s, _ in pairs])
    return pairs


def _run(src_dir: str | os.PathLike, out_dir: str | os.PathLike, exts: tuple[str, ...],
         convert: Callable[[Path, Path], None], callback: Callback | None) -> list[Path]:
    pairs = _plan(src_dir, out_dir, exts)
    for done, (src, dst) in enumerate(pairs, 1):
        convert(src, dst)
        if callback is not None:
            callback(done, len(pairs))
    if (Path(src_dir) / "labels").is_dir():
        _mirror_root(Path(src_dir), Path(out_dir))
    return [dst for _, dst in pairs]


def _mirror_root(src: Path, out: Path) -> None:
    """Make a converted dataset root usable at once: link (or copy) its images and copy classes.txt."""
    for folder in sorted(p for p in (src / "images").glob("*") if p.is_dir()):
        for image in list_files(folder, IMAGE_EXTS):
            dst = out / "images" / folder.name / image.name
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(image, dst)  # free on the same filesystem
            except OSError:
                _copy(image, dst)
    if (src / CLASSES_FILE).is_file() and not (out / CLASSES_FILE).exists():
        _copy(src / CLASSES_FILE, out / CLASSES_FILE)


def _copy(src: Path, dst: Path) -> None:
    """Copy atomically: a copy cut short (full disk) must not stay behind as a complete-looking file."""
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)


def rgb_to_index(src_dir: str | os.PathLike, out_dir: str | os.PathLike, palette: PaletteLike,
                 unknown_to_ignore: bool = False, ignore_index: int = 255,
                 ignore_color: Sequence[int] | None = None, callback: Callback | None = None) -> list[Path]:
    """Turn color-coded labels into index PNGs: a pixel of ``palette[i]`` becomes ``i``.

    Pixels of ``ignore_color`` become ``ignore_index``. A color in neither raises :class:`DataError`
    listing the colors found, unless ``unknown_to_ignore`` maps them to ``ignore_index``.

    Returns:
        The written label paths.
    """
    pal = _as_palette(palette)
    codes = _codes(pal)
    order = np.argsort(codes)
    ignore_code = None if ignore_color is None else int(_codes(np.asarray(ignore_color)))

    def convert(src: Path, dst: Path) -> None:
        pix = _codes(read_image(src, channels=3))
        pos = np.clip(np.searchsorted(codes[order], pix), 0, len(codes) - 1)
        index = order[pos]
        known = codes[index] == pix
        is_ignore = pix == ignore_code if ignore_code is not None else np.zeros_like(known)
        unknown = ~known & ~is_ignore
        if unknown.any() and not unknown_to_ignore:
            found, n = np.unique(pix[unknown], return_counts=True)
            top = np.argsort(-n, kind="stable")[:8]
            listed = ", ".join(f"{_rgb(found[i])} x{int(n[i])}" for i in top)
            raise DataError(f"{src}: {len(found)} colors are not in the palette: {listed}. Add them to the "
                            "palette file, or map them to ignore (--unknown-to-ignore).")
        out = np.where(known, index, ignore_index)
        write_label(dst, out)

    return _run(src_dir, out_dir, _COLOR_EXTS, convert, callback)


def _rgb(code: int) -> tuple[int, int, int]:
    code = int(code)
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def index_to_rgb(src_dir: str | os.PathLike, out_dir: str | os.PathLike, palette: PaletteLike,
                 ignore_index: int = 255, ignore_color: Sequence[int] | None = None,
                 callback: Callback | None = None) -> list[Path]:
    """Turn index PNGs into RGB color-coded PNGs (the inverse of :func:`rgb_to_index`).

    ``ignore_index`` pixels get ``ignore_color``; without one, labels holding ignore pixels are refused.
    """
    pal = _as_palette(palette)
    if ignore_color is not None and (_codes(pal) == int(_codes(np.asarray(ignore_color)))).any():
        raise ConfigError(f"ignore_color {tuple(ignore_color)} is also a class color in the palette; "
                          "pick a color no class uses.")
    lut = np.zeros((max(len(pal), ignore_index + 1), 3), np.uint8)
    lut[: len(pal)] = pal
    if ignore_color is not None:
        lut[ignore_index] = ignore_color

    def convert(src: Path, dst: Path) -> None:
        label = read_label(src).astype(np.int64)
        bad = ((label >= len(pal)) & (label != ignore_index)) | (label < 0)
        if (label == ignore_index).any() and ignore_color is None:
            raise DataError(f"{src}: has ignore pixels ({ignore_index}) but no ignore color was given. "
                            "Pass --ignore-color R,G,B.")
        if bad.any():
            raise DataError(f"{src}: values {np.unique(label[bad])[:8].tolist()} have no palette color "
                            f"(palette has {len(pal)}). Extend the palette.")
        with atomic_path(dst) as tmp:
            Image.fromarray(lut[label]).save(tmp, format="PNG")

    return _run(src_dir, out_dir, LABEL_EXTS, convert, callback)


def binary_to_index(src_dir: str | os.PathLike, out_dir: str | os.PathLike, threshold: int = 128,
                    callback: Callback | None = None) -> list[Path]:
    """Turn 0/255 (or anti-aliased gray) masks into 0/1 index labels: ``value >= threshold`` -> 1.

    Masks that already hold only 0 and 1 are written unchanged, so running twice is harmless.
    """
    if not 0 < threshold <= 255:
        raise ConfigError(f"threshold: expected 1..255, got {threshold}.")

    def convert(src: Path, dst: Path) -> None:
        gray = read_image(src, channels=1)[..., 0]
        write_label(dst, gray if gray.max(initial=0) <= 1 else (gray >= threshold).astype(np.uint8))

    return _run(src_dir, out_dir, _COLOR_EXTS, convert, callback)


def palette_to_l(src_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 callback: Callback | None = None) -> list[Path]:
    """Rewrite palette ('P') PNGs as plain 8/16-bit grayscale with the same stored indices.

    Tools that call ``convert('L')`` on a 'P' image get palette luminance instead of class ids; plain
    'L' labels read the same everywhere.
    """
    return _run(src_dir, out_dir, LABEL_EXTS, lambda s, d: write_label(d, read_label(s)), callback)
