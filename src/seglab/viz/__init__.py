"""Pictures of data and predictions: palettes, overlays, input|truth|prediction|error panels, curves.

Everything draws on a bare :class:`matplotlib.figure.Figure` (Agg), never through ``pyplot``: no
display is needed and no global figure state leaks between calls or threads. Every file is
written atomically through :func:`seglab.fileio.atomic_path`. Colours live in :mod:`seglab.viz.colors`,
prediction figures in :mod:`seglab.viz.panels`, training plots in :mod:`seglab.viz.plots`.
"""

from __future__ import annotations

from seglab.viz.colors import (
    ERROR_COLORS,
    IGNORE_COLOR,
    OUT_OF_RANGE_COLOR,
    ArrayLike,
    colorize,
    default_palette,
    error_map,
    load_palette,
    overlay,
    to_uint8_image,
)
from seglab.viz.panels import instance_ids, save_instance_overlay, save_instance_panels, save_panels
from seglab.viz.plots import plot_confusion, plot_curves

__all__ = ["ERROR_COLORS", "IGNORE_COLOR", "OUT_OF_RANGE_COLOR", "ArrayLike", "colorize", "default_palette",
           "error_map", "instance_ids", "load_palette", "overlay", "plot_confusion", "plot_curves",
           "save_instance_overlay", "save_instance_panels", "save_panels", "to_uint8_image"]
