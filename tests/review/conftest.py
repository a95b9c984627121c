"""Stand-in models with known flaws for the review tests, and one-image splits to compare with ``evaluate``.

The stand-ins answer from the ground truth (recognizing each image by its pixels), so the metrics they earn
are neither 0 nor 1 and a per-image number that came from the wrong image or the wrong code would show.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seglab.checkpoint import CheckpointInfo


def _pixels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu()


class InstanceOracle(nn.Module):
    """Per image, object j is found exactly (j % 3 == 0, score 0.9), shifted by 3 px (j % 3 == 1, score 0.6)
    or missed (j % 3 == 2); plus one false-positive square of class 1 (score 0.7)."""

    rpn = roi_heads = None

    def __init__(self, dataset) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.answers = []
        for i in range(len(dataset)):
            image, target = dataset[i]
            masks, labels, scores = [], [], []
            for j, (m, label) in enumerate(zip(target["masks"].bool(), target["labels"], strict=True)):
                if j % 3 == 2:
                    continue
                masks.append(torch.roll(m, 3, dims=1) if j % 3 == 1 else m)
                labels.append(int(label))
                scores.append(0.9 if j % 3 == 0 else 0.6)
            fp = torch.zeros(image.shape[-2:], dtype=torch.bool)
            fp[2:12, 2:12] = True
            masks, labels, scores = [*masks, fp], [*labels, 1], [*scores, 0.7]
            m = torch.stack(masks)
            boxes = torch.tensor([[float(torch.nonzero(k)[:, 1].min()), float(torch.nonzero(k)[:, 0].min()),
                                   float(torch.nonzero(k)[:, 1].max()) + 1, float(torch.nonzero(k)[:, 0].max()) + 1]
                                  for k in m])
            self.answers.append((_pixels(image), {"boxes": boxes, "labels": torch.tensor(labels),
                                                  "scores": torch.tensor(scores), "masks": m[:, None].float()}))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [next(a for p, a in self.answers if torch.equal(p, _pixels(x))) for x in images]


class PanopticOracle(nn.Module):
    """Per image, truth segment j is kept (j % 3 == 0), given the next class (j % 3 == 1) or left void
    (j % 3 == 2); kept thing segments are the detections (score 0.8)."""

    def __init__(self, split) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.answers = []
        k = len(split.classes)
        for i in range(len(split)):
            image, ids, segments = split.load(i)
            ids = ids.astype(np.int64).copy()
            out_segments, masks, labels = [], [], []
            for j, s in enumerate(segments):
                if j % 3 == 2:
                    ids[ids == s["id"]] = 0
                    continue
                c = int(s["category"]) if j % 3 == 0 else (int(s["category"]) + 1) % k
                thing = c in split.thing_classes
                out_segments.append({"id": int(s["id"]), "category": c, "isthing": thing, "score": 0.8})
                if thing:
                    masks.append(torch.from_numpy(ids == s["id"]))
                    labels.append(c)
            n = len(labels)
            boxes = torch.tensor([[float(torch.nonzero(m)[:, 1].min()), float(torch.nonzero(m)[:, 0].min()),
                                   float(torch.nonzero(m)[:, 1].max()) + 1, float(torch.nonzero(m)[:, 0].max()) + 1]
                                  for m in masks]).reshape(n, 4)
            inst = {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64), "scores": torch.full((n,), 0.8),
                    "masks": torch.stack(masks)[:, None].float() if n else torch.zeros((0, 1, *ids.shape))}
            pixels = torch.from_numpy(np.array(image, copy=True))
            self.answers.append((pixels, {"ids": torch.from_numpy(ids), "segments": out_segments, "instances": inst}))

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        return [next(a for p, a in self.answers if torch.equal(p, _pixels(x))) for x in images]


@pytest.fixture(scope="session")
def panoptic_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 3-image synthetic panoptic val split, its oracle and the info of a checkpoint of its classes."""
    from seglab.data.panoptic.dataset import open_panoptic_split
    from seglab.data.panoptic.synthetic import make_panoptic

    data = make_panoptic(tmp_path_factory.mktemp("pan") / "data", n_train=1, n_val=3, size=48, seed=2)
    split = open_panoptic_split(data, "val")
    info = CheckpointInfo(path="oracle.pt", task="panoptic", model="oracle", num_classes=len(split.classes),
                          options={"thing_classes": list(split.thing_classes)}, classes=list(split.classes),
                          cat_ids=list(split.cat_ids), mean=[0.0] * 3, std=[1.0] * 3)
    return {"data": data, "split": split, "model": PanopticOracle(split), "info": info}


def one_image_semantic(data: Path, stem: str, out: Path) -> Path:
    """A copy of ``data`` whose split ``one`` holds only image ``stem`` of ``val``."""
    shutil.copytree(data, out)
    for part in ("images", "labels"):
        (out / part / "one").mkdir(parents=True)
        src = next((out / part / "val").glob(f"{stem}.*"))
        shutil.copy(src, out / part / "one" / src.name)
    return out


def one_image_instance(data: Path, image_id: int, out: Path) -> Path:
    """A COCO dataset whose split ``one`` is image ``image_id`` of ``data``'s val (its own annotations)."""
    from seglab.data.instance.coco import open_instance_split
    from seglab.inference import split_ground_truth

    gt = split_ground_truth(open_instance_split(data, "val"))
    im = next(i for i in gt["images"] if int(i["id"]) == image_id)
    (out / "annotations").mkdir(parents=True)
    (out / "images" / "one").mkdir(parents=True)
    name = im.get("file_name") or sorted((data / "images" / "val").iterdir())[image_id - 1].name  # mask layout
    shutil.copy(data / "images" / "val" / name, out / "images" / "one" / name)
    one = {**gt, "images": [{**im, "file_name": name}],
           "annotations": [a for a in gt["annotations"] if int(a["image_id"]) == image_id]}
    (out / "annotations" / "instances_one.json").write_text(json.dumps(one))
    return out


def one_image_panoptic(data: Path, stem: str, out: Path) -> Path:
    """A copy of the simple-layout panoptic ``data`` whose split ``one`` holds only image ``stem``."""
    shutil.copytree(data, out)
    for part in ("images", "labels", "instances"):
        (out / part / "one").mkdir(parents=True)
        shutil.copy(out / part / "val" / f"{stem}.png", out / part / "one" / f"{stem}.png")
    return out


@pytest.fixture(scope="session")
def helpers():
    """The stand-ins and one-image split builders above (test modules cannot import a conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(InstanceOracle=InstanceOracle, one_image_semantic=one_image_semantic,
                           one_image_instance=one_image_instance, one_image_panoptic=one_image_panoptic)
