"""What goes into a model: images of any common form turned into normalized float tensors, on its device.

One conversion for whole-image, tiled, batched and instance prediction, so they cannot drift apart: a
PIL image, a numpy ``(H, W[, C])`` array (uint8 or float in [0, 1]) or a ``(C, H, W)`` tensor is kept in
its compact form and read out tile by tile, adapted to the model's input channels and normalized.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from seglab.errors import ConfigError, DataError, SeglabError

ImageLike = Image.Image | np.ndarray | torch.Tensor


class ImageSource:
    """The input image kept in its compact form; tiles are converted to normalized float on demand."""

    def __init__(self, image: ImageLike, in_channels: int | None, mean: Sequence[float] | None,
                 std: Sequence[float] | None) -> None:
        self.array: np.ndarray | None = None
        self.tensor: torch.Tensor | None = None
        self.original: tuple[int, int] | None = None  # (H, W) of the input when this is its resized copy
        if isinstance(image, Image.Image):
            mode = "L" if in_channels == 1 else "RGB"
            image = np.asarray(image.convert(mode))
        if isinstance(image, np.ndarray):
            self.array = _check_array(image)
            self.height, self.width, channels = self.array.shape
        elif isinstance(image, torch.Tensor):
            self.tensor = _check_tensor(image)
            channels, self.height, self.width = self.tensor.shape
        else:
            raise DataError("Expected a PIL image, a numpy array or a tensor, "
                            f"but got {type(image).__name__}.")
        self.adapt = _channel_adapter(channels, in_channels)
        n = in_channels or channels
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v is not None and v.numel() not in (1, n):
                raise ConfigError(f"Expected `{name}` to have 1 or {n} values, but got {v.numel()}.")
        if self.std is not None and bool((self.std <= 0).any()):
            raise ConfigError(f"Expected `std` values > 0, but got {self.std.flatten().tolist()}.")

    def read(self, y: int, x: int, h: int, w: int) -> torch.Tensor:
        """Rows ``y:y+h``, columns ``x:x+w`` as a normalized float32 ``(C, h, w)`` tensor."""
        if self.array is not None:
            # np.array copies the tile: arrays from PIL are read-only, which torch warns about.
            part = torch.from_numpy(np.array(self.array[y:y + h, x:x + w])).permute(2, 0, 1)
            t = part.float().div_(255.0) if part.dtype == torch.uint8 else part.float()
        else:
            assert self.tensor is not None
            part = self.tensor[:, y:y + h, x:x + w]
            t = part.float().div(255.0) if part.dtype == torch.uint8 else part.float()
        t = self.adapt(t)
        if self.mean is not None:
            t = t - self.mean
        if self.std is not None:
            t = t / self.std
        return t

    def resized(self, long_side: int | None) -> ImageSource:
        """This image normalized and scaled to ``long_side`` (``data.resize``), remembering its own size in
        ``original`` so outputs can go back to it; itself when no resize is asked or the size already fits."""
        from seglab.data.resize import resize_long_side, resized_size

        if long_side is None or resized_size(self.height, self.width, long_side) == (self.height, self.width):
            return self
        src = ImageSource(resize_long_side(self.read(0, 0, self.height, self.width), long_side), None, None, None)
        src.original = (self.height, self.width)
        return src


def prepare_image(image: ImageLike, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  in_channels: int | None = None, resize: int | None = None) -> torch.Tensor:
    """The normalized float32 ``(C, H, W)`` tensor the model sees for ``image`` (see ``predict``); with
    ``resize`` (``data.resize``) scaled to that long side."""
    src = ImageSource(image, in_channels, mean, std).resized(resize)
    return src.read(0, 0, src.height, src.width)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode and restore its previous train/eval flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def same_size_batches(items: Iterable[tuple[Any, ImageLike]], prepare: Callable[[ImageLike], torch.Tensor],
                      batch_size: int) -> Iterator[list[tuple[Any, ImageLike, torch.Tensor]]]:
    """Group consecutive ``(key, image)`` pairs into batches of prepared tensors of one shape.

    Only same-size images share a batch: padding to a neighbour's size would make a prediction depend on
    the other images of its batch. At most ``batch_size`` prepared images are held at a time.
    """
    pending: list[tuple[Any, ImageLike, torch.Tensor]] = []
    for key, image in items:
        x = prepare(image)
        if pending and (x.shape != pending[0][2].shape or len(pending) >= batch_size):
            yield pending
            pending = []
        pending.append((key, image, x))
    if pending:
        yield pending


def model_in_channels(model: nn.Module) -> int | None:
    """Input channels of the model's first convolution (``None`` when it has none)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """``device`` (moving the model there), else the device the model's parameters are on."""
    if device is not None:
        dev = torch.device(device)
        model.to(dev)
        return dev
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size below 1 (the message names the argument)."""
    if batch_size < 1:
        raise ConfigError(f"Expected `batch_size` >= 1, but got {batch_size}.")


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by ``inputs`` (files, folders, glob patterns), without duplicates, in order.

    Returns ``(paths, failures)``: each input that names nothing is a ``(input, reason)`` failure, so a
    typo is reported beside the files that were found instead of ending the whole run.
    """
    found = find_images(inputs)
    return found.paths, found.failures


@dataclass
class FoundImages:
    """What :func:`find_images` found: the files, the inputs that named nothing, each file's subfolder."""

    paths: list[Path]
    failures: list[tuple[str, str]]
    folders: dict[Path, str] = field(default_factory=dict)  # posix path below its folder input; "" = none


