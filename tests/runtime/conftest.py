"""A bundle exported from the shared tiny U-Net run (``semantic_run``), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundle_path(semantic_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.onnx`` of ``semantic_run``'s checkpoint, written by ``export_checkpoint`` (what the CLI calls)."""
    pytest.importorskip("onnxruntime")
    from seglab.checkpoint import load_checkpoint
    from seglab.export import export_checkpoint

    model, info = load_checkpoint(semantic_run["ckpt"])
    out = tmp_path_factory.mktemp("bundle") / "model.onnx"
    export_checkpoint(model, info, out)
    return out
