"""What both instance layouts share: categories -> contiguous labels, and detection targets built from masks.

:class:`~seglab.data.instance.coco.CocoInstances` and :class:`~seglab.data.instance.masks.InstanceMaskFolder` subclass
:class:`InstanceDataset`; it lives apart from both so neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors


def tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) masks -> (N, 4) float XYXY boxes on pixel edges (x2 = last column + 1), as COCO's bbox."""
    if masks.numel() == 0:
        return torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    m = masks.bool()
    cols, rows = m.any(1), m.any(2)
    ar_w = torch.arange(m.shape[2], device=m.device)
    ar_h = torch.arange(m.shape[1], device=m.device)
    x1 = torch.where(cols, ar_w, m.shape[2]).amin(1)
    x2 = torch.where(cols, ar_w, -1).amax(1) + 1
    y1 = torch.where(rows, ar_h, m.shape[1]).amin(1)
    y2 = torch.where(rows, ar_h, -1).amax(1) + 1
    return torch.stack([x1, y1, x2, y2], 1).float()


class InstanceDataset(Dataset):
    """Shared tail of both layouts: build tv_tensors, transform, re-derive boxes from masks, drop empties.

    Subclasses call :meth:`set_categories` once, then :meth:`make_sample` in ``__getitem__``.
    """

    classes: list[str]
    cat_ids: list[int]
    transforms: Callable | None

    def set_categories(self, names: dict[int, str]) -> None:
        """Category id -> name; label ``i`` (contiguous, 0 = background) is category ``cat_ids[i]``."""
        self.cat_ids = [0, *sorted(names)]
        self.classes = ["background", *(names[c] for c in self.cat_ids[1:])]
        self._label_of = {c: i for i, c in enumerate(self.cat_ids) if i > 0}

    @property
    def num_classes(self) -> int:
        """Number of model outputs, background included (what Mask R-CNN builders take)."""
        return len(self.classes)

    def make_sample(self, image: np.ndarray, masks: np.ndarray, cat_ids: Sequence[int],
                    image_id: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """HxWx3 uint8 image, (N, H, W) masks and N category ids -> ``(image, target)`` (see the subclasses)."""
        h, w = image.shape[:2]
        img = tv_tensors.Image(torch.tensor(image).permute(2, 0, 1).float().div_(255.0))
        m = torch.from_numpy(masks.reshape(-1, h, w).astype(np.uint8))
        target = {
            "boxes": tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self._label_of[c] for c in cat_ids], dtype=torch.int64),
            "masks": tv_tensors.Mask(m),
            "image_id": int(image_id),
        }
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        # Boxes are re-derived from the (transformed) masks: a rotated or cropped box is looser than the
        # object, and an instance cropped away entirely must not reach the loss as an empty target.
        m = target["masks"]
        keep = m.flatten(1).bool().any(1) if m.shape[0] else torch.zeros(0, dtype=torch.bool)
        m = tv_tensors.wrap(m[keep], like=m) if isinstance(m, tv_tensors.Mask) else tv_tensors.Mask(m[keep])
        canvas = tuple(m.shape[-2:])
        target["masks"] = m
        target["labels"] = target["labels"][keep]
        target["boxes"] = tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=canvas)
        target["area"] = m.flatten(1).sum(1).float()
        target["iscrowd"] = torch.zeros(int(keep.sum()), dtype=torch.int64)
        return torch.as_tensor(img).float(), target
