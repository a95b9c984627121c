"""What the dataset doctor learns from one image or label file: its size, label values, and what is wrong.

Nothing here raises on a bad file: each finding is a ``(problem, fix)`` pair on a :class:`FileReport`, which
:mod:`seglab.data.semantic.checks` turns into :class:`~seglab.data.problems.Problem` rows. The functions run
in worker threads (Pillow decodes outside the GIL) and return plain results the caller merges in order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from seglab.data.io import LABEL_EXTS, exif_orientation, open_image, stored_size
from seglab.data.layout import PALETTE_FILE

# What a viewer does to an image with each EXIF orientation tag (seglab does none of it).
EXIF_TURNS = {2: "mirrored left-right", 3: "turned 180 degrees", 4: "mirrored top-bottom",
              5: "mirrored and turned 90 degrees", 6: "turned 90 degrees clockwise",
              7: "mirrored and turned 90 degrees", 8: "turned 90 degrees counter-clockwise"}
EXIF_POLICY = "seglab reads pixels as stored and ignores the EXIF orientation"

# Pillow modes of single-channel class-index labels, and their bits per pixel.
_INDEX_MODES = {"L": 8, "P": 8, "1": 8, "I;16": 16, "I;16L": 16, "I;16B": 16, "I": 32}


@dataclass
class FileReport:
    """What inspecting one file found."""

    path: Path
    size: tuple[int, int] | None = None  # (width, height) as stored, which is what the dataset reads
    orientation: int = 1  # EXIF orientation tag of an image (1: none; never applied)
    values: np.ndarray | None = None  # label values present, when decoded
    wide: bool = False  # a 16/32-bit label
    findings: list[tuple[str, str]] = field(default_factory=list)  # (problem, fix)

    def add(self, problem: str, fix: str) -> FileReport:
        """Record one finding; returns self so an inspector can ``return report.add(...)``."""
        self.findings.append((problem, fix))
        return self


def inspect_image(path: Path, decode: bool, max_pixels: int) -> FileReport:
    """Read an image's header (and with ``decode`` its pixels, which finds truncated files); never raises.

    An EXIF orientation tag other than 1 is a finding: seglab reads the stored pixels (see
    :func:`seglab.data.io.read_image`), and whether the label matches them or the turned view that photo
    viewers and many annotation tools show cannot be told from the files.
    """
    report = FileReport(path)
    try:
        with open_image(path) as im:
            w, h = stored_size(im)
            if w * h > max_pixels:
                return _bomb(report, w, h, max_pixels)
            report.orientation = exif_orientation(im)  # before loading: Pillow drops a TIFF's tag on load
            if decode:
                im.load()  # decoding is the only way to find a truncated file
                if report.orientation == 1:  # a PNG's eXIf chunk may follow the pixels
                    report.orientation = exif_orientation(im, loaded=True)
    except Exception as e:  # any decoder failure is a finding about the file, never a crash
        return _unreadable(report, e, "image")
    report.size = (w, h)
    if report.orientation in EXIF_TURNS:
        report.add(*exif_finding(path, report.orientation, w, h))
    return report


def exif_finding(path: Path, tag: int, width: int, height: int) -> tuple[str, str]:
    """The doctor's ``(problem, fix)`` for an image whose EXIF orientation ``tag`` (2-8) seglab ignores."""
    problem = (f"EXIF orientation tag {tag} (viewers show the image {EXIF_TURNS[tag]}): {EXIF_POLICY}, so "
               f"its label must match the stored {width}x{height} pixels; the files cannot tell which view "
               "the label was drawn on")
    fix = (f"if your labels were drawn on the rotated view, rotate the image file itself, e.g. with "
           f"`exiftran -ai {path}` or PIL ImageOps.exif_transpose, and save it without the tag; if they "
           f"match the stored pixels, only remove the tag (`exiftool -Orientation= {path}`)")
    return problem, fix


def inspect_label(path: Path, decode: bool, max_pixels: int) -> FileReport:
    """Check a label's extension, format, mode and size (and with ``decode`` its values); never raises."""
    report = FileReport(path)
    jpeg_fix = "labels must be lossless: re-export the original class-index mask as PNG"
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return report.add("JPEG label: compression changes class indices at edges", jpeg_fix)
    if path.suffix.lower() not in LABEL_EXTS:
        return report.add(f"label is {path.suffix} (labels must be PNG)", "save it as a single-channel PNG")
    try:
        with open_image(path) as im:
            if im.format == "JPEG":
                return report.add("JPEG data with a .png name: compression changed class indices", jpeg_fix)
            if im.mode in ("RGB", "RGBA"):
                return _color_label(report, im.mode)
            if im.mode not in _INDEX_MODES:
                return report.add(f"label mode {im.mode} ({len(im.getbands())} band(s)) is not class indices",
                                  "save a single-channel 8-bit PNG (or 16-bit for more than 255 classes)")
            w, h = im.size
            if w * h > max_pixels:
                return _bomb(report, w, h, max_pixels)
            report.wide = _INDEX_MODES[im.mode] > 8
            report.values = _present_values(np.asarray(im)) if decode else None
    except Exception as e:  # any decoder failure is a finding about the file, never a crash
        return _unreadable(report, e, "label")
    report.size = (w, h)
    return report


def _present_values(label: np.ndarray) -> np.ndarray:
    if label.dtype in (np.uint8, np.uint16, np.bool_):
        return np.flatnonzero(np.bincount(label.ravel().astype(np.int64, copy=False)))
    return np.unique(label)


def _color_label(report: FileReport, mode: str) -> FileReport:
    root = report.path.parent.parent.parent  # labels/<split>/<file> -> the dataset root
    palette = root / PALETTE_FILE if (root / PALETTE_FILE).is_file() else Path(PALETTE_FILE)
    return report.add(f"{mode} color label: labels must be single-channel class indices",
                      f"seglab data convert rgb-to-index {root} --palette {palette} --out {root}_index")


def _bomb(report: FileReport, w: int, h: int, max_pixels: int) -> FileReport:
    return report.add(f"{w}x{h} = {w * h:,} pixels is above the {max_pixels:,} limit (decompression-bomb "
                      "guard)", f"if the file is trusted, pass --max-pixels {w * h}")


def _unreadable(report: FileReport, error: Exception, kind: str) -> FileReport:
    path, remove = report.path, f"re-export the {kind} or remove it"
    if path.is_symlink() and not path.exists():
        return report.add(f"broken symbolic link to {os.readlink(path)}", f"point the link at the file or {remove}")
    if isinstance(error, PermissionError):
        return report.add("cannot be read: permission denied", f"make it readable (chmod a+r {path})")
    if isinstance(error, UnidentifiedImageError):
        return report.add("not an image file Pillow can read (empty, corrupt or another format)", remove)
    return report.add(f"corrupt or truncated {kind} ({type(error).__name__}: {error})", remove)
