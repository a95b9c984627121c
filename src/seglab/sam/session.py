"""Prompted masks: one image embedding, many prompts (points, boxes, a previous mask).

SAM's cost is the image encoder; the prompt decoder is cheap. A :class:`SamSession` encodes an image once
(:meth:`SamSession.set_image`) and answers every prompt on it from that embedding, so clicking through the
objects of an image, or refining every detection of a model, pays for the encoder once per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seglab.errors import ConfigError, DataError

BOX_BATCH = 64  # box prompts decoded per forward pass


@dataclass
class PromptResult:
    """SAM's answer to one prompt.

    Attributes:
        masks: ``(K, H, W)`` bool at the image's size (K = 3 with multimask output, else 1).
        scores: ``(K,)`` SAM's predicted IoU of each mask (its own estimate of quality).
        logits: ``(K, h, w)`` low-resolution logits; pass one back as ``mask_logits`` to refine it.
    """

    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray

    @property
    def best(self) -> int:
        """Index of the mask with the highest predicted IoU."""
        return int(np.argmax(self.scores))


class SamSession:
    """Prompted prediction on one image at a time with a SAM model (``seglab.sam.load_sam``).

    Example::

        session = SamSession(load_sam("sam_vit_b_01ec64.pth", "vit_b"))
        session.set_image(image)                      # (H, W, 3) uint8 RGB: the one encoder pass
        first = session.predict(points=[(120, 80)], labels=[1])
        better = session.predict(points=[(120, 80), (60, 40)], labels=[1, 0],
                                 mask_logits=first.logits[first.best], multimask=False)
    """

    def __init__(self, model: nn.Module) -> None:
        """Wrap ``model`` (upstream's ``Sam``) in upstream's predictor."""
        from seglab.sam.model import require_segment_anything

        self.predictor = require_segment_anything().SamPredictor(model)
        self.model = model
        self.size: tuple[int, int] | None = None
        self.embeddings = 0  # encoder passes so far (one per image)

    def set_image(self, image: np.ndarray) -> None:
        """Encode ``image`` (``(H, W, 3)`` uint8 RGB; gray ``(H, W[, 1])`` is repeated to RGB) once."""
        image = rgb_uint8(image)
        with torch.inference_mode():
            self.predictor.set_image(image, image_format="RGB")
        self.size = image.shape[:2]
        self.embeddings += 1

    @property
    def mask_input_size(self) -> tuple[int, int]:
        """``(h, w)`` of the low-resolution logits SAM takes back as ``mask_logits``."""
        return tuple(self.model.prompt_encoder.mask_input_size)

    def predict(self, points: Sequence[Sequence[float]] | np.ndarray | None = None,
                labels: Sequence[int] | np.ndarray | None = None, box: Sequence[float] | np.ndarray | None = None,
                mask_logits: np.ndarray | None = None, multimask: bool = True) -> PromptResult:
        """Masks for one object from any mix of prompts, on the image of the last :meth:`set_image`.

        Args:
            points: ``(N, 2)`` pixel coordinates ``(x, y)``.
            labels: ``(N,)`` 1 = on the object, 0 = not on it (default all 1).
            box: ``(x1, y1, x2, y2)`` pixels, around the object.
            mask_logits: ``(h, w)`` or ``(1, h, w)`` logits of an earlier result (``PromptResult.logits[k]``).
            multimask: three candidate masks (a single click is ambiguous) instead of one.

        Raises:
            ConfigError: no image set, no prompt, or a prompt that does not fit the image.
        """
        h, w = self._image_size()
        pts, lab = check_points(points, labels, w, h)
        bx = None if box is None else check_box(box, w, h)
        mask = None if mask_logits is None else self._check_logits(mask_logits)
        if pts is None and bx is None and mask is None:
            raise ConfigError("SAM needs a prompt: points, a box or a previous mask (none was given).")
        with torch.inference_mode():
            masks, scores, logits = self.predictor.predict(point_coords=pts, point_labels=lab, box=bx,
                                                           mask_input=mask, multimask_output=multimask)
        return PromptResult(masks.astype(bool), scores.astype(np.float32), logits.astype(np.float32))

    def predict_boxes(self, boxes: np.ndarray | Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
        """One mask per box (boxes are unambiguous prompts), decoded in batches from the one embedding.

        Returns:
            ``(masks (N, H, W) bool, scores (N,) predicted IoU)``.
        """
        h, w = self._image_size()
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        for b in boxes:
            check_box(b, w, h)
        masks, scores = [np.zeros((0, h, w), bool)], [np.zeros(0, np.float32)]
        p = self.predictor
        for start in range(0, len(boxes), BOX_BATCH):
            part = torch.as_tensor(p.transform.apply_boxes(boxes[start:start + BOX_BATCH], (h, w)),
                                   dtype=torch.float32, device=p.device)
            with torch.inference_mode():
                m, s, _ = p.predict_torch(None, None, boxes=part, multimask_output=False)
            masks.append(m[:, 0].cpu().numpy())
            scores.append(s[:, 0].float().cpu().numpy())
        return np.concatenate(masks), np.concatenate(scores)

    def _image_size(self) -> tuple[int, int]:
        if self.size is None:
            raise ConfigError("SamSession: call set_image(image) before asking for masks.")
        return self.size

    def _check_logits(self, logits: np.ndarray) -> np.ndarray:
        a = np.asarray(logits, dtype=np.float32)
        a = a[None] if a.ndim == 2 else a
        want = self.mask_input_size
        if a.shape != (1, *want):
            raise ConfigError(f"mask_logits must be a previous result's logits of shape {want} (or (1, {want[0]}, "
                              f"{want[1]})); got shape {a.shape}.")
        return a


def rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``image`` as ``(H, W, 3)`` uint8 RGB (gray repeated; a float image in [0, 1] scaled)."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or 0 in a.shape[:2]:
        raise DataError(f"SAM needs an (H, W, 3) RGB image; got shape {a.shape}.")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"SAM needs a uint8 image (or float in [0, 1]); got dtype {a.dtype}.")
        a = (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    a = a[..., :3] if a.shape[2] == 4 else a
    return np.ascontiguousarray(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a)


def check_points(points: object, labels: object, width: int, height: int) -> tuple[np.ndarray | None,
                                                                                   np.ndarray | None]:
    """``(N, 2)`` float points inside the image and ``(N,)`` int labels in {0, 1} (None, None without points)."""
    if points is None or len(points) == 0:  # type: ignore[arg-type]
        if labels is not None and len(labels) > 0:  # type: ignore[arg-type]
            raise ConfigError("point labels were given without points.")
        return None, None
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise ConfigError(f"points must be (x, y) pairs of finite numbers; got shape {pts.shape}.")
    lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels).reshape(-1)
    if len(lab) != len(pts) or not np.isin(lab, (0, 1)).all():
        raise ConfigError(f"point labels must be one 1 (on the object) or 0 (not on it) per point; got "
                          f"{lab.tolist()} for {len(pts)} point(s).")
    outside = [(float(x), float(y)) for x, y in pts if not (0 <= x <= width and 0 <= y <= height)]
    if outside:
        raise ConfigError(f"point {outside[0]} is outside the {width}x{height} image (x in [0, {width}], "
                          f"y in [0, {height}]).")
    return pts, lab.astype(np.int64)


def check_box(box: object, width: int, height: int) -> np.ndarray:
    """A ``(4,)`` float box ``x1 < x2, y1 < y2`` overlapping the image (clipped to it)."""
    b = np.asarray(box, dtype=np.float32).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ConfigError(f"a box is 4 finite numbers (x1, y1, x2, y2); got {np.asarray(box).tolist()}.")
    x1, y1, x2, y2 = b.tolist()
    if not (x1 < x2 and y1 < y2):
        raise ConfigError(f"box {[x1, y1, x2, y2]} is empty or reversed; give x1 < x2 and y1 < y2 (pixels).")
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise ConfigError(f"box {[x1, y1, x2, y2]} lies outside the {width}x{height} image.")
    return np.clip(b, 0, [width, height, width, height]).astype(np.float32)
