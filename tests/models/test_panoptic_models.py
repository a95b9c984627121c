"""Panoptic models: the merge heuristics on hand-built cases, Panoptic FPN (losses, the semantic target's
alignment with torchvision's transform, the eval contract, learning), the merged pair, registry options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglab.errors import ModelError
from seglab.models import build_model, count_parameters
from seglab.models.panoptic import MergedPanoptic, PanopticFPN, combine, semantic_targets
from seglab.models.registry import MODELS, is_instance_model, is_panoptic_model, takes_image_lists

pytestmark = pytest.mark.usefixtures("one_thread")

S = 64
K, THINGS = 5, [1, 3]  # classes 0, 2, 4 are stuff; head slots: 0 -> 0, 2 -> 1, 4 -> 2, things -> 3
TINY = {"min_size": S, "max_size": S, "fpn_channels": 16, "box_batch_size_per_image": 16, "mask_head_layers": 1,
        "semantic_channels": 8}
LOSS_KEYS = {"loss_box_reg", "loss_classifier", "loss_mask", "loss_objectness", "loss_rpn_box_reg", "loss_semantic"}


def _instances(masks: list[torch.Tensor], labels: list[int], scores: list[float],
               size: tuple[int, int] = (4, 6)) -> dict[str, torch.Tensor]:
    m = torch.stack(masks).float()[:, None] if masks else torch.zeros(0, 1, *size)
    return {"boxes": torch.zeros(len(labels), 4), "labels": torch.tensor(labels, dtype=torch.long),
            "scores": torch.tensor(scores), "masks": m}


def _box(h: int, w: int, rows: slice, cols: slice) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[rows, cols] = True
    return m


# --- combine -------------------------------------------------------------------------------------------------

def test_higher_score_pastes_first_and_overlap_fraction_decides() -> None:
    sem = torch.zeros(4, 6, dtype=torch.long)
    a = _box(4, 6, slice(0, 4), slice(0, 3))  # 12 px, listed first but scored lower
    b = _box(4, 6, slice(0, 4), slice(2, 5))  # 12 px, overlaps a on column 2 (4 px)
    ids, segs = combine(sem, _instances([a, b], [1, 3], [0.6, 0.9]), THINGS, stuff_area=1)
    expected = torch.tensor([[2, 2, 1, 1, 1, 3]] * 4)  # b (id 1) whole; a (id 2) loses 4/12 <= 0.5; stuff id 3
    assert torch.equal(ids, expected)
    assert segs == [{"id": 1, "category": 3, "iscrowd": 0, "isthing": True, "score": pytest.approx(0.9)},
                    {"id": 2, "category": 1, "iscrowd": 0, "isthing": True, "score": pytest.approx(0.6)},
                    {"id": 3, "category": 0, "iscrowd": 0, "isthing": False, "score": 1.0}]


def test_overlap_above_threshold_drops_the_instance() -> None:
    sem = torch.full((4, 6), 2, dtype=torch.long)
    big = _box(4, 6, slice(0, 4), slice(0, 4))  # 16 px
    half = _box(4, 6, slice(0, 4), slice(2, 6))  # 16 px, 8 taken by big: 0.5 is not > 0.5, kept
    most = _box(4, 6, slice(0, 4), slice(1, 6))  # 20 px, 12 taken by big: 0.6 > 0.5, dropped
    ids, segs = combine(sem, _instances([big, half], [1, 1], [0.9, 0.8]), THINGS, stuff_area=1)
    assert [s["id"] for s in segs if s["isthing"]] == [1, 2] and int((ids == 2).sum()) == 8
    ids, segs = combine(sem, _instances([big, most], [1, 1], [0.9, 0.8]), THINGS, stuff_area=1)
    assert [s["category"] for s in segs] == [1, 2] and int((ids == 1).sum()) == 16  # most dropped; stuff id 2
    ids, segs = combine(sem, _instances([big, most], [1, 1], [0.9, 0.8]), THINGS, overlap_threshold=0.7,
                        stuff_area=1)
    assert int((ids == 2).sum()) == 8 and segs[1]["isthing"]  # with 0.7 it keeps its 8 free pixels


def test_score_threshold_and_mask_threshold() -> None:
    sem = torch.zeros(4, 6, dtype=torch.long)
    a = _box(4, 6, slice(0, 2), slice(0, 2))
    b = _box(4, 6, slice(2, 4), slice(0, 2))
    ids, segs = combine(sem, _instances([a, b], [1, 3], [0.5, 0.49]), THINGS, stuff_area=1)
    assert [s["category"] for s in segs] == [1, 0]  # 0.5 is "at least the threshold"; 0.49 is not
    probs = torch.full((1, 1, 4, 6), 0.5)
    probs[0, 0, 0, 0] = 0.51
    ids, _ = combine(sem, {"labels": torch.tensor([3]), "scores": torch.tensor([1.0]), "masks": probs}, THINGS,
                     stuff_area=1)
    assert int((ids == 1).sum()) == 1  # a pixel is in the mask above 0.5, not at it


def test_stuff_area_and_void() -> None:
    sem = torch.zeros(16, 16, dtype=torch.long)  # stuff 0 keeps rows 12..15 less 2 px: 62 px
    sem[:8, :] = 2  # 128 px of stuff 2
    sem[8, :] = 4  # 16 px of stuff 4
    sem[9:11, :] = 1  # 32 px of thing 1, no instance there: void
    sem[11, :] = 255  # void label
    sem[12, :2] = -1  # negative: void
    inst = _box(16, 16, slice(0, 1), slice(0, 16))  # takes 16 px of stuff 2 -> 112 px left
    ids, segs = combine(sem, _instances([inst], [3], [0.9]), THINGS, stuff_area=112)
    assert [(s["category"], s["isthing"]) for s in segs] == [(3, True), (2, False)]  # 112 = stuff_area: kept
    assert int((ids == 1).sum()) == 16 and int((ids == 2).sum()) == 112
    assert bool((ids[sem != 2] == 0).all())  # stuff 0 (62 px) and 4 (16 px) too small; thing 1, 255, -1 void
    _, segs = combine(sem, _instances([inst], [3], [0.9]), THINGS, stuff_area=113)
    assert [s["category"] for s in segs] == [3]  # only 112 px of stuff 2 are free: below 113
    ids, segs = combine(sem, _instances([], [], [], (16, 16)), THINGS, stuff_area=16)
    assert [s["category"] for s in segs] == [0, 2, 4] and [int((ids == k).sum()) for k in (1, 2, 3)] == [62, 128, 16]
    assert int((ids == 0).sum()) == 32 + 16 + 2 and bool((ids[sem == 1] == 0).all())
    assert ids.dtype == torch.long


# --- Panoptic FPN ------------------------------------------------------------------------------------------

def _target(h: int = S, w: int = S) -> dict[str, torch.Tensor]:
    masks = torch.zeros(2, h, w, dtype=torch.uint8)
    masks[0, 4:24, 6:30] = 1
    masks[1, 28:46, 20:46] = 1
    sem = torch.zeros(h, w, dtype=torch.long)
    sem[:, w * 3 // 4:] = 4
    sem[h - 8:, :] = 2
    sem[masks[0].bool()] = 1
    sem[masks[1].bool()] = 3
    sem[0, :] = 255
    return {"boxes": torch.tensor([[6.0, 4, 30, 24], [20, 28, 46, 46]]), "labels": torch.tensor([1, 2]),
            "masks": masks, "semantic": sem}


def _fpn(**options) -> PanopticFPN:
    torch.manual_seed(0)
    return build_model("panoptic_fpn_resnet18", K, thing_classes=THINGS, **{**TINY, **options})


def test_train_step_losses_and_the_semantic_loss_by_hand() -> None:
    model = _fpn().train()
    captured = {}
    model.semantic_head.register_forward_hook(lambda m, i, out: captured.update(logits=out.detach()))
    target = _target()
    losses = model([torch.rand(3, S, S)], [target])
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    logits = captured["logits"]
    assert logits.shape == (1, 4, S // 4, S // 4)  # 3 stuff slots + "thing", at 1/4 of the 64 px batch
    full = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)[0]  # 64 px: no resize/pad
    slot = {0: 0, 2: 1, 4: 2, 1: 3, 3: 3}
    log_p = full.log_softmax(0)
    terms = [-log_p[slot[int(c)], y, x] for (y, x), c in zip(
        torch.nonzero(target["semantic"] != 255).tolist(), target["semantic"][target["semantic"] != 255].tolist(),
        strict=True)]
    assert float(losses["loss_semantic"].detach()) == pytest.approx(0.5 * float(torch.stack(terms).mean()), rel=1e-5)
    sum(losses.values()).backward()
    head = [p.grad for p in model.semantic_head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in head)
    assert model.detector.backbone.body.conv1.weight.grad.abs().sum() > 0  # both branches train the trunk


def test_semantic_target_follows_the_detector_transform() -> None:
    """Resized like torchvision resizes the masks (nearest, to each transformed size), padded with 255."""
    model = _fpn(min_size=64, max_size=96).train()
    targets = [_target(48, 40), _target(56, 56)]
    for t in targets:  # instance masks that are exactly the thing pixels of the semantic map
        t["masks"] = torch.stack([(t["semantic"] == c).to(torch.uint8) for c in (1, 3)])
    batch, moved = model.detector.transform([torch.rand(3, 48, 40), torch.rand(3, 56, 56)],
                                            [{k: t[k] for k in ("boxes", "labels", "masks")} for t in targets])
    sem = semantic_targets([t["semantic"] for t in targets], batch.image_sizes, batch.tensors.shape[-2:])
    assert sem.shape == (2, *batch.tensors.shape[-2:]) and batch.image_sizes == [(76, 64), (64, 64)]
    assert tuple(batch.tensors.shape[-2:]) == (96, 64)  # padded to the stride 32
    for i, (h, w) in enumerate(batch.image_sizes):
        for j, c in enumerate((1, 3)):
            assert torch.equal(sem[i, :h, :w] == c, moved[i]["masks"][j].bool())
        assert bool((sem[i, h:, :] == 255).all()) and bool((sem[i, :, w:] == 255).all())
    assert int((sem[0, :76, :64] == 255).sum()) > 0  # the first row's void label survives the resize


def test_eval_follows_the_contract() -> None:
    model = _fpn(stuff_area=4, score_threshold=0.0).eval()
    model.detector.roi_heads.score_thresh = 0.0  # random weights: keep every detection, so things appear
    with torch.no_grad():
        outputs = model([torch.rand(3, S, S + 8), torch.rand(3, 50, 40)])
    for out, size in zip(outputs, [(S, S + 8), (50, 40)], strict=True):
        ids, segments, inst = out["ids"], out["segments"], out["instances"]
        assert ids.shape == size and ids.dtype == torch.long
        listed = [s["id"] for s in segments]
        assert len(set(listed)) == len(listed) and 0 not in listed
        assert set(ids.unique().tolist()) - {0} == set(listed)  # every segment has pixels, no pixel unlisted
        for s in segments:
            assert set(s) == {"id", "category", "iscrowd", "isthing", "score"} and s["iscrowd"] == 0
            assert s["isthing"] == (s["category"] in THINGS) and 0 <= s["category"] < K
        assert any(s["isthing"] for s in segments) and any(not s["isthing"] for s in segments)
        n = len(inst["boxes"])
        assert inst["masks"].shape == (n, 1, *size) and set(inst["labels"].tolist()) <= set(THINGS)


def test_a_few_steps_lower_the_loss() -> None:
    model = _fpn().train()
    image, target = torch.rand(3, S, S), _target()
    image[:, target["semantic"] == 4] += 0.5
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    totals, semantic = [], []
    for _ in range(12):
        losses = model([image.clamp(0, 1)], [target])
        totals.append(float(sum(losses.values()).detach()))
        semantic.append(float(losses["loss_semantic"].detach()))
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3, totals  # seeds 0-2 measured: 0.47, 0.50, 0.47
    assert sum(semantic[-3:]) < 0.8 * sum(semantic[:3]), semantic


def test_detector_is_the_mask_rcnn_builders() -> None:
    """The detector's weights are exactly maskrcnn_resnet18_fpn's over T + 1 classes (same keys and shapes)."""
    model = _fpn()
    options = {k: v for k, v in TINY.items() if k != "semantic_channels"}
    ref = build_model("maskrcnn_resnet18_fpn", len(THINGS) + 1, **options).state_dict()
    own = {k.removeprefix("detector."): v.shape for k, v in model.state_dict().items() if k.startswith("detector.")}
    assert own == {k: v.shape for k, v in ref.items()}
    assert {k.split(".")[0] for k in model.state_dict()} == {"detector", "semantic_head"}
    assert sum(p.numel() for p in model.parameters()) == count_parameters(
        "panoptic_fpn_resnet18", K, thing_classes=THINGS, **TINY)
    assert takes_image_lists(model) and is_panoptic_model(model) and not is_instance_model(model)


def test_all_void_target_and_train_mode_without_targets() -> None:
    model = _fpn().train()
    target = {**_target(), "semantic": torch.full((S, S), 255, dtype=torch.long)}
    losses = model([torch.rand(3, S, S)], [target])
    assert float(losses["loss_semantic"].detach()) == 0.0 and all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ModelError, match="train mode needs targets"):
        model([torch.rand(3, S, S)])
    with pytest.raises(ModelError, match=r"semantic target holds \[7\]"):
        model([torch.rand(3, S, S)], [{**_target(), "semantic": torch.full((S, S), 7, dtype=torch.long)}])


def test_an_image_without_instances_trains() -> None:
    """Stuff-only images (and the dataset's extra target keys) are ordinary training items."""
    model = _fpn().train()
    target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": 7,
              "masks": torch.zeros(0, S, S, dtype=torch.uint8), "semantic": torch.zeros(S, S, dtype=torch.long)}
    losses = model([torch.rand(3, S, S)], [target])
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    assert float(losses["loss_mask"].detach()) == 0.0 and float(losses["loss_semantic"].detach()) > 0
    sum(losses.values()).backward()


