"""seglab: image segmentation toolkit and CLI on PyTorch."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from seglab.errors import SeglabError  # noqa: E402

# Heavy parts (torch models, timm) load on first use so `seglab --help` and data tools start fast.
_LAZY = {"build_model": "seglab.models.registry", "load_checkpoint": "seglab.checkpoint",
         "train": "seglab.engine.trainer", "SegMetrics": "seglab.metrics.confusion", "build_loss": "seglab.losses"}

__all__ = ["SeglabError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
