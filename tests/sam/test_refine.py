"""Refinement of model masks with SAM box prompts: the rules on hand-made maps (a stub SAM), then the real path.

The stub answers each box with a chosen mask, so what refinement does with SAM's answer is checked pixel by
pixel; the tiny SAM checks the plumbing (one embedding per image, the predict hook, before/after scores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seglab.errors import ConfigError
from seglab.sam.refine import RefineOptions, SamRefiner, refine_instances, refine_semantic, semantic_regions


class StubSession:
    """Answers box prompts with ``answer(box) -> mask``; counts images set."""

    def __init__(self, answer) -> None:
        self.answer, self.embeddings, self.boxes = answer, 0, []

    def set_image(self, image: np.ndarray) -> None:
        self.embeddings += 1

    def predict_boxes(self, boxes):
        self.boxes += [list(map(float, b)) for b in boxes]
        masks = np.stack([self.answer(b) for b in boxes]) if len(boxes) else np.zeros((0, 1, 1), bool)
        return masks, np.ones(len(boxes), np.float32)


def _map() -> np.ndarray:
    labels = np.zeros((12, 14), np.int64)
    labels[2:6, 2:6] = 1  # region A (class 1)
    labels[2:5, 9:12] = 1  # region B (class 1, another region)
    labels[7:11, 3:9] = 2  # region C (class 2)
    labels[0, 0] = 2  # a 1-pixel region of class 2
    return labels


def test_regions_boxes_and_min_area() -> None:
    found = semantic_regions(_map(), background=0, min_area=2)
    got = sorted(zip(found.classes, found.boxes, strict=True))
    assert got == [(1, [2.0, 2.0, 6.0, 6.0]), (1, [9.0, 2.0, 12.0, 5.0]), (2, [3.0, 7.0, 9.0, 11.0])]
    assert len(semantic_regions(_map(), background=0, min_area=1).region) == 4


def test_semantic_rules_by_hand() -> None:
    labels = _map()

    def answer(box):
        m = np.zeros_like(labels, bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        if (x1, y1) == (2, 2):  # A: SAM moves it one pixel right, into background and into nothing else
            m[2:6, 3:7] = True
        elif (x1, y1) == (9, 2):  # B: SAM finds something else (IoU 0): the model's region is kept
            m[8:12, 0:2] = True
        else:  # C: SAM grows it up two rows, into background (row 6) and into A (row 5)
            m[5:11, 3:9] = True
        return m

    stub = StubSession(answer)
    out, counts = refine_semantic(stub, np.zeros((12, 14, 3), np.uint8), labels, RefineOptions(min_area=2))
    want = labels.copy()
    want[2:6, 2] = 0  # A's left column, which SAM left out, becomes background
    want[2:6, 6] = 1  # A's new right column was background
    want[6, 3:9] = 2  # C takes the background row 6 ...
    want[5, 7:9] = 2  # ... and row 5 where it was background; A keeps its pixels there (cols 3-6, col 6 new)
    assert np.array_equal(out, want)
    assert (counts.refined, counts.kept) == (2, 1) and stub.embeddings == 1
    same, _ = refine_semantic(stub, np.zeros((12, 14, 3), np.uint8), np.zeros((12, 14), np.int64))
    assert not same.any() and stub.embeddings == 1  # no region: SAM is not run


def test_min_iou_zero_always_takes_sams_mask() -> None:
    labels = np.zeros((8, 8), np.int64)
    labels[2:4, 2:4] = 1
    far = np.zeros((8, 8), bool)
    far[6:8, 6:8] = True
    out, counts = refine_semantic(StubSession(lambda b: far), np.zeros((8, 8, 3), np.uint8), labels,
                                  RefineOptions(min_iou=0.0, min_area=1))
    assert np.array_equal(out, far.astype(np.int64)) and counts.refined == 1


def test_instances_keep_boxes_labels_scores() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 5:8, 5:8] = True
    inst = {"boxes": torch.tensor([[1.0, 1, 4, 4], [5, 5, 8, 8]]), "labels": torch.tensor([1, 2]),
            "scores": torch.tensor([0.9, 0.8]), "masks": masks, "mask_probs": masks.float() * 0.7}
    sharper = np.zeros((8, 8), bool)
    sharper[1:4, 1:5] = True  # IoU 9/12 with detection 0; 0 with detection 1

    out, counts = refine_instances(StubSession(lambda b: sharper), np.zeros((8, 8, 3), np.uint8), inst)
    assert torch.equal(out["masks"][0], torch.from_numpy(sharper)) and torch.equal(out["masks"][1], masks[1])
    assert torch.equal(out["mask_probs"][0], torch.from_numpy(sharper).float())
    assert torch.equal(out["mask_probs"][1], inst["mask_probs"][1])
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(out[key], inst[key])
    assert (counts.refined, counts.kept) == (1, 1)


def test_refiner_hook_keeps_the_result_form(monkeypatch) -> None:
    from seglab.sam import refine as refine_module

    labels = torch.zeros(8, 8, dtype=torch.long)
    labels[2:4, 2:4] = 1
    grown = np.zeros((8, 8), bool)
    grown[2:5, 2:4] = True
    monkeypatch.setattr(refine_module, "SamSession", StubSession)  # the stub stands in for SAM's session
    refiner = SamRefiner(StubSession(lambda b: grown), "semantic", RefineOptions(min_area=1))
    probs = torch.rand(2, 8, 8)
    new_labels, same_probs = refiner(np.zeros((8, 8, 3), np.uint8), (labels, probs))
    assert new_labels.dtype == labels.dtype and same_probs is probs
    assert torch.equal(new_labels, torch.from_numpy(grown).long()) and refiner.counts.refined == 1
    with pytest.raises(ConfigError, match="not 'panoptic'"):
        SamRefiner(StubSession(lambda b: grown), "panoptic")


class FixedLogits(nn.Module):
    """A semantic "model" predicting the same class map for any input (one conv so devices resolve)."""

    def __init__(self, labels: torch.Tensor, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.logits = nn.functional.one_hot(labels, k).permute(2, 0, 1).float()[None] * 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1)


def test_evaluate_refinement_semantic_before_and_after(tmp_path: Path, monkeypatch) -> None:
    """A jagged square refined to the true one: after = perfect; before = torchmetrics' IoU of the jagged map."""
    from PIL import Image
    from torchmetrics.classification import MulticlassJaccardIndex

    from seglab.checkpoint import CheckpointInfo
    from seglab.sam import evaluate_refinement
    from seglab.sam import refine as refine_module

    truth = np.zeros((24, 24), np.uint8)
    truth[6:18, 6:18] = 1
    for split in ("images", "labels"):
        (tmp_path / split / "val").mkdir(parents=True)
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(tmp_path / "images" / "val" / "a.png")
    Image.fromarray(truth).save(tmp_path / "labels" / "val" / "a.png")
    jagged = torch.from_numpy(truth).long()
    jagged[6, 6:18:2] = 0
    jagged[17:20, 10] = 1
    info = CheckpointInfo(path="fixed", task="semantic", model="fixed", num_classes=2, options={},
                          classes=["background", "square"], cat_ids=[0, 1])
    stub = StubSession(lambda box: truth.astype(bool))
    monkeypatch.setattr(refine_module, "SamSession", StubSession)  # isinstance check: the stub is a session
    result = evaluate_refinement(FixedLogits(jagged, 2), info, tmp_path, "val", stub)
    truth_t = torch.from_numpy(truth).long()
    reference = MulticlassJaccardIndex(num_classes=2, average="macro")(jagged[None], truth_t[None])
    assert result["before"]["mean_iou"] == pytest.approx(float(reference))
    assert result["after"]["mean_iou"] == 1.0 and result["after"]["boundary_iou"] == 1.0
    assert result["before"]["boundary_iou"] < 1.0 and result["delta"]["boundary_iou"] > 0
    assert (result["refined"], result["kept"], result["num_images"]) == (1, 0, 1)
    assert result["per_class_boundary_iou"]["after"] == [1.0, 1.0]