def test_mobilenet_variant_trains_from_stride_8() -> None:
    torch.manual_seed(0)
    model = build_model("panoptic_fpn_mobilenet_v3", K, thing_classes=THINGS, **TINY).train()
    assert len(model.semantic_head.levels) == 3
    losses = model([torch.rand(3, S, S)], [_target()])
    assert set(losses) == LOSS_KEYS and torch.isfinite(losses["loss_semantic"])


@pytest.mark.parametrize(("value", "match"), [
    (None, "`thing_classes` is required"), ([], "non-empty list"), ([3, 1], "sorted"), ([1, 5], r"in 0\.\.4"),
    ([1, 1], "distinct"), ("a,b", "thing_classes"),
])
def test_thing_classes_are_checked(value, match) -> None:
    options = {} if value is None else {"thing_classes": value}
    with pytest.raises(ModelError, match=match):
        build_model("panoptic_fpn_resnet18", K, **options)


def test_registry_entries_and_command_line_lists() -> None:
    names = {"panoptic_fpn_resnet18", "panoptic_fpn_resnet50", "panoptic_fpn_mobilenet_v3", "panoptic_merge"}
    assert names <= set(MODELS) and all(MODELS[n].task == "panoptic" for n in names)
    for name in names:
        options = MODELS[name].options()
        assert options["thing_classes"] is None and options["score_threshold"] == 0.5
        assert options["overlap_threshold"] == 0.5 and options["stuff_area"] == 128
    assert MODELS["panoptic_fpn_resnet50"].options()["semantic_channels"] == 128  # the paper's
    model = build_model("panoptic_fpn_resnet18", K, thing_classes="1,3", **TINY)  # --model-opt thing_classes=1,3
    assert model.thing_classes == [1, 3] and model.stuff_classes == [0, 2, 4]
    assert model.detector.roi_heads.box_predictor.cls_score.out_features == 3
    with pytest.raises(ModelError, match="stuff_area"):
        build_model("panoptic_fpn_resnet18", K, thing_classes=THINGS, stuff_area=-1)


