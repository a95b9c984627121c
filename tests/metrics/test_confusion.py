"""SegMetrics against hand-checked matrices and torchmetrics (an independent implementation).

torchmetrics differs from seglab only where a value is undefined, so the randomized comparisons below look
only where both are defined:
- a class absent from truth *and* prediction: torchmetrics reports IoU/F1 0 (``zero_division``) and leaves
  it out of the macro mean; seglab reports NaN and leaves it out of the mean -> same macro mean;
- a class predicted but absent from truth: torchmetrics counts accuracy (recall) 0 in the macro mean,
  seglab NaN (recall of nothing is undefined) -> macro accuracy compared only when every class is in truth;
- ``torchmetrics.segmentation.MeanIoU`` averages over all (image, class) pairs, seglab's per-image variant
  averages each image's mIoU -> compared only when every class is in every image.
"""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)
from torchmetrics.segmentation import MeanIoU

from seglab.errors import ConfigError, DataError, SeglabError
from seglab.metrics import SegMetrics, confusion_matrix, metrics_from_confusion

IGN = 255


def test_hand_checked_small_case() -> None:
    # truth        pred
    # 0 0 1        0 1 1
    # 2 2 255      2 0 1      (the 255 pixel is ignored whatever its prediction)
    target = torch.tensor([[[0, 0, 1], [2, 2, IGN]]])
    pred = torch.tensor([[[0, 1, 1], [2, 0, 1]]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    m = SegMetrics(3)
    m.update(pred, target)
    r = m.compute()
    # IoU: class 0 tp 1 / (2 + 2 - 1) = 1/3; class 1 tp 1 / (1 + 2 - 1) = 1/2; class 2 tp 1 / (2 + 1 - 1) = 1/2
    assert r["per_class_iou"] == pytest.approx([1 / 3, 1 / 2, 1 / 2])
    assert r["mean_iou"] == pytest.approx(4 / 9)
    assert r["pixel_accuracy"] == pytest.approx(3 / 5)
    assert r["per_class_accuracy"] == pytest.approx([1 / 2, 1, 1 / 2])
    assert r["mean_accuracy"] == pytest.approx(2 / 3)
    # Dice 2 tp / (|truth| + |pred|): 2/4, 2/3, 2/3
    assert r["per_class_dice"] == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    assert r["per_class_dice"] == pytest.approx([2 * i / (1 + i) for i in r["per_class_iou"]])
    assert r["mean_dice"] == pytest.approx((1 / 2 + 4 / 3) / 3)
    # frequency-weighted IoU: truth frequencies 2/5, 1/5, 2/5
    assert r["fw_iou"] == pytest.approx(2 / 5 * 1 / 3 + 1 / 5 * 1 / 2 + 2 / 5 * 1 / 2)
    assert r["confusion_matrix"].dtype == torch.int64
    assert torch.equal(r["confusion_matrix"], cm)
    assert all(type(r[k]) is float for k in ("mean_iou", "pixel_accuracy", "fw_iou", "mean_dice"))


def _random_batches(seed: int, num_classes: int, batches: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        n, h, w = (int(v) for v in torch.randint(1, 5, (3,), generator=g) * torch.tensor([1, 7, 5]))
        target = torch.randint(0, num_classes, (n, h, w), generator=g)
        target[torch.rand(n, h, w, generator=g) < 0.15] = IGN
        pred = torch.where(torch.rand(n, h, w, generator=g) < 0.6, target,
                           torch.randint(0, num_classes, (n, h, w), generator=g))
        out.append((pred.clamp(max=num_classes - 1), target))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_against_torchmetrics(seed: int) -> None:
    num_classes = 2 + seed
    batches = _random_batches(seed, num_classes)
    ours = SegMetrics(num_classes, ignore_index=IGN)
    refs = {
        "cm": MulticlassConfusionMatrix(num_classes, ignore_index=IGN),
        "iou": MulticlassJaccardIndex(num_classes, average=None, ignore_index=IGN),
        "miou": MulticlassJaccardIndex(num_classes, average="macro", ignore_index=IGN),
        "acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=IGN),
        "macc": MulticlassAccuracy(num_classes, average="macro", ignore_index=IGN),
        "f1": MulticlassF1Score(num_classes, average=None, ignore_index=IGN),
    }
    for pred, target in batches:
        ours.update(pred, target)
        for ref in refs.values():
            ref.update(pred, target)
    r = ours.compute()
    ref = {k: v.compute() for k, v in refs.items()}
    assert torch.equal(r["confusion_matrix"], ref["cm"].long())
    assert r["per_class_iou"] == pytest.approx(ref["iou"].tolist(), abs=1e-6)
    assert r["mean_iou"] == pytest.approx(ref["miou"].item(), abs=1e-6)
    assert r["pixel_accuracy"] == pytest.approx(ref["acc"].item(), abs=1e-6)
    assert r["mean_accuracy"] == pytest.approx(ref["macc"].item(), abs=1e-6)
    assert r["per_class_dice"] == pytest.approx(ref["f1"].tolist(), abs=1e-6)


def test_absent_class_against_torchmetrics() -> None:
    # Class 3 never appears; class 2 is predicted but never true.
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 2, (2, 9, 11), generator=g)
    target[0, 0] = IGN
    pred = torch.randint(0, 3, (2, 9, 11), generator=g)
    m = SegMetrics(4)
    m.update(pred, target)
    r = m.compute()
    ref_iou = MulticlassJaccardIndex(4, average=None, ignore_index=IGN)(pred, target)
    ref_miou = MulticlassJaccardIndex(4, average="macro", ignore_index=IGN)(pred, target)
    assert math.isnan(r["per_class_iou"][3]) and math.isnan(r["per_class_dice"][3])
    assert r["per_class_iou"][:3] == pytest.approx(ref_iou[:3].tolist(), abs=1e-6)
    assert r["per_class_iou"][2] == 0.0
    assert r["mean_iou"] == pytest.approx(ref_miou.item(), abs=1e-6)
    assert math.isnan(r["per_class_accuracy"][2])
    assert r["mean_accuracy"] == pytest.approx(sum(r["per_class_accuracy"][:2]) / 2)


def test_scores_equal_indices_and_narrow_dtypes() -> None:
    logits = torch.randn(2, 5, 6, 7)
    target = torch.randint(0, 5, (2, 6, 7))
    target[1, 2] = IGN
    from_scores = confusion_matrix(logits, target, 5)
    assert torch.equal(from_scores, confusion_matrix(logits.argmax(1), target, 5))
    assert torch.equal(from_scores, confusion_matrix(logits.argmax(1).to(torch.uint8), target.to(torch.uint8), 5))
    as_int32 = confusion_matrix(logits.argmax(1).int(), target.int(), 5)
    assert torch.equal(from_scores, as_int32)
    assert torch.equal(from_scores, MulticlassConfusionMatrix(5, ignore_index=IGN)(logits.argmax(1), target).long())


@pytest.mark.parametrize("ignore_index", [-1, 0, 3, 1000, 70000])
def test_other_ignore_values(ignore_index: int) -> None:
    target = torch.tensor([[[0, 1, 2, ignore_index]]])
    pred = torch.tensor([[[0, 1, 1, 2]]])
    cm = confusion_matrix(pred, target, 3, ignore_index=ignore_index)
    expected = torch.zeros(3, 3, dtype=torch.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist(), strict=True):
        if t != ignore_index:
            expected[t, p] += 1
    assert torch.equal(cm, expected)


def test_dataset_level_not_mean_of_batches_and_per_image() -> None:
    # Batch 1: one image, class 1 tiny and missed; batch 2: one image, class 1 large and found.
    t1 = torch.tensor([[[0, 0, 0, 1]]])
    p1 = torch.tensor([[[0, 0, 0, 0]]])
    t2 = torch.tensor([[[1, 1, 1, 0]]])
    p2 = torch.tensor([[[1, 1, 1, 0]]])
    m = SegMetrics(2, per_image=True)
    m.update(p1, t1)
    m.update(p2, t2)
    r = m.compute()
    # dataset-level: class 0 tp 4 / union 5, class 1 tp 3 / union 4
    assert r["per_class_iou"] == pytest.approx([4 / 5, 3 / 4])
    assert r["mean_iou"] == pytest.approx((4 / 5 + 3 / 4) / 2)
    # per image: image 1 -> (3/4 + 0) / 2, image 2 -> (1 + 1) / 2
    assert r["mean_iou_per_image"] == pytest.approx((3 / 8 + 1) / 2)
    both = SegMetrics(2)
    both.update(torch.cat([p1, p2]), torch.cat([t1, t2]))
    assert both.compute()["per_class_iou"] == pytest.approx(r["per_class_iou"])


def test_per_image_matches_torchmetrics_when_every_class_in_every_image() -> None:
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 3, (4, 12, 12), generator=g)
    target[:, 0, :3] = torch.tensor([0, 1, 2])
    pred = torch.where(torch.rand(4, 12, 12, generator=g) < 0.7, target, torch.randint(0, 3, (4, 12, 12)))
    m = SegMetrics(3, per_image=True)
    m.update(pred[:3], target[:3])
    m.update(pred[3:], target[3:])
    ref = MeanIoU(num_classes=3, input_format="index")
    ref.update(pred, target)
    assert m.compute()["mean_iou_per_image"] == pytest.approx(ref.compute().item(), abs=1e-6)


def test_empty_all_ignore_and_single_class() -> None:
    m = SegMetrics(3, per_image=True)
    m.update(torch.zeros(2, 4, 4, dtype=torch.long), torch.full((2, 4, 4), IGN))
    r = m.compute()
    assert r["confusion_matrix"].sum() == 0
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "mean_dice", "fw_iou", "mean_iou_per_image"):
        assert math.isnan(r[key]), key
    assert all(math.isnan(v) for v in r["per_class_iou"])
    fresh = SegMetrics(2).compute()
    assert math.isnan(fresh["mean_iou"]) and fresh["confusion_matrix"].shape == (2, 2)
    single = SegMetrics(1)
    single.update(torch.zeros(1, 3, 3, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long))
    s = single.compute()
    assert s["mean_iou"] == 1.0 and s["pixel_accuracy"] == 1.0 and s["mean_dice"] == 1.0
    only_one_present = SegMetrics(4)
    only_one_present.update(torch.full((1, 2, 2), 2), torch.full((1, 2, 2), 2))
    o = only_one_present.compute()
    assert o["mean_iou"] == 1.0 and o["per_class_iou"][2] == 1.0
    assert sum(math.isnan(v) for v in o["per_class_iou"]) == 3


