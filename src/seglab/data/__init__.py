"""Datasets, the dataset doctor, transforms, statistics, converters and synthetic data.

The names below load on first use: ``seglab.data.io`` or ``seglab.data.convert`` need no torch, and the
CLI's ``--help`` should not wait for it.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"Problem": "seglab.data.checks", "check_dataset": "seglab.data.checks",
         "render_problems": "seglab.data.checks", "SegmentationFolder": "seglab.data.folder",
         "PanopticDataset": "seglab.data.panoptic", "open_panoptic_split": "seglab.data.panoptic"}

__all__ = ["PanopticDataset", "Problem", "SegmentationFolder", "check_dataset", "open_panoptic_split",
           "render_problems"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seglab.data' has no attribute {name!r}")
