"""Joint augmentation: image and labels stay aligned, draws are reproducible, eval is deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode

from seglab.data.transforms import (
    DropEmptyInstances,
    EvalResize,
    RandomElastic,
    RandomRot90,
    build_eval_transforms,
    build_instance_train_transforms,
    build_train_transforms,
)
from seglab.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: extra threads only contend


def _encoded_pair(h: int = 64, w: int = 80, block: int = 8) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Random 8x8-block label map (asymmetric, so a lone flip shows) and an image whose value is 20*(label+1)."""
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 10, size=(h // block, w // block))
    label = np.kron(blocks, np.ones((block, block), dtype=np.int64))
    image = np.repeat(((label + 1) * 20).astype(np.uint8)[None], 3, axis=0)
    return tv_tensors.Image(torch.from_numpy(image)), tv_tensors.Mask(torch.from_numpy(label))


def _as_values(image: torch.Tensor) -> torch.Tensor:
    return (image * 255).round().long()


def test_alignment_exact_for_100_draws() -> None:
    # Nearest sampling for the image too, so every single pixel must agree with its mask.
    image, mask = _encoded_pair()
    t = build_train_transforms(48, scale=(0.5, 2.0), hflip=0.5, rotate=15, color_jitter=0.0,
                               interpolation=InterpolationMode.NEAREST_EXACT)
    seen = set()
    for _ in range(100):
        out_img, out_mask = t(image, mask)
        v = _as_values(out_img)
        m = out_mask.as_subclass(torch.Tensor)
        assert out_img.shape == (3, 48, 48) and m.shape == (48, 48)
        valid = m != 255
        assert torch.equal(v[:, valid], ((m[valid] + 1) * 20).expand(3, -1))
        assert torch.all(v[:, ~valid] == 0)  # image fill exactly where the mask is ignore
        seen.add(hash(m.numpy().tobytes()))
    assert len(seen) > 90  # the draws really differ


def test_alignment_bilinear_interior_pixels() -> None:
    # Default bilinear image resampling blends values near label edges; away from edges they must match.
    image, mask = _encoded_pair()
    t = build_train_transforms(48, rotate=10, color_jitter=0.0)
    checked = 0
    for _ in range(100):
        out_img, out_mask = t(image, mask)
        m = out_mask.as_subclass(torch.Tensor)
        padded = torch.nn.functional.pad(m[None, None].float(), (2, 2, 2, 2), value=-1.0)  # crop edge: not uniform
        windows = torch.nn.functional.unfold(padded, 5)[0]  # 25 x (H*W): each pixel's 5x5 neighbourhood
        uniform = (windows == windows[12]).all(0).reshape(m.shape) & (m != 255)
        diff = (_as_values(out_img)[:, uniform] - (m[uniform] + 1) * 20).abs()
        assert diff.max() <= 2
        checked += int(uniform.sum())
    assert checked > 100 * 48 * 48 // 8  # a real share of pixels was compared


def test_reproducible_with_torch_seed() -> None:
    image, mask = _encoded_pair()
    t = build_train_transforms(40, rotate=10)
    torch.manual_seed(7)
    a = t(image, mask)
    torch.manual_seed(7)
    b = t(image, mask)
    torch.manual_seed(8)
    c = t(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))


def test_types_padding_and_ignore_index() -> None:
    image = tv_tensors.Image(torch.full((3, 10, 12), 200, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(10, 12, dtype=torch.int64))
    t = build_train_transforms((16, 20), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0, ignore_index=7)
    out_img, out_mask = t(image, mask)
    assert isinstance(out_img, tv_tensors.Image) and out_img.dtype == torch.float32
    assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.int64
    assert out_img.shape == (3, 16, 20) and out_mask.shape == (16, 20)
    assert int((out_mask == 7).sum()) == 16 * 20 - 10 * 12  # padded area is ignore, nothing else
    assert int((out_mask == 1).sum()) == 10 * 12
    assert torch.allclose(out_img[:, out_mask == 1], torch.tensor(200 / 255))
    assert torch.all(out_img[:, out_mask == 7] == 0)


def test_color_jitter_leaves_mask_alone_and_normalize_applies() -> None:
    image, mask = _encoded_pair()
    jitter = build_train_transforms((64, 80), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.5)
    out_img, out_mask = jitter(image, mask)
    assert torch.equal(out_mask.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor))
    plain = build_train_transforms((64, 80), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0)
    norm = build_train_transforms((64, 80), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0,
                                  mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5])
    x = plain(image, mask)[0]
    y = norm(image, mask)[0]
    expected = (x - torch.tensor([0.5, 0.4, 0.3])[:, None, None]) / torch.tensor([0.2, 0.25, 0.5])[:, None, None]
    assert torch.allclose(y, expected, atol=1e-6)


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="crop_size"):
        build_train_transforms(0)
    with pytest.raises(ConfigError, match="scale"):
        build_train_transforms(32, scale=(2.0, 0.5))
    with pytest.raises(ConfigError, match="mean/std"):
        build_train_transforms(32, mean=[0.5, 0.5, 0.5])


