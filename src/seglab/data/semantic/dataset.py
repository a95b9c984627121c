"""Semantic segmentation folder dataset: ``images/<split>/<stem>.<ext>`` + ``labels/<split>/<stem>.png``.

Listing, pairing by stem, ``classes.txt`` and ``palette.txt`` come from :mod:`seglab.data.layout`, as in the
dataset doctor (:mod:`seglab.data.semantic.checks`) and the statistics, so all three agree on which files make a
sample and what each class is called.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from seglab.data.io import DEFAULT_MAX_PIXELS, pil_pixel_limit, read_image, read_label
from seglab.data.layout import list_split, pair_by_stem, read_classes, read_dataset_palette
from seglab.data.preflight import preflight
from seglab.errors import ConfigError, DataError

Transforms = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[torch.Tensor, torch.Tensor]]


class SegmentationFolder(torch.utils.data.Dataset):
    """Pairs of (image, class-index mask) from ``root/images/<split>`` and ``root/labels/<split>``.

    Images may be PNG/JPEG/TIFF/BMP (gray, RGB, RGBA, 16-bit); labels are single-channel PNGs ('L',
    'P' read as indices, or 16-bit). Samples are paired by file stem and sorted by stem.

    With ``check=True`` (default) opening the dataset runs :func:`~seglab.data.preflight.preflight` on this
    split (the doctor decoding every file, remembered for unchanged files), so training never starts on
    data the doctor would refuse.

    Args:
        root: dataset folder holding ``images/`` and ``labels/``.
        split: sub-folder name, e.g. ``"train"``.
        transforms: joint ``(image, mask) -> (image, mask)`` on ``tv_tensors.Image`` (uint8, C×H×W)
            and ``tv_tensors.Mask`` (int64, H×W).
        in_channels: 3 (gray promoted to RGB, alpha dropped) or 1 (converted to gray).
        ignore_index: label value excluded from training and metrics.
        num_classes: number of classes K; default ``len(classes.txt)`` when present, else unknown.
        check: run the preflight check (the full doctor, cached) when opening.
        max_pixels: refuse images larger than this (decompression-bomb guard).
        classes_from: where ``num_classes`` came from, for messages (e.g. "the checkpoint best.pt").

    Raises:
        DataError: a missing split folder or (with ``check``) any problem the doctor finds.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transforms: Transforms | None = None,
        in_channels: int = 3,
        ignore_index: int = 255,
        num_classes: int | None = None,
        check: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        classes_from: str = "--num-classes",
    ) -> None:
        if in_channels not in (1, 3):
            raise ConfigError(f"in_channels must be 1 (gray) or 3 (RGB), got {in_channels}.")
        if num_classes is not None and num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}.")
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.in_channels = in_channels
        self.ignore_index = ignore_index
        self.max_pixels = max_pixels
        if check:
            preflight(self.root, self.split, num_classes, self.ignore_index, self.max_pixels, classes_from)
        names = read_classes(self.root)
        self.num_classes: int | None = num_classes if num_classes is not None else (
            len(names) if names is not None else None)
        if names is not None and self.num_classes is not None and len(names) >= self.num_classes:
            self.classes: list[str] = names[: self.num_classes]
        elif self.num_classes is not None:
            given = names or []
            self.classes = given + [f"class_{i}" for i in range(len(given), self.num_classes)]
        else:
            self.classes = []
        self.palette: np.ndarray | None = read_dataset_palette(self.root)
        self.samples: list[tuple[Path, Path]] = self._pair()
        self.stems: list[str] = [img.stem for img, _ in self.samples]

    def _pair(self) -> list[tuple[Path, Path]]:
        image_dir, label_dir = self.root / "images" / self.split, self.root / "labels" / self.split
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise DataError(f"{folder}: split folder not found. Expected images/{self.split}/ and "
                                f"labels/{self.split}/ under {self.root}; "
                                f"run `seglab data check {self.root}`.")
        pairs = pair_by_stem(list_split(image_dir), list_split(label_dir)).pairs
        if not pairs:
            raise DataError(f"{image_dir}: no image has a label of the same stem in {label_dir}; "
                            f"run `seglab data check {self.root}`.")
        return pairs

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image float32 (C, H, W), mask int64 (H, W))``; images in [0, 1] unless transformed."""
        image_path, label_path = self.samples[i]
        # Only touch Pillow's global limit when the user lifted it (--max-pixels); the doctor has
        # already refused files above a lower limit from their headers.
        lift = self.max_pixels > DEFAULT_MAX_PIXELS
        with pil_pixel_limit(self.max_pixels) if lift else contextlib.nullcontext():
            image = read_image(image_path, channels=self.in_channels)
            label = read_label(label_path)
        self._validate(image, label, image_path, label_path)
        # np.array copies: Pillow arrays are read-only, and torch must not share a read-only buffer.
        img = tv_tensors.Image(torch.from_numpy(np.array(image.transpose(2, 0, 1), order="C")))
        mask = tv_tensors.Mask(torch.from_numpy(label.astype(np.int64)))
        if self.transforms is not None:
            img, mask = self.transforms(img, mask)
        img = img.as_subclass(torch.Tensor)
        img = img.float().div_(255.0) if img.dtype == torch.uint8 else img.float()
        return img, mask.as_subclass(torch.Tensor).long()

    def _validate(self, image: np.ndarray, label: np.ndarray, image_path: Path, label_path: Path) -> None:
        if image.shape[:2] != label.shape:
            raise DataError(f"{label_path}: label is {label.shape[1]}x{label.shape[0]} but its image "
                            f"{image_path.name} is {image.shape[1]}x{image.shape[0]}; they must match. "
                            f"Run `seglab data check {self.root}`.")
        if self.num_classes is None:
            return
        bad = (label >= self.num_classes) & (label != self.ignore_index)
        if bad.any():
            found = np.unique(label[bad])[:8].tolist()
            raise DataError(f"{label_path}: values {found} are >= num_classes={self.num_classes} and not the "
                            f"ignore index {self.ignore_index}. Run `seglab data check {self.root}`.")
