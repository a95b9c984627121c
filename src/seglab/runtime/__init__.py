"""Run an exported seglab bundle (``model.onnx``) with onnxruntime, numpy and Pillow only: no torch.

``seglab export RUN --format onnx`` writes everything prediction needs into the file's metadata (task,
channels, mean/std, tiling defaults, resize, class names, palette); :class:`Bundle` reads it back and
:func:`predict_bundle_files` is ``seglab predict model.onnx``. Nothing in this package imports torch, so
``pip install 'seglab[runtime]'`` is enough to deploy (tests/runtime/test_no_torch.py checks it).
"""

from __future__ import annotations

from seglab.runtime.bundle import Bundle, is_bundle, load_bundle
from seglab.runtime.files import predict_bundle_files
from seglab.runtime.semantic import RuntimeOptions, predict_image

__all__ = ["Bundle", "RuntimeOptions", "is_bundle", "load_bundle", "predict_bundle_files", "predict_image"]