def _instance_sample() -> tuple[tv_tensors.Image, dict]:
    h, w = 40, 60
    masks = torch.zeros(3, h, w, dtype=torch.uint8)
    masks[0, 5:15, 5:20] = 1
    masks[1, 20:38, 30:58] = 1
    masks[2, 0:6, 50:60] = 1
    boxes = tv_tensors.BoundingBoxes([[5, 5, 20, 15], [30, 20, 58, 38], [50, 0, 60, 6]], format="XYXY",
                                     canvas_size=(h, w))
    image = tv_tensors.Image((masks * torch.tensor([60, 120, 180])[:, None, None]).sum(0, dtype=torch.uint8)
                             .expand(3, -1, -1).clone())
    return image, {"boxes": boxes, "masks": tv_tensors.Mask(masks), "labels": torch.tensor([1, 2, 3])}


def test_instance_transforms_keep_boxes_masks_labels_consistent() -> None:
    image, target = _instance_sample()
    t = build_instance_train_transforms(32, scale=(0.5, 1.5))
    kept_counts = set()
    for _ in range(50):
        out_img, out = t(image, target)
        n = len(out["labels"])
        kept_counts.add(n)
        assert out_img.shape == (3, 32, 32) and out["masks"].shape == (n, 32, 32) and out["boxes"].shape == (n, 4)
        b = out["boxes"].as_subclass(torch.Tensor)
        assert torch.all(b >= 0) and torch.all(b[:, [0, 2]] <= 32) and torch.all(b[:, [1, 3]] <= 32)
        for box, m in zip(b, out["masks"], strict=True):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert len(ys) > 0  # empty instances were dropped
            assert xs.min() >= box[0] - 1 and xs.max() < box[2] + 1 and ys.min() >= box[1] - 1 and ys.max() < box[3] + 1
    assert len(kept_counts) > 1  # crops sometimes cut instances away


def test_drop_empty_instances() -> None:
    image, target = _instance_sample()
    target["masks"][1] = 0
    _, out = DropEmptyInstances()(image, target)
    assert out["labels"].tolist() == [1, 3]
    assert isinstance(out["boxes"], tv_tensors.BoundingBoxes) and isinstance(out["masks"], tv_tensors.Mask)
    assert out["boxes"].tolist() == [[5, 5, 20, 15], [50, 0, 60, 6]]


def test_eval_transforms_deterministic_full_size() -> None:
    image, mask = _encoded_pair()
    t = build_eval_transforms()
    a_img, a_mask = t(image, mask)
    b_img, _ = t(image, mask)
    assert torch.equal(a_img, b_img)
    assert torch.allclose(a_img, image.float() / 255, atol=1e-6)
    assert torch.equal(a_mask, mask)


def test_eval_resize_keeps_label_and_restores_size() -> None:
    image, mask = _encoded_pair()
    t = build_eval_transforms(size=32)
    out_img, out_mask = t(image, mask)
    assert out_img.shape == (3, 32, 32)
    assert torch.equal(out_mask, mask)  # labels stay full size for honest metrics
    logits = torch.zeros(2, 4, 32, 32)
    logits[:, 2] = 5.0
    restored = EvalResize.restore(logits, (64, 80))
    assert restored.shape == (2, 4, 64, 80)
    assert torch.all(restored.argmax(1) == 2)
    assert EvalResize.restore(logits[0], (64, 80)).shape == (4, 64, 80)


def test_works_inside_segmentation_folder(tmp_path) -> None:
    folder = pytest.importorskip("seglab.data.semantic.dataset")
    from PIL import Image

    for split in ("train",):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        img, lab = _encoded_pair(24, 32)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "images" / split / "a.png")
        Image.fromarray(lab.numpy().astype(np.uint8)).save(tmp_path / "labels" / split / "a.png")
    ds = folder.SegmentationFolder(tmp_path, "train", transforms=build_train_transforms(16, color_jitter=0.0))
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y.shape == (16, 16) and y.dtype == torch.int64
    assert float(x.max()) <= 1.0


