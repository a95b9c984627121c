"""Shared pieces of the SAM tests: a tiny random SAM (no weights), its weight file, small images.

Every fixture that needs ``segment_anything`` skips when the extra is not installed; ``test_no_extra.py``
runs without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

H, W = 40, 48  # image size of the tests (not square: coordinates must be scaled per axis)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_sam() -> torch.nn.Module:
    """A seeded tiny SAM (2 ViT blocks of width 32, 64 px input) in eval mode; read only."""
    pytest.importorskip("segment_anything")
    from seglab.sam.tiny import build_tiny_sam

    torch.manual_seed(0)
    return build_tiny_sam()


@pytest.fixture(scope="session")
def tiny_file(tiny_sam: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``tiny_sam``'s weights saved as a SAM file, with the type ``tiny`` registered for the session."""
    from seglab.sam import register_sam_type, tiny_sam_type, unregister_sam_type

    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(tiny_sam.state_dict(), path)
    register_sam_type(tiny_sam_type())
    yield path
    unregister_sam_type("tiny")


def picture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A noisy image with a bright square and a dark disc (something for SAM to look at)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
    image[5:18, 6:20] = (230, 220, 40)
    yy, xx = np.mgrid[:h, :w]
    image[(yy - 28) ** 2 + (xx - 34) ** 2 < 49] = (20, 40, 160)
    return image


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Five PNG images ``im0.png`` .. ``im4.png`` of ``H`` x ``W`` in ``tmp_path/images``."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(picture(i)).save(folder / f"im{i}.png")
    return folder