def test_evaluate_refinement_instance_with_tiny_sam(instance_run: dict, tiny_sam) -> None:
    """Before = seglab's own COCO evaluation of the same detections; min_iou 1 keeps every mask: after = before."""
    from seglab.checkpoint import load_checkpoint
    from seglab.inference import evaluate_checkpoint
    from seglab.sam import SamSession, evaluate_refinement

    model, info = load_checkpoint(instance_run["ckpt"])
    model.roi_heads.score_thresh = 0.0  # random weights: keep every detection, as the fixture's model does
    session = SamSession(tiny_sam)
    kept = evaluate_refinement(model, info, instance_run["data"], "val", session, score_threshold=0.0,
                               options=RefineOptions(min_iou=1.0))
    reference = evaluate_checkpoint(model, info, instance_run["data"], "val").metrics
    for key in ("mask_AP", "mask_AP50"):
        assert kept["before"][key] == pytest.approx(reference[key], nan_ok=True)
        assert kept["after"][key] == pytest.approx(kept["before"][key], nan_ok=True)
    assert kept["after"]["boundary_iou"] == pytest.approx(kept["before"]["boundary_iou"], nan_ok=True)
    assert kept["refined"] == 0 and kept["kept"] > 0 and session.embeddings == kept["num_images"] == 5
    taken = evaluate_refinement(model, info, instance_run["data"], "val", session, score_threshold=0.0,
                                options=RefineOptions(min_iou=0.0))
    assert (taken["refined"], taken["kept"]) == (kept["kept"], 0)
    assert set(taken["delta"]) == {"mask_AP", "mask_AP50", "mask_AP75", "boundary_iou", "boundary_f1"}


def test_auto_masks_take_the_class_of_the_model_that_sees_them() -> None:
    """``classify``: instance model: the best-matching detection's class (IoU >= 0.5) else dropped; semantic
    model: the majority class of the mask's pixels, background dropped."""
    from types import SimpleNamespace

    from seglab.sam.sources import classify

    det = torch.zeros(2, 6, 6, dtype=torch.bool)
    det[0, 0:3, 0:3] = True  # class 2 (contiguous label 2 -> class index 1)
    det[1, 3:6, 3:6] = True  # class 1
    inst = SimpleNamespace(info=SimpleNamespace(task="instance"),
                           detections=lambda image: {"masks": det, "labels": torch.tensor([2, 1])})
    masks = np.zeros((3, 6, 6), bool)
    masks[0, 0:3, 0:2] = True  # IoU 6/9 with detection 0
    masks[1, 3:6, 3:5] = True  # IoU 6/9 with detection 1
    masks[2, 0:2, 4:6] = True  # overlaps nothing
    assert classify(inst, masks, np.zeros((6, 6, 3), np.uint8)).tolist() == [1, 0, -1]
    labels = np.zeros((6, 6), np.int64)
    labels[0:3, 0:3] = 2
    labels[0:1, 0:2] = 1  # 2 pixels of class 1 inside mask 0's 6: class 2 wins
    sem = SimpleNamespace(info=SimpleNamespace(task="semantic", classes=["bg", "a", "b"]),
                          semantic_labels=lambda image: labels)
    assert classify(sem, masks, np.zeros((6, 6, 3), np.uint8)).tolist() == [1, -1, -1]
