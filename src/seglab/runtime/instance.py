"""Instance prediction of a bundle in numpy: what ``seglab.inference.predict_instances`` does, without torch.

The exported Mask R-CNN graph starts after the detector's own resize (an ONNX ``Resize`` cannot repeat torch's
output size and sample grid for every image, see ``seglab.export.instance``), so the runtime does it here as
torchvision does: scale = min(min_size / short side, max_size / long side), each side floor(side * scale),
bilinear without antialiasing. The graph takes that image and the size to answer in, and returns boxes in,
and masks pasted at, that size. With the run's ``data.resize`` the image is first scaled to its long side (as
in training) and the detections are mapped back as ``seglab.inference.scaled`` maps them. Detections are then
kept and ordered as ``predict_instances`` keeps them; tests/runtime/test_instance_bundle.py holds the files
equal to ``seglab predict RUN``'s.
"""

from __future__ import annotations

import math

import numpy as np

from seglab.errors import ConfigError, ModelError
from seglab.runtime.semantic import bilinear, normalize, resize_planes, resized_size

DOCS = "docs/export.md"


def detector_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The ``(h, w)`` torchvision's detector transform resizes an image to at inference (float64 arithmetic,
    floor), so the graph sees exactly the pixels the PyTorch model sees."""
    scale = min(float(min_size) / min(height, width), float(max_size) / max(height, width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def detector_spec(bundle) -> dict:
    """The bundle's ``seglab.detector`` sizes; a file without them (an older seglab's fixed-size export) is refused
    with what to do."""
    spec = bundle.meta.get("seglab.detector")
    if not isinstance(spec, dict) or "min_size" not in spec or "max_size" not in spec:
        raise ModelError(f"{bundle.path}: an instance bundle without seglab.detector metadata (written by an "
                         f"older seglab, for one fixed image size); re-export it with `seglab export RUN`. See {DOCS}.")
    return spec


def detect(bundle, image: np.ndarray, score_threshold: float = 0.5, mask_threshold: float = 0.5) -> dict:
    """Detections of one image (``(H, W[, C])`` uint8) with an instance bundle, best first.

    Returns numpy arrays at the image's size: ``boxes`` (N, 4) XYXY, ``labels`` (N,) contiguous class indices,
    ``scores`` (N,), ``masks`` (N, H, W) bool (probability > ``mask_threshold``) and ``mask_probs`` (N, H, W),
    for the detections scoring at least ``score_threshold``.
    """
    for name, v in (("score_threshold", score_threshold), ("mask_threshold", mask_threshold)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"Expected `{name}` in [0, 1], but got {v}.")
    spec = detector_spec(bundle)
    x = normalize(image, 3, None, None)  # RGB in [0, 1]: the graph normalizes, as the detector does
    height, width = x.shape[-2:]
    seen = resized_size(height, width, bundle.resize)
    if seen != (height, width):
        x = resize_planes(x, seen)
    x = bilinear(x, detector_size(*seen, int(spec["min_size"]), int(spec["max_size"])))
    boxes, labels, scores, probs = bundle.session.run(None, {"image": np.ascontiguousarray(x, dtype=np.float32),
                                                             "size": np.asarray(seen, dtype=np.int64)})
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    probs = probs[keep, 0].astype(np.float32)  # kept ones only: full-size masks of every detection cost memory
    if seen != (height, width):  # seglab.inference.scaled.instances_to_size
        sy, sx = height / seen[0], width / seen[1]
        boxes = boxes * np.asarray([sx, sy, sx, sy], dtype=np.float32)
        probs = bilinear(probs, (height, width)) if len(probs) else np.zeros((0, height, width), np.float32)
    return {"boxes": boxes[keep].astype(np.float32), "labels": labels[keep].astype(np.int64),
            "scores": scores[keep].astype(np.float32), "masks": probs > mask_threshold, "mask_probs": probs}


def instance_ids(masks: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paint binary masks ``(N, H, W)`` into one id map (0 = background, 1..M = instances).

    Where masks overlap the higher-scoring instance wins (the first one without ``scores``); an instance left
    with no pixel is dropped, so the ids are exactly 1..M. Returns ``(ids (H, W) int64, kept)``, ``kept[k - 1]``
    the input index of id ``k``.
    """
    m = np.asarray(masks, dtype=bool)
    order = np.arange(len(m)) if scores is None else np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    owner = np.full(m.shape[1:], -1, np.int64)
    for k in order[::-1]:  # lowest score first: higher scores paint over it
        owner[m[k]] = k
    kept = np.array([k for k in order if (owner == k).any()], dtype=np.int64)
    ids = np.zeros(m.shape[1:], np.int64)
    for new, k in enumerate(kept, 1):
        ids[owner == k] = new
    return ids, kept


def encode_rle(mask: np.ndarray) -> dict:
    """Binary ``(H, W)`` mask -> COCO compressed RLE ``{"size": [h, w], "counts": str}`` (the string the COCO
    mask API writes: column-major runs starting with background, each run after the second stored as the
    difference to the run two before, in 5-bit groups offset by 48)."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).reshape(-1, order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    counts = ([0] if flat.size and flat[0] else []) + runs.tolist()
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(c + (0x20 if more else 0) + 48))
    return {"size": [int(h), int(w)], "counts": "".join(out)}


def to_coco(inst: dict, image_id: int, cat_ids: list[int]) -> list[dict]:
    """One image's :func:`detect` result as COCO results, as ``seglab.metrics.coco.predictions_to_coco``."""
    results = []
    for j in range(len(inst["scores"])):
        x0, y0, x1, y1 = (float(v) for v in inst["boxes"][j])
        results.append({"image_id": int(image_id), "category_id": int(cat_ids[int(inst["labels"][j])]),
                        "score": float(inst["scores"][j]), "bbox": [x0, y0, float(np.float32(x1) - np.float32(x0)),
                                                                   float(np.float32(y1) - np.float32(y0))],
                        "segmentation": encode_rle(inst["mask_probs"][j] > 0.5)})
    return results
