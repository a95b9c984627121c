"""Datasets, the dataset doctors, transforms, statistics, converters and synthetic data.

Shared files sit at the top (io, layout, transforms, sampling, rle, file checks, problems, the preflight
cache); each task has a folder with the same file names (``semantic/``, ``instance/``, ``panoptic/``:
dataset, checks, convert, stats, ...). The names below load on first use: ``seglab.data.io`` or
``seglab.data.semantic.convert`` need no torch, and the CLI's ``--help`` should not wait for it.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"Problem": "seglab.data.problems", "check_dataset": "seglab.data.semantic.checks",
         "render_problems": "seglab.data.problems", "SegmentationFolder": "seglab.data.semantic.dataset",
         "PanopticDataset": "seglab.data.panoptic.dataset", "open_panoptic_split": "seglab.data.panoptic.dataset"}

__all__ = ["PanopticDataset", "Problem", "SegmentationFolder", "check_dataset", "open_panoptic_split",
           "render_problems"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seglab.data' has no attribute {name!r}")
