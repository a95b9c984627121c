"""COCO instance datasets: targets against independent decoders, augmentation, crowd, open_instance_split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as pycoco_mask
from torchvision.transforms import v2

from seglab.data.instance.checks import check_instance_dataset
from seglab.data.instance.coco import CocoInstances, collate_instances, open_instance_split
from seglab.data.instance.convert import coco_to_masks
from seglab.data.instance.masks import InstanceMaskFolder
from seglab.data.io import DEFAULT_MAX_PIXELS
from seglab.errors import ConfigError, DataError


def _np_tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_coco_and_mask_folder_give_the_same_targets(coco_root: Path, instance_spec) -> None:
    H, W, RECTS = instance_spec.H, instance_spec.W, instance_spec.RECTS
    coco, folder = CocoInstances(coco_root, "train"), InstanceMaskFolder(coco_root, "train")
    assert coco.classes == folder.classes == ["background", "circle", "square", "triangle"]
    assert coco.cat_ids == folder.cat_ids == [0, 1, 2, 3] and coco.num_classes == 4
    for i, stem in enumerate(sorted(RECTS)):
        (img, t), (img2, t2) = coco[i], folder[i]
        assert img.shape == (3, H, W) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
        torch.testing.assert_close(img, img2)
        expected = [[x0, y0, x1, y1] for _, (y0, y1, x0, x1) in RECTS[stem]]
        assert t["boxes"].tolist() == t2["boxes"].tolist() == [[float(v) for v in b] for b in expected]
        assert t["labels"].tolist() == t2["labels"].tolist() == [c for c, _ in RECTS[stem]]
        assert t["masks"].shape == (len(expected), H, W) and t["masks"].dtype == torch.uint8
        assert torch.equal(t["masks"], t2["masks"]) and t["image_id"] == t2["image_id"] == i + 1
        assert t["area"].tolist() == [float((y1 - y0) * (x1 - x0)) for _, (y0, y1, x0, x1) in RECTS[stem]]
        assert t["iscrowd"].dtype == torch.int64 and t["iscrowd"].sum() == 0


def test_polygons_rle_and_crowd(tmp_path: Path) -> None:
    H, W = 40, 48
    root = tmp_path / "poly"
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    Image.new("RGB", (W, H)).save(root / "images" / "val" / "x.jpg")
    poly = [[4.0, 4.0, 20.0, 4.0, 20.0, 16.0, 4.0, 16.0]]
    crowd = {"size": [H, W], "counts": [H * 30, H * 10, H * 8]}  # uncompressed RLE, columns 30..39
    dense = np.zeros((H, W), np.uint8)
    dense[25:35, 2:12] = 1
    rle = pycoco_mask.encode(np.asfortranarray(dense))
    anns = [{"id": 1, "image_id": 7, "category_id": 5, "segmentation": poly, "bbox": [4, 4, 16, 12],
             "area": 1, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 9, "segmentation": crowd, "bbox": [30, 0, 10, 40],
             "area": 1, "iscrowd": 1},
            {"id": 3, "image_id": 7, "category_id": 9, "segmentation": dict(rle, counts=rle["counts"].decode()),
             "bbox": [2, 25, 10, 10], "area": 100, "iscrowd": 0}]
    gt = {"images": [{"id": 7, "file_name": "x.jpg", "width": W, "height": H}], "annotations": anns,
          "categories": [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(gt))
    assert check_instance_dataset(root, ["val"], DEFAULT_MAX_PIXELS) == []
    ds = CocoInstances(root, "val")
    assert ds.cat_ids == [0, 5, 9] and ds.classes == ["background", "cat", "dog"]
    _, t = ds[0]
    assert t["labels"].tolist() == [1, 2]  # the crowd region is not a training target
    poly_ref = pycoco_mask.decode(pycoco_mask.merge(pycoco_mask.frPyObjects(poly, H, W)))
    np.testing.assert_array_equal(t["masks"][0].numpy(), poly_ref)
    np.testing.assert_array_equal(t["masks"][1].numpy(), dense)
    assert t["boxes"][0].tolist() == _np_tight_box(poly_ref)
    summary = coco_to_masks(root, "val", tmp_path / "out")
    assert summary["skipped_crowd"] == 1 and summary["instances"] == 2


def _instance_pipeline(size: int) -> v2.Compose:
    try:
        from seglab.data.transforms import build_instance_train_transforms

        return build_instance_train_transforms(size, scale=(0.7, 1.4), hflip=0.5, color_jitter=0.0)
    except ImportError:  # the transforms module is another helper's; fall back to plain v2 parts
        return v2.Compose([v2.RandomCrop(size, pad_if_needed=True), v2.RandomHorizontalFlip(0.5),
                           v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes()])


def test_targets_stay_aligned_under_augmentation(coco_root: Path) -> None:
    ds = CocoInstances(coco_root, "train", transforms=_instance_pipeline(24))
    seen = 0
    for _ in range(10):
        for i in range(len(ds)):
            img, t = ds[i]
            assert img.shape[-2:] == (24, 24) and t["masks"].shape[-2:] == (24, 24)
            assert len(t["boxes"]) == len(t["labels"]) == len(t["masks"]) == len(t["area"])
            for box, m in zip(t["boxes"].tolist(), t["masks"].numpy(), strict=True):
                assert m.any(), "an empty instance survived the crop"
                assert box == _np_tight_box(m)
                seen += 1
    assert seen > 10


def test_flip_and_crop_move_boxes_with_masks(coco_root: Path, instance_spec) -> None:
    W = instance_spec.W
    flipped = CocoInstances(coco_root, "train", transforms=v2.RandomHorizontalFlip(1.0))
    _, t = flipped[0]  # image "a"
    assert t["boxes"].tolist() == [[W - 15.0, 2.0, W - 5.0, 12.0], [W - 46.0, 20.0, W - 30.0, 38.0]]
    # a 16x16 centre crop (rows 12..27, cols 16..31) keeps only part of the second rectangle of "a"
    _, t = CocoInstances(coco_root, "train", transforms=v2.CenterCrop(16))[0]
    assert t["labels"].tolist() == [3]
    assert t["boxes"].tolist() == [[14.0, 8.0, 16.0, 16.0]]


def test_collate_keeps_lists(coco_root: Path) -> None:
    ds = CocoInstances(coco_root, "train")
    images, targets = collate_instances([ds[0], ds[1]])
    assert isinstance(images, list) and len(images) == 2 and [t["image_id"] for t in targets] == [1, 2]


def test_check_true_refuses_a_broken_dataset(coco_root: Path) -> None:
    path = coco_root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 42
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="category id 42"):
        CocoInstances(coco_root, "train")


def test_open_instance_split_picks_the_layout(coco_root: Path, mask_root: Path) -> None:
    assert type(open_instance_split(coco_root, "train")) is CocoInstances
    (coco_root / "annotations" / "instances_train.json").unlink()
    assert type(open_instance_split(mask_root, "train")) is InstanceMaskFolder
    with pytest.raises(ConfigError, match="no annotations/instances_val.json and no masks/val/"):
        open_instance_split(mask_root, "val")


def test_shapes_generator_layouts_agree(tmp_path: Path) -> None:
    synthetic = pytest.importorskip("seglab.data.synthetic")
    root = synthetic.make_shapes(tmp_path / "shapes", n_train=3, n_val=1, size=64)
    assert check_instance_dataset(root, None, DEFAULT_MAX_PIXELS) == []
    coco, folder = CocoInstances(root, "train"), InstanceMaskFolder(root, "train")
    assert coco.classes == folder.classes and coco.cat_ids == [0, 1, 2, 3]
    for i in range(len(coco)):
        (_, a), (_, b) = coco[i], folder[i]
        assert torch.equal(a["masks"], b["masks"]) and torch.equal(a["labels"], b["labels"])


def test_pennfudan_loads_and_passes_the_doctor(shared_datasets: Path) -> None:
    root = shared_datasets / "pennfudan"
    assert check_instance_dataset(root, None, DEFAULT_MAX_PIXELS) == []
    ds = CocoInstances(root, "val", check=False)
    assert len(ds) == 20 and ds.classes == ["background", "pedestrian"]
    counts = [len(ds[i][1]["labels"]) for i in range(len(ds))]
    assert sum(counts) == 45 and max(counts) == 7  # the dataset README's numbers
    (_, t), (_, t2) = ds[0], InstanceMaskFolder(root, "val")[0]
    assert torch.equal(t["masks"], t2["masks"]) and torch.equal(t["boxes"], t2["boxes"])
