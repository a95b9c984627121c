"""Reference models and plain-torch references for the inference tests (no seglab code in the references).

The checkpoints themselves (``semantic_run``, ``instance_run``) live in ``tests/conftest.py``: the CLI
tests use them too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as pycoco_mask
from torch import nn


@pytest.fixture
def unet() -> nn.Module:
    """A seeded 3-class, 2-level U-Net of width 8 in eval mode (random weights)."""
    from seglab.models import build_model

    torch.manual_seed(0)
    return build_model("unet", 3, in_channels=3, base_channels=8, depth=2).eval()


def _direct_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x[None])
    out = out["out"] if isinstance(out, dict) else out
    return out.softmax(1)[0]


@pytest.fixture(scope="session")
def direct_probs() -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """The reference ``(model, (C, H, W) x) -> (K, H, W)``: one plain forward pass and a softmax."""
    return _direct_probs


@pytest.fixture(scope="session")
def direct_labels(semantic_run: dict) -> Callable[[nn.Module, Path], torch.Tensor]:
    """Reference prediction of the ``semantic_run`` checkpoint with plain torch: read, scale, normalize,
    forward, argmax."""
    mean = torch.tensor(semantic_run["mean"]).view(3, 1, 1)
    std = torch.tensor(semantic_run["std"]).view(3, 1, 1)

    def direct(model: nn.Module, path: Path) -> torch.Tensor:
        x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        x = (x - mean) / std
        with torch.no_grad():
            return model(x[None]).argmax(1)[0]

    return direct


class Oracle(nn.Module):
    """A stand-in detector answering from the ground truth with known flaws (non-trivial, known AP).

    Per image, instance j of the COCO file is: j % 3 == 0 found exactly (score 0.9), j % 3 == 1 found
    shifted by 3 px (score 0.6), j % 3 == 2 missed; plus one false-positive square (score 0.7).
    """

    def __init__(self, data: Path) -> None:
        super().__init__()
        self.rpn = self.roi_heads = nn.Identity()  # what torchvision detectors have
        self.anchor = nn.Parameter(torch.zeros(1))
        coco = json.loads((data / "annotations" / "instances_val.json").read_text())
        self.cat_ids = sorted(c["id"] for c in coco["categories"])
        self.answers = []
        for im in coco["images"]:
            pixels = np.asarray(Image.open(data / "images" / "val" / im["file_name"]).convert("RGB"))
            anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
            self.answers.append((torch.from_numpy(pixels.copy()), self._answer(anns, im["height"], im["width"])))

    def _answer(self, anns: list[dict], h: int, w: int) -> dict[str, torch.Tensor]:
        masks, labels, scores = [], [], []
        for j, a in enumerate(anns):
            rle = pycoco_mask.frPyObjects(a["segmentation"], h, w) if isinstance(a["segmentation"], list) \
                else a["segmentation"]
            m = pycoco_mask.decode(pycoco_mask.merge(rle) if isinstance(rle, list) else rle).astype(bool)
            if j % 3 == 2:
                continue
            if j % 3 == 1:
                m = np.roll(m, 3, axis=1)
            masks.append(m)
            labels.append(self.cat_ids.index(a["category_id"]) + 1)
            scores.append(0.9 if j % 3 == 0 else 0.6)
        fp = np.zeros((h, w), bool)
        fp[2:12, 2:12] = True
        masks.append(fp)
        labels.append(1)
        scores.append(0.7)
        m = torch.from_numpy(np.stack(masks))
        boxes = []
        for k in m:
            ys, xs = torch.nonzero(k, as_tuple=True)
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
        boxes = torch.tensor(boxes)
        return {"boxes": boxes, "labels": torch.tensor(labels), "scores": torch.tensor(scores),
                "masks": m[:, None].float()}

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for x in images:
            pixels = (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu()
            out.append(next(a for p, a in self.answers if torch.equal(p, pixels)))
        return out


@pytest.fixture(scope="session")
def oracle(instance_run: dict) -> Oracle:
    """The :class:`Oracle` of ``instance_run``'s val split (read only)."""
    return Oracle(instance_run["data"])


class Blind(nn.Module):
    """A detector that finds nothing."""

    rpn = roi_heads = None

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                 "scores": torch.zeros(0), "masks": torch.zeros(0, 1, *x.shape[-2:])} for x in images]


@pytest.fixture
def blind() -> Blind:
    return Blind()
