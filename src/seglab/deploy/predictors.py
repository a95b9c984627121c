"""One interface over a bundle (onnxruntime) and a run (torch) for ``seglab serve`` and ``seglab bench``.

A predictor takes a decoded image (``(H, W, C)`` uint8, C = its ``image_channels``) and returns the
prediction as the server sends it: a class map (semantic), detections with RLE masks (instance) or segments with
RLE masks (panoptic runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seglab.errors import ConfigError


@dataclass
class Predictor:
    """What the server needs: the model's description and a ``predict(image)`` that is safe across threads."""

    task: str
    model: str
    classes: list[str]
    in_channels: int
    input_size: list[int] | None
    backend: str
    palette: np.ndarray
    run: Any = field(repr=False, default=None)  # image -> class map (H, W) | detections dict

    @property
    def image_channels(self) -> int:
        """Channels to decode uploads with: 1 for gray models, else 3."""
        return 1 if self.in_channels == 1 else 3

    def predict(self, image: np.ndarray) -> Any:
        """The prediction of one decoded image."""
        return self.run(image)

    def info(self) -> dict[str, Any]:
        """``GET /info``: classes, input size, model, backend, seglab version."""
        from seglab import __version__

        return {"model": self.model, "task": self.task, "classes": self.classes, "in_channels": self.in_channels,
                "input_size": self.input_size, "backend": self.backend, "version": __version__}


def load_predictor(path: str | os.PathLike, *, threads: int | None = None, score_threshold: float = 0.5) -> Predictor:
    """A bundle (``.onnx``: onnxruntime, no torch) or a run / checkpoint (torch) as a :class:`Predictor`.

    ``score_threshold``: instance runs answer the detections scoring at least this.

    Raises:
        ModelError / CheckpointError: the file cannot be loaded.
        ConfigError: a panoptic bundle (serve its run: the torch-free runtime predicts semantic and instance
            bundles), a score threshold outside [0, 1].
    """
    from seglab.runtime import is_bundle

    if not 0.0 <= score_threshold <= 1.0:  # refused at start-up, not as a 500 on every request
        raise ConfigError(f"Expected --score-threshold in [0, 1], but got {score_threshold}.")
    if is_bundle(path):
        return _bundle_predictor(Path(path), threads, score_threshold)
    return _torch_predictor(Path(path), threads, score_threshold)


def _bundle_predictor(path: Path, threads: int | None, score_threshold: float) -> Predictor:
    from seglab.runtime import load_bundle, predict_image

    bundle = load_bundle(path, threads=threads)
    palette = bundle.palette if bundle.palette is not None else _gray()
    if bundle.task == "instance":
        from seglab.runtime.instance import detect, detector_spec

        detector_spec(bundle)  # an older fixed-size file is refused at start-up

        def run(image: np.ndarray) -> dict[str, Any]:
            return detections_json(bundle.classes, detect(bundle, image, score_threshold), image.shape)
    elif bundle.task == "semantic":
        def run(image: np.ndarray) -> np.ndarray:
            return predict_image(bundle, image)
    else:
        raise ConfigError(f"{path}: a {bundle.task} bundle; the torch-free runtime predicts semantic and instance "
                          "bundles. Serve the run instead (`seglab serve RUN`).")
    return Predictor(bundle.task, bundle.model, bundle.classes, bundle.in_channels,
                     bundle.meta.get("seglab.input_size"), "onnxruntime", palette, run)


def _torch_predictor(path: Path, threads: int | None, score_threshold: float) -> Predictor:
    import torch

    from seglab.checkpoint import load_checkpoint
    from seglab.export import input_size
    from seglab.inference import TileOptions, predict_tiled
    from seglab.inference.writers import class_palette

    if threads:
        torch.set_num_threads(int(threads))
    model, info = load_checkpoint(path)
    model.eval()
    if info.task == "semantic":
        def run(image: np.ndarray) -> np.ndarray:
            labels = predict_tiled(model, image, TileOptions(), mean=info.mean, std=info.std, resize=info.resize)
            return labels.numpy()  # type: ignore[union-attr]
    elif info.task == "instance":
        def run(image: np.ndarray) -> dict[str, Any]:
            return _detections(model, info, image, score_threshold)
    else:
        def run(image: np.ndarray) -> dict[str, Any]:
            return _segments(model, info, image)
    return Predictor(info.task, info.model, list(info.classes), info.in_channels, input_size(info), "torch",
                     class_palette(info), run)


def _detections(model, info, image: np.ndarray, threshold: float) -> dict[str, Any]:
    """A run's detections of one image as the server answers them."""
    from seglab.inference import predict_instances

    [(_, _, inst)] = list(predict_instances(model, [(0, image)], score_threshold=threshold, batch_size=1,
                                           resize=info.resize))
    return detections_json(info.classes, {k: v.numpy() for k, v in inst.items()}, image.shape)


def _segments(model, info, image: np.ndarray) -> dict[str, Any]:
    """Panoptic JSON: class, thing or stuff, score (1 for stuff) and COCO RLE mask of each segment (disjoint masks,
    as ``seglab predict RUN`` paints them into its segment-id PNG)."""
    from seglab.inference.panoptic import predict_panoptic
    from seglab.runtime.instance import encode_rle

    [(_, _, out)] = list(predict_panoptic(model, [(0, image)], batch_size=1, resize=info.resize))
    ids = out["ids"].numpy()
    segments = [s for s in out["segments"] if (ids == int(s["id"])).any()]
    return {"height": int(ids.shape[0]), "width": int(ids.shape[1]),
            "classes": [info.classes[int(s["category"])] for s in segments],
            "isthing": [bool(s.get("isthing", False)) for s in segments],
            "scores": [round(float(s.get("score", 1.0)), 4) for s in segments],
            "masks": [encode_rle(ids == int(s["id"])) for s in segments]}


def detections_json(classes: list[str], inst: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, Any]:
    """Instance JSON: class, score, box and COCO RLE mask (counts as text) of each detection, best first."""
    from seglab.runtime.instance import encode_rle

    labels = np.asarray(inst["labels"]).tolist()
    return {"height": int(shape[0]), "width": int(shape[1]), "classes": [classes[c] for c in labels],
            "scores": [round(float(s), 4) for s in inst["scores"]],
            "boxes": [[round(float(v), 2) for v in b] for b in inst["boxes"]],
            "masks": [encode_rle(m) for m in inst["masks"]]}


def _gray() -> np.ndarray:
    return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