# --- the merged pair ---------------------------------------------------------------------------------------

class _FixedSemantic(nn.Module):
    """Logits that make class ``c`` win where ``label == c``; records its input."""

    def __init__(self, label: torch.Tensor, k: int) -> None:
        super().__init__()
        self.label, self.k, self.seen = label, k, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return F.one_hot(self.label, self.k).permute(2, 0, 1)[None].float()


class _FixedDetector(nn.Module):
    def __init__(self, found: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.found = found

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [dict(self.found) for _ in images]


def test_merged_pair_normalises_maps_labels_and_combines() -> None:
    label = torch.zeros(4, 6, dtype=torch.long)
    label[:, 3:] = 2
    label[0, 0] = 3  # a thing pixel no instance takes: void
    mask = _box(4, 6, slice(1, 3), slice(1, 3)).float()[None, None]
    found = {"boxes": torch.zeros(1, 4), "labels": torch.tensor([2]), "scores": torch.tensor([0.8]), "masks": mask}
    semantic = _FixedSemantic(label, K)
    model = MergedPanoptic(semantic, _FixedDetector(found), thing_classes=THINGS, instance_to_class=[1, 3],
                           semantic_mean=[0.5, 0.5, 0.5], semantic_std=[0.25, 0.5, 1.0], stuff_area=1)
    with pytest.raises(ModelError, match="eval-only"):
        model([torch.rand(3, 4, 6)])
    image = torch.rand(3, 4, 6)
    [out] = model.eval()([image])
    expected = (image - 0.5) / torch.tensor([0.25, 0.5, 1.0]).view(3, 1, 1)
    assert torch.allclose(semantic.seen[0], expected)
    assert out["instances"]["labels"].tolist() == [3]  # detector label 2 -> instance_to_class[1] = class 3
    ids = torch.tensor([[0, 2, 2, 3, 3, 3], [2, 1, 1, 3, 3, 3], [2, 1, 1, 3, 3, 3], [2, 2, 2, 3, 3, 3]])
    assert torch.equal(out["ids"], ids)
    assert [(s["category"], s["isthing"]) for s in out["segments"]] == [(3, True), (0, False), (2, False)]
    assert takes_image_lists(model) and is_panoptic_model(model)


def test_merge_builder_checks_its_options() -> None:
    unet = {"name": "unet", "num_classes": K, "options": {"base_channels": 4, "depth": 2}}
    det = {"name": "maskrcnn_resnet18_fpn", "num_classes": 3, "options": {"fpn_channels": 16}}
    good = {"semantic": unet, "instance": det, "instance_to_class": [1, 3], "thing_classes": THINGS}
    model = build_model("panoptic_merge", K, **good)
    assert isinstance(model, MergedPanoptic) and {k.split(".")[0] for k in model.state_dict()} == {
        "semantic", "instance"}
    bad = [({"semantic": None}, "`semantic` must be"),
           ({"instance": unet}, "of task 'semantic'; it must be a model of task 'instance'"),
           ({"semantic": {**unet, "num_classes": 3}}, "3 classes but the panoptic model 5"),
           ({"instance_to_class": [1]}, "instance_to_class"), ({"instance_to_class": [1, 2]}, "not in `thing_classes`"),
           ({"thing_classes": None}, "`thing_classes` is required"),
           ({"semantic": {**unet, "options": {"widht": 3}}}, "option `semantic`: .*widht")]
    for change, match in bad:
        with pytest.raises(ModelError, match=match):
            build_model("panoptic_merge", K, **{**good, **change})