def test_vflip_and_rot90_keep_pixels_exact_and_reach_all_eight_symmetries() -> None:
    # A quarter turn and flips move pixels exactly: every pixel agrees with its mask, with no interpolation,
    # and over many draws all eight symmetries of the square appear (checked on one asymmetric patch).
    image, mask = _encoded_pair(64, 64)
    t = build_train_transforms(64, scale=(1.0, 1.0), hflip=0.5, vflip=0.5, rot90=True, color_jitter=0.0)
    base = mask.as_subclass(torch.Tensor)
    variants = {hash(torch.rot90(f, k, dims=(-2, -1)).numpy().tobytes())
                for f in (base, base.flip(-1)) for k in range(4)}
    assert len(variants) == 8
    seen = set()
    for _ in range(200):
        out_img, out_mask = t(image, mask)
        m = out_mask.as_subclass(torch.Tensor)
        assert isinstance(out_mask, tv_tensors.Mask) and m.shape == (64, 64)
        assert torch.equal(_as_values(out_img), ((m + 1) * 20).expand(3, -1, -1))
        key = hash(m.numpy().tobytes())
        assert key in variants  # nothing but a symmetry of the input
        seen.add(key)
    assert seen == variants


def test_rot90_refuses_non_square_crops_and_boxes() -> None:
    with pytest.raises(ConfigError, match="square crops"):
        build_train_transforms((32, 48), rot90=True)
    image, target = _instance_sample()
    with pytest.raises(ConfigError, match="does not apply to boxes"):
        torch.manual_seed(1)
        for _ in range(20):  # k = 0 leaves inputs untouched; some draw turns
            RandomRot90()(image, target)


def test_instance_vflip_moves_boxes_with_masks() -> None:
    # the whole 40x60 image as the crop: each box must land exactly where the flipped rows go
    image, target = _instance_sample()
    t = build_instance_train_transforms((40, 60), scale=(1.0, 1.0), hflip=0.0, vflip=1.0, color_jitter=0.0)
    _, out = t(image, target)
    before = target["boxes"].as_subclass(torch.Tensor)
    expected = torch.stack([before[:, 0], 40 - before[:, 3], before[:, 2], 40 - before[:, 1]], dim=1)
    assert torch.equal(out["boxes"].as_subclass(torch.Tensor), expected)
    for box, m in zip(expected, out["masks"], strict=True):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()


def test_elastic_warps_image_and_mask_together_and_keeps_mask_values_exact() -> None:
    image, mask = _encoded_pair(64, 64)
    torch.manual_seed(3)
    t = RandomElastic(6.0)
    out_img, out_mask = t(image, mask)
    m, v = out_mask.as_subclass(torch.Tensor), out_img.as_subclass(torch.Tensor).long()  # uint8 codes
    assert isinstance(out_mask, tv_tensors.Mask) and m.dtype == torch.int64 and out_img.dtype == torch.uint8
    assert set(m.unique().tolist()) <= set(mask.unique().tolist())  # nearest: no invented classes
    assert not torch.equal(m, mask.as_subclass(torch.Tensor))  # it did warp
    # away from label edges the bilinear image equals the label's code (20 * (label + 1)) exactly
    same = torch.ones_like(m, dtype=torch.bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= m == torch.roll(m, (dy, dx), dims=(0, 1))
    same[[0, -1], :] = False
    same[:, [0, -1]] = False
    assert same.sum() > 1000
    assert torch.all((v[0][same] - (m[same] + 1) * 20).abs() <= 1)


def test_elastic_of_zero_is_the_identity_and_the_pipeline_uses_it() -> None:
    image, mask = _encoded_pair(64, 64)
    out_img, out_mask = RandomElastic(0.0)(image, mask)
    assert torch.equal(out_img, image) and torch.equal(out_mask, mask)
    t = build_train_transforms(64, scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0, elastic=8.0)
    assert any(isinstance(step, RandomElastic) for step in t.transforms)
    with pytest.raises(ConfigError, match="elastic"):
        RandomElastic(-1.0)
    with pytest.raises(ConfigError, match="does not apply to boxes"):
        RandomElastic(5.0)(*_instance_sample())
