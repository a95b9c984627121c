"""Class legends that fit any class count: a band under the pictures with as many columns as the width holds.

The band's height is worked out before anything is drawn (text widths from the font, not guessed), so a
figure grows by exactly the rows its legend needs: 2 classes take one line, ADE20K's 150 a block of small
print, and no name falls off the edge of the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.legend import Legend
from matplotlib.patches import Patch
from matplotlib.textpath import TextToPath

from seglab.viz.colors import IGNORE_COLOR, OUT_OF_RANGE_COLOR

# Legend spacing in font sizes (matplotlib's own units), used for the layout and the drawing alike.
SPACING = {"handlelength": 1.4, "handletextpad": 0.5, "columnspacing": 1.2, "labelspacing": 0.5,
           "borderpad": 0.4}
MARGIN_IN = 0.1  # kept free on each side of the band
MIN_HEIGHT_IN = 0.6  # a one-line legend keeps some air under the pictures


@dataclass(frozen=True)
class LegendLayout:
    """How a legend is drawn: ``ncol`` columns, ``fontsize`` points, ``height`` inches of band."""

    ncol: int
    fontsize: float
    height: float


def class_entries(class_names: Sequence[str], palette: np.ndarray,
                  ignore_index: int | None = None) -> list[tuple[str, tuple[float, float, float]]]:
    """``(label, rgb in [0, 1])`` per class, plus ``"ignore (<index>)"`` in the ignore colour when given."""
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    entries = [(str(name), tuple(float(c) / 255.0 for c in (pal[i] if i < len(pal) else OUT_OF_RANGE_COLOR)))
               for i, name in enumerate(class_names)]
    if ignore_index is not None:
        entries.append((f"ignore ({ignore_index})", tuple(c / 255.0 for c in IGNORE_COLOR)))
    return entries  # type: ignore[return-value]


def legend_layout(labels: Sequence[str], width: float) -> LegendLayout:
    """Columns, font size and band height (inches) of a legend of ``labels`` across ``width`` inches."""
    n = max(1, len(labels))
    size = 8.0 if n <= 40 else 7.0 if n <= 100 else 6.0
    widest = max((TextToPath().get_text_width_height_descent(s, FontProperties(size=size), ismath=False)[0]
                  for s in labels), default=0.0)  # points
    extra = SPACING["handlelength"] + SPACING["handletextpad"] + SPACING["columnspacing"]
    usable = (width - 2 * MARGIN_IN) * 72.0 - 2 * SPACING["borderpad"] * size  # points
    column = widest + extra * size
    if column > usable:  # one name wider than the figure: smaller print rather than a clipped name
        scale = max(3.0 / size, usable / column)
        size, column = size * scale, column * scale
    rows = math.ceil(n / max(1, min(n, int(usable // column))))
    ncol = math.ceil(n / rows)  # full rows: 12 names in two rows of 6, not one of 11 and a straggler
    line = size * (1.25 + SPACING["labelspacing"])  # text height with descent, then the gap to the next row
    height = (rows * line + 2 * SPACING["borderpad"] * size) / 72.0 + 2 * MARGIN_IN
    return LegendLayout(ncol, size, max(MIN_HEIGHT_IN, height))


def add_legend(fig: Figure, entries: Sequence[tuple[str, tuple[float, float, float]]],
               layout: LegendLayout) -> Legend:
    """Draw ``entries`` in the bottom ``layout.height`` inches of ``fig`` (reserve them first)."""
    handles = [Patch(facecolor=rgb, edgecolor="grey", label=name) for name, rgb in entries]
    bottom = MARGIN_IN / fig.get_figheight()
    return fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, bottom), ncol=layout.ncol,
                      fontsize=layout.fontsize, frameon=False, borderaxespad=0.0, **SPACING)