def find_images(inputs: Sequence[str | Path], *, recursive: bool = False,
                skip: str | Path | None = None) -> FoundImages:
    """Image files named by ``inputs`` (files, folders, glob patterns), without duplicates, in order.

    ``recursive`` walks folders into their subfolders (hidden ones and symlinked folders excepted) and
    records where each file sits below the folder it was found in (``folders``), so outputs can mirror
    it; a glob's files are placed below the pattern's first folder without wildcards. ``skip`` is a
    folder the walk does not enter (the output folder inside an input folder: a rerun must not predict
    its own outputs). Without ``recursive`` folders give their own files only, and ``folders`` is empty.
    """
    from seglab.data.io import IMAGE_EXTS, list_files

    found = FoundImages([], [])
    for item in map(str, inputs):
        p = Path(item)
        if p.is_dir():
            files = _walk(p, IMAGE_EXTS, skip) if recursive else list_files(p, IMAGE_EXTS)
            root = p
        elif p.is_file():
            files, root = [p], p.parent
        elif glob.has_magic(item):
            files = [Path(m) for m in sorted(glob.glob(item, recursive=True))
                     if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_EXTS]
            root = Path(*_leading_plain(p.parts))
        else:
            files = []
        if not files:
            found.failures.append((item, "not found (no such file, or no images in that folder / pattern)"))
        for f in files:
            if recursive and f not in found.folders:
                rel = f.parent.relative_to(root).as_posix()
                found.folders[f] = "" if rel == "." else rel
        found.paths += files
    found.paths = list(dict.fromkeys(found.paths))
    return found


def _leading_plain(parts: Sequence[str]) -> list[str]:
    """The path parts before the first one with a wildcard (``a/b/**/*.png`` -> ``a, b``)."""
    plain = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        plain.append(part)
    return plain or ["."]


def _walk(folder: Path, exts: tuple[str, ...], skip: str | Path | None) -> list[Path]:
    """Image files below ``folder``, sorted by path; hidden folders, symlinked folders and ``skip`` left out."""
    skip_real = os.path.realpath(skip) if skip is not None else None
    files = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(top, d)) != skip_real]
        files += [Path(top) / n for n in names if Path(n).suffix.lower() in exts and (Path(top) / n).is_file()]
    return sorted(files, key=lambda f: f.relative_to(folder).parts)


def read_ahead(paths: Sequence[Path], channels: int, lookahead: int) -> Iterator[tuple[Path, np.ndarray | SeglabError]]:
    """Decode images in a background thread, at most ``lookahead`` ahead (bounded memory).

    Yields ``(path, image)`` in order; an unreadable file yields its :class:`SeglabError` instead of an
    image, so the caller reports it and goes on with the rest.
    """
    from seglab.data.io import read_image

    def load(path: Path) -> np.ndarray | SeglabError:
        try:
            return read_image(path, channels=channels)
        except SeglabError as e:
            return e

    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = []
        for path in paths:
            queue.append((path, pool.submit(load, path)))
            if len(queue) > lookahead:
                p, fut = queue.pop(0)
                yield p, fut.result()
        for p, fut in queue:
            yield p, fut.result()


def _check_array(a: np.ndarray) -> np.ndarray:
    a = a[..., None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"Expected a numpy image (H, W) or (H, W, C), but got shape {a.shape}.")
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"Expected a uint8 or float [0, 1] numpy image, but got dtype {a.dtype}; "
                        "convert with seglab.data.io.read_image or scale to uint8.")
    return a


def _check_tensor(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1] == 0 or t.shape[2] == 0:
        raise DataError(f"Expected an image tensor (C, H, W), but got shape {tuple(t.shape)}; "
                        "predict one image at a time.")
    return t.cpu()


def _channel_adapter(have: int, want: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if want is None or have == want:
        return lambda t: t
    if have == 1:
        return lambda t: t.expand(want, -1, -1)
    if want == 1 and have in (3, 4):
        luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # ITU-R BT.601, as Pillow's "L"
        return lambda t: (t[:3] * luma).sum(0, keepdim=True)
    if want == 3 and have == 4:
        return lambda t: t[:3]
    raise DataError(f"The image has {have} channels but the model expects {want}; "
                    "pass a gray (1), RGB (3) or RGBA (4) image.")
