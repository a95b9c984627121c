"""``data.resize``: images scaled to a long side, every output back at the input's size, pixel for pixel.

The expected outputs are hand-made: a label map of 8 px blocks, and a stub model whose logits are its input
(one-hot colour blocks), so the right class map is the block map itself at every size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import tv_tensors

from seglab.checkpoint import CheckpointInfo
from seglab.data.resize import LongSide, resize_long_side, resized_size
from seglab.data.transforms import build_train_transforms
from seglab.errors import CheckpointError
from seglab.inference.semantic import evaluate, predict, predict_many
from seglab.models import build_model, list_models

K = 3


class Echo(nn.Module):
    """A stub model: its logits are its input (a 1x1 identity convolution, so the channel count is read)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(K, K, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(K)[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def blocks(h: int, w: int, side: int = 8, seed: int = 0) -> np.ndarray:
    """A class map of ``side`` px blocks with random classes 0..K-1."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, K, (-(-h // side), -(-w // side)))
    return np.kron(grid, np.ones((side, side), dtype=np.int64))[:h, :w]


def stripes(h: int, w: int, side: int = 8, seed: int = 0, axis: int = 1) -> np.ndarray:
    """A class map of ``side`` px bands (columns for ``axis=1``, rows for 0): edges without corners, which
    bilinear resampling moves by design (a convex corner pixel is outvoted by its three other neighbours)."""
    rng = np.random.default_rng(seed)
    n = -(-(w if axis else h) // side)
    band = np.repeat(rng.permutation(np.arange(n) % K), side)
    return np.broadcast_to(band[:w][None, :] if axis else band[:h][:, None], (h, w)).copy()


def one_hot(labels: np.ndarray) -> torch.Tensor:
    """``(K, H, W)`` float image whose channel ``k`` is 1 where the class is ``k``."""
    return torch.nn.functional.one_hot(torch.from_numpy(labels), K).permute(2, 0, 1).float()


@pytest.mark.parametrize(("hw", "long_side", "expected"), [
    ((575, 765, 256), None, (192, 256)), ((64, 96, 48), None, (32, 48)), ((3, 5, 16), None, (10, 16)),
    ((5, 10, 3), None, (2, 3)),  # 1.5 rounds up (half up, not to even)
    ((7, 7, 7), None, (7, 7)), ((1, 1000, 16), None, (1, 16)),  # never below 1 px
])
def test_resized_size_by_hand(hw: tuple, long_side: None, expected: tuple) -> None:
    assert resized_size(*hw) == expected
    assert resized_size(hw[0], hw[1], None) == hw[:2]


def test_labels_resize_nearest_and_ignore_stays_ignore() -> None:
    labels = blocks(64, 96)
    labels[8:16, 16:32] = 255
    image = tv_tensors.Image(torch.zeros(3, 64, 96, dtype=torch.uint8))
    _, small = LongSide(48)(image, tv_tensors.Mask(torch.from_numpy(labels)))
    assert small.shape == (32, 48) and set(small.unique().tolist()) <= {0, 1, 2, 255}
    back = torch.nn.functional.interpolate(small[None, None].float(), size=(64, 96), mode="nearest-exact")
    assert np.array_equal(back[0, 0].long().numpy(), labels)  # blocks of 8 survive a factor of 2 both ways


def test_training_transform_scales_before_the_crop() -> None:
    labels = blocks(64, 96)
    tf = build_train_transforms(32, scale=(1.0, 1.0), hflip=0, color_jitter=0, resize=48)
    image, mask = tf(tv_tensors.Image(torch.zeros(3, 64, 96, dtype=torch.uint8)),
                     tv_tensors.Mask(torch.from_numpy(labels)))
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
    small = labels[1::2, 1::2]  # what nearest-exact keeps at half size: one pixel per 2x2
    assert any(np.array_equal(mask.numpy(), small[:, x:x + 32]) for x in range(17))


@pytest.mark.parametrize("options", [
    {}, {"tile": 16}, {"tile": 16, "overlap": 0.5}, {"tta": "flip"}, {"tta": "hflip,vflip"},
    {"tile": 24, "tta": "flip"},
])
@pytest.mark.parametrize(("h", "w", "long_side", "axis"), [(64, 96, 48, 1), (64, 96, 48, 0), (48, 32, 96, 1),
                                                           (48, 32, 96, 0)])  # down by 2, up by 2
def test_semantic_prediction_round_trip_is_exact(options: dict, h: int, w: int, long_side: int, axis: int) -> None:
    labels = stripes(h, w, axis=axis)
    out, probs = predict(Echo(), one_hot(labels), resize=long_side, return_probs=True, **options)
    assert out.shape == (h, w) and probs.shape == (K, h, w)
    assert np.array_equal(out.numpy(), labels)
    assert torch.allclose(probs.sum(0), torch.ones(h, w), atol=1e-5)


def test_odd_sizes_come_back_at_their_own_size() -> None:
    labels = blocks(50, 75, side=10)
    out = predict(Echo(), one_hot(labels), resize=32)
    assert out.shape == (50, 75)
    interior = np.zeros_like(labels, dtype=bool)  # away from block edges nothing may move
    interior[np.add.outer(np.arange(50) % 10, np.zeros(75, int)) // 3 == 1] = True
    interior &= (np.arange(75) % 10 // 3 == 1)[None, :]
    assert np.array_equal(out.numpy()[interior], labels[interior])


def test_predict_many_returns_each_image_at_its_size() -> None:
    maps = [stripes(64, 96, seed=1), stripes(48, 32, seed=2, axis=0), stripes(64, 96, seed=3)]
    results = list(predict_many(Echo(), [(i, one_hot(m)) for i, m in enumerate(maps)], resize=48, return_probs=True))
    for (key, _, out, probs), m in zip(results, maps, strict=True):
        assert out.shape == m.shape and probs.shape == (K, *m.shape)
        assert np.array_equal(out.numpy(), m), key


def test_evaluate_scores_at_the_original_labels() -> None:
    maps = [stripes(64, 96, seed=1), stripes(40, 56, seed=2, axis=0)]
    truth = [m.copy() for m in maps]
    truth[0][:8, :8] = 255  # ignored pixels stay out of the score
    data = [(one_hot(m), torch.from_numpy(t)) for m, t in zip(maps, truth, strict=True)]
    metrics = evaluate(Echo(), data, num_classes=K, resize=48)
    assert metrics["mean_iou"] == pytest.approx(1.0)
    assert int(metrics["confusion_matrix"].sum()) == sum(int((t != 255).sum()) for t in truth)


def test_resize_long_side_leaves_a_fitting_image_alone() -> None:
    x = torch.rand(3, 16, 24)
    assert resize_long_side(x, 24) is x and resize_long_side(x, None) is x
    assert resize_long_side(x, 12).shape == (3, 8, 12)


def _ckpt(config: dict) -> dict:
    return {"model": {"name": "unet", "num_classes": 2, "options": {}}, "classes": ["a", "b"], "config": config}


def test_checkpoint_info_reads_resize_from_the_config() -> None:
    assert CheckpointInfo.from_dict(_ckpt({"data": {"resize": 256}})).resize == 256
    assert CheckpointInfo.from_dict(_ckpt({"data": {"root": "d"}})).resize is None  # older checkpoints
    assert CheckpointInfo.from_dict(_ckpt({})).resize is None
    for bad in (0, -4, "big", True):
        with pytest.raises(CheckpointError, match="resize"):
            CheckpointInfo.from_dict(_ckpt({"data": {"resize": bad}}), "x.pt")


class BlockDetector(nn.Module):
    """A stub detector: one instance, the pixels brighter than 0.5 in the red channel (mask, tight box, score 0.9);
    as a panoptic model also ``ids`` (1 on the instance, 2 elsewhere). What it finds is known at any scale."""

    def __init__(self, panoptic: bool = False) -> None:
        super().__init__()
        self.panoptic = panoptic

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        outputs = []
        for image in images:
            mask = image[0] > 0.5
            ys, xs = torch.nonzero(mask, as_tuple=True)
            inst = {"boxes": torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32),
                    "labels": torch.tensor([1]), "scores": torch.tensor([0.9]), "masks": mask[None, None].float()}
            if self.panoptic:
                ids = torch.where(mask, 1, 2).long()
                segments = [{"id": 1, "category": 1, "iscrowd": 0, "isthing": True, "score": 0.9},
                            {"id": 2, "category": 0, "iscrowd": 0, "isthing": False, "score": 1.0}]
                outputs.append({"ids": ids, "segments": segments, "instances": inst})
            else:
                outputs.append(inst)
        return outputs


@pytest.mark.parametrize("panoptic", [False, True])
@pytest.mark.parametrize(("h", "w", "long_side"), [(64, 96, 48), (48, 32, 96)])  # down by 2, up by 2
def test_detector_outputs_come_back_at_the_input_size(panoptic: bool, h: int, w: int, long_side: int) -> None:
    from seglab.inference.instance import predict_instances
    from seglab.inference.panoptic import predict_panoptic

    image = np.zeros((h, w, 3), np.uint8)
    image[8:24, 16:30] = 255  # a block on even rows and columns: exact at half and double size
    truth = BlockDetector()([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    if panoptic:
        [(_, _, out)] = list(predict_panoptic(BlockDetector(True), [(0, image)], resize=long_side))
        assert out["ids"].shape == (h, w)
        assert torch.equal(out["ids"], torch.where(truth["masks"][0, 0] > 0, 1, 2))
        inst = out["instances"]
        assert inst["masks"].shape == (1, 1, h, w) and torch.equal(inst["masks"] > 0.5, truth["masks"] > 0.5)
    else:
        [(_, _, inst)] = list(predict_instances(BlockDetector(), [(0, image)], resize=long_side))
        assert inst["masks"].shape == (1, h, w) and torch.equal(inst["masks"], truth["masks"][:, 0] > 0.5)
    assert torch.equal(inst["boxes"], truth["boxes"])


def test_detector_training_scales_boxes_and_masks() -> None:
    from seglab.data.transforms import build_instance_train_transforms

    masks = torch.zeros(1, 40, 48, dtype=torch.uint8)
    masks[0, 8:24, 16:32] = 1
    target = {"boxes": tv_tensors.BoundingBoxes(torch.tensor([[16.0, 8.0, 32.0, 24.0]]), format="XYXY",
                                                canvas_size=(40, 48)),
              "masks": tv_tensors.Mask(masks), "labels": torch.tensor([1])}
    tf = build_instance_train_transforms(64, scale=(1.0, 1.0), hflip=0, color_jitter=0, resize=24)
    image, out = tf(tv_tensors.Image(torch.zeros(3, 40, 48, dtype=torch.uint8)), target)
    (x0, y0, x1, y1), = out["boxes"].tolist()  # the 64 px crop only pads (at a random offset)
    assert (x1 - x0, y1 - y0) == (8.0, 8.0) and image.shape == (3, 64, 64)  # half of 16 x 16
    ys, xs = torch.nonzero(out["masks"][0], as_tuple=True)
    assert int(out["masks"].sum()) == 8 * 8 and (xs.min(), ys.min()) == (x0, y0)  # the mask moved with its box


def _folder(root, maps: list[np.ndarray]):
    """A folder dataset (train = val) whose images are the one-hot colours of ``maps`` (uint8 RGB)."""
    from PIL import Image

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i, m in enumerate(maps):
            Image.fromarray((one_hot(m).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
                root / "images" / split / f"{i}.png")
            Image.fromarray(m.astype(np.uint8)).save(root / "labels" / split / f"{i}.png")
    return root


def test_validation_scores_at_the_original_size_like_evaluate(tmp_path) -> None:
    from contextlib import nullcontext

    from seglab.engine.semantic import SemanticTask
    from seglab.engine.task import Augment
    from seglab.models import build_model

    maps = [stripes(64, 96, seed=1), stripes(40, 56, seed=2, axis=0), stripes(30, 20, seed=3)]
    root = _folder(tmp_path / "ds", maps)
    task = SemanticTask(str(root), num_classes=K, mean=[0.0] * 3, std=[1.0] * 3, resize=48,
                        augment=Augment(crop_size=16))
    loader = torch.utils.data.DataLoader(task.val_set, batch_size=3, collate_fn=task.collate())
    echo, _ = task.evaluate(Echo(), loader, task.criterion(), torch.device("cpu"), nullcontext)
    assert echo["mean_iou"] == pytest.approx(1.0)  # the hand-made answer: the stripes themselves
    assert int(echo["confusion_matrix"].sum()) == sum(m.size for m in maps)
    torch.manual_seed(0)
    unet = build_model("unet", K, base_channels=4, depth=2).eval()
    val, _ = task.evaluate(unet, loader, task.criterion(), torch.device("cpu"), nullcontext)
    data = [(one_hot(m), torch.from_numpy(m)) for m in maps]
    scored = evaluate(unet, data, num_classes=K, resize=48, mean=[0.0] * 3, std=[1.0] * 3)
    assert torch.equal(torch.as_tensor(val["confusion_matrix"]).cpu(), torch.as_tensor(scored["confusion_matrix"]))
    one_size = torch.utils.data.DataLoader(task.val_set, batch_size=1, collate_fn=task.collate())  # unpadded path
    assert all(len(batch) == 2 for batch in one_size)
    alone, _ = task.evaluate(unet, one_size, task.criterion(), torch.device("cpu"), nullcontext)
    assert torch.equal(torch.as_tensor(alone["confusion_matrix"]), torch.as_tensor(scored["confusion_matrix"]))


def test_inspect_looks_at_the_scale_the_model_saw(tmp_path) -> None:
    from seglab.inference.inspect import inspect_image
    from seglab.models import build_model

    torch.manual_seed(0)
    unet = build_model("unet", K, base_channels=4, depth=2).eval()
    seen: list[tuple] = []
    unet.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    written = inspect_image(unet, torch.rand(3, 64, 96), tmp_path, layers=["head"], class_names=list("abc"),
                            resize=48)
    assert [p.name for p in written] == ["features_head.png", "cam.png"] and all(p.is_file() for p in written)
    assert seen and set(seen) == {(32, 48)}  # every forward pass (features, Grad-CAM) at the training scale


def test_time_budget_times_validation_at_the_training_scale(tmp_path, monkeypatch) -> None:
    """--time sizes the epochs from a timed validation batch: under data.resize that batch must run as validation
    runs it (each image at the long side 48, not its full 64x96), or big images make the plan far too short."""
    from seglab.config import config_from_dict
    from seglab.engine.budget import fit_to_budget
    from seglab.engine.semantic import SemanticTask

    root = _folder(tmp_path / "ds", [stripes(64, 96, seed=1), stripes(64, 96, seed=2)])
    cfg = config_from_dict({"data": {"root": str(root), "crop_size": 16, "scale": [1.0, 1.0], "resize": 48,
                                     "workers": 0, "mean": [0.0] * 3, "std": [1.0] * 3},
                            "model": {"name": "unet", "options": {"base_channels": 4, "depth": 2}},
                            "train": {"out": str(tmp_path / "run"), "epochs": 2, "batch_size": 2}})
    seen: list[tuple[int, int]] = []
    timed = SemanticTask.validation_forward

    def spy(self, model, batch, device, autocast):
        hook = model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
        try:
            return timed(self, model, batch, device, autocast)
        finally:
            hook.remove()

    monkeypatch.setattr(SemanticTask, "validation_forward", spy)
    plan = fit_to_budget(cfg, torch.device("cpu"), 600.0)
    assert plan.epochs >= 1
    assert seen and set(seen) == {(32, 48)}  # the two timed runs, at the training scale


SEMANTIC_FAMILIES = [e.name for e in list_models() if e.task == "semantic"]


@pytest.mark.parametrize("name", SEMANTIC_FAMILIES)
def test_every_semantic_family_round_trips_at_the_training_scale(name: str, tiny_semantic: dict) -> None:
    """Each model family under ``resize``: the class map has the input's size and equals the textbook path
    (torch's antialiased bilinear down to 32x64, the forward pass, bilinear logits back to 48x96, argmax);
    an odd 45x70 image (padding to the stride at 40 px) comes back at 45x70, whole, tiled and with TTA."""
    torch.manual_seed(0)
    model = build_model(name, K, **tiny_semantic.get(name, {})).eval()
    image = torch.rand(K, 48, 96)
    with torch.no_grad():
        small = nn.functional.interpolate(image[None], size=(32, 64), mode="bilinear", antialias=True,
                                          align_corners=False)
        out = model(small)
        logits = out["out"] if isinstance(out, dict) else out
        scores = nn.functional.interpolate(logits, size=(48, 96), mode="bilinear", align_corners=False)[0]
    got = predict(model, image, resize=64)
    assert got.shape == (48, 96)
    top2 = scores.topk(2, dim=0).values
    tie = (top2[0] - top2[1]) < 1e-4  # predict blends log-probabilities: equal argmax, up to rounding at near-ties
    assert torch.equal(got[~tie], scores.argmax(0)[~tie]) and int(tie.sum()) <= 0.01 * tie.numel()
    odd = torch.rand(K, 45, 70)
    for options in ({}, {"tile": 32}, {"tta": "flip"}):
        assert predict(model, odd, resize=40, **options).shape == (45, 70), options