def test_reset_and_varying_batch_shapes() -> None:
    m = SegMetrics(3)
    m.update(torch.ones(2, 4, 4, dtype=torch.long), torch.ones(2, 4, 4, dtype=torch.long))
    m.reset()
    for n, h in ((1, 3), (3, 5), (1, 3)):
        m.update(torch.zeros(n, h, h, dtype=torch.long), torch.full((n, h, h), 2))
    assert m.compute()["confusion_matrix"].tolist() == [[0, 0, 0], [0, 0, 0], [9 + 75 + 9, 0, 0]]


def test_metrics_from_confusion_pure() -> None:
    r = metrics_from_confusion(torch.tensor([[3, 1], [0, 0]]))
    assert r["per_class_iou"][0] == pytest.approx(3 / 4)
    assert r["per_class_iou"][1] == 0.0  # predicted once, never true: IoU 0, not NaN
    assert math.isnan(r["per_class_accuracy"][1])


def test_errors_name_the_problem() -> None:
    target = torch.tensor([[[0, 1], [7, IGN]]])
    with pytest.raises(DataError, match=r"target holds values 7 outside \[0, 3\)"):
        SegMetrics(3).update(torch.zeros(1, 2, 2, dtype=torch.long), target)
    with pytest.raises(DataError, match=r"target holds values 3, 300 outside"):
        confusion_matrix(torch.zeros(1, 1, 3, dtype=torch.long), torch.tensor([[[300, 3, IGN]]]), 3)
    with pytest.raises(DataError, match=r"target holds values -2 outside"):
        confusion_matrix(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, -2], [1, 1]]]), 3)
    with pytest.raises(DataError, match=r"target holds values 3"):
        SegMetrics(3, per_image=True).update(torch.zeros(2, 1, 2, dtype=torch.long),
                                             torch.tensor([[[0, 3]], [[1, 1]]]))
    with pytest.raises(DataError, match=r"pred holds class indices 5 outside \[0, 3\)"):
        confusion_matrix(torch.tensor([[[0, 5]]]), torch.tensor([[[0, 1]]]), 3)
    with pytest.raises(DataError, match=r"pred \(1, 2, 3\) and target \(1, 2, 2\)"):
        confusion_matrix(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), 3)
    with pytest.raises(DataError, match=r"scores \(1, 4, 2, 2\)"):
        confusion_matrix(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), 3)
    with pytest.raises(DataError, match="integer class indices"):
        confusion_matrix(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), 3)
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        SegMetrics(0)
    assert issubclass(DataError, SeglabError)


def test_reduce_without_distributed_is_noop() -> None:
    m = SegMetrics(2)
    m.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1]]]))
    m.reduce()
    assert m.compute()["confusion_matrix"].tolist() == [[1, 0], [0, 1]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    pred, target = _random_batches(7, 6, batches=1)[0]
    cpu = SegMetrics(6, per_image=True)
    cpu.update(pred, target)
    gpu = SegMetrics(6, per_image=True, device="cuda")
    gpu.update(pred, target)
    on_device = SegMetrics(6)
    on_device.update(pred.cuda(), target.cuda())
    assert on_device._counts.device.type == "cuda"
    r_cpu, r_gpu = cpu.compute(), gpu.compute()
    assert torch.equal(r_cpu["confusion_matrix"], r_gpu["confusion_matrix"])
    assert torch.equal(r_cpu["confusion_matrix"], on_device.compute()["confusion_matrix"])
    assert r_cpu["mean_iou_per_image"] == pytest.approx(r_gpu["mean_iou_per_image"], abs=1e-12)
    with pytest.raises(DataError, match="target holds values 9"):
        on_device.update(pred.cuda(), torch.full_like(target, 9).cuda())
