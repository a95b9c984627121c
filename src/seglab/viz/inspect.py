"""The class-activation picture of ``seglab inspect``: the image, then one heat map per class over it."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from seglab.viz.colors import ArrayLike, to_uint8_image
from seglab.viz.panels import save_figure


def save_cams(path: str | os.PathLike, image: ArrayLike, cams: np.ndarray, class_names: Sequence[str],
              layer: str) -> Path:
    """``image`` and a Grad-CAM ``(K, H, W)`` map in [0, 1] per class drawn over it (jet, half opaque)."""
    picture = to_uint8_image(image)
    n = 1 + len(cams)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3 * cols, 3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    axes[0].imshow(picture)
    axes[0].set_title("image", fontsize=9)
    for ax, cam, name in zip(axes[1:], cams, class_names, strict=False):
        ax.imshow(picture)
        ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
        ax.set_title(f"CAM: {name}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"Grad-CAM at layer {layer}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
