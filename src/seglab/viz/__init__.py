"""Pictures of data and predictions: palettes, overlays, input|truth|prediction|error panels, curves, label
statistics, augmented training images.

Everything draws on a bare :class:`matplotlib.figure.Figure` (Agg), never through ``pyplot``: no
display is needed and no global figure state leaks between calls or threads. Every file is
written atomically through :func:`seglab.fileio.atomic_path`. Colours live in :mod:`seglab.viz.colors`,
legends in :mod:`seglab.viz.legend`, prediction figures in :mod:`seglab.viz.panels` (panoptic:
:mod:`seglab.viz.panoptic`), training plots in
:mod:`seglab.viz.plots`, the label statistics in :mod:`seglab.viz.stats` and the augmented batch in
:mod:`seglab.viz.batches`. docs/pictures.md shows each picture and says how to read it.
"""

from __future__ import annotations

from seglab.viz.batches import augmented_batch, save_data_pictures, save_train_batch
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
from seglab.viz.legend import add_legend, class_entries, legend_layout
from seglab.viz.panels import (
    instance_ids,
    panels_figure,
    save_instance_overlay,
    save_instance_panels,
    save_panels,
)
from seglab.viz.panoptic import colorize_panoptic, overlay_panoptic, save_panoptic_panels, segment_colors
from seglab.viz.plots import best_epoch, curves_figure, plot_confusion, plot_curves, plot_per_class
from seglab.viz.stats import LabelStats, connected_regions, dataset_stats, plot_label_stats

__all__ = ["colorize_panoptic", "overlay_panoptic", "save_panoptic_panels", "segment_colors",
           "ERROR_COLORS", "IGNORE_COLOR", "OUT_OF_RANGE_COLOR", "ArrayLike", "LabelStats", "add_legend",
           "augmented_batch", "best_epoch", "class_entries", "colorize", "connected_regions", "curves_figure",
           "dataset_stats", "default_palette", "error_map", "instance_ids", "legend_layout", "load_palette",
           "overlay", "panels_figure", "plot_confusion", "plot_curves", "plot_label_stats", "plot_per_class",
           "save_data_pictures", "save_instance_overlay", "save_instance_panels", "save_panels",
           "save_train_batch", "to_uint8_image"]
