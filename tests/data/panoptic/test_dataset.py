"""Panoptic reading (both layouts into one form), training targets, the panoptic transforms and the synthetic
panoptic data. Expected values are written out by hand from the tiny folders built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from seglab.data.layout import detect_task
from seglab.data.panoptic.dataset import PanopticDataset, collate_panoptic, open_panoptic_split, semantic_map
from seglab.data.panoptic.format import ids_to_rgb, read_panoptic_png, rgb_to_ids
from seglab.data.transforms import SemanticMask, build_panoptic_train_transforms
from seglab.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 6, 8
CLASSES = ["sky", "road", "car", "person"]  # sky, road stuff; car, person things
# Class map: sky rows 0-1 (one void pixel), road below, car A (instance 7) and car B (instance 300, a 16-bit id),
# and two person pixels without an instance id (a crowd).
LABEL = np.array([[0, 0, 0, 0, 0, 0, 0, 255],
                  [0, 0, 0, 0, 0, 0, 0, 0],
                  [1, 2, 2, 2, 1, 1, 1, 1],
                  [1, 2, 2, 2, 1, 1, 1, 1],
                  [1, 1, 1, 1, 1, 2, 2, 2],
                  [3, 3, 1, 1, 1, 2, 2, 2]], np.uint8)
INST = np.zeros((H, W), np.int32)
INST[2:4, 1:4] = 7
INST[4:6, 5:8] = 300
# The same image in COCO: category ids (sorted: sky, road, car, person) and segment ids of its own.
COCO_CATS = [{"id": 5, "name": "sky", "isthing": 0}, {"id": 7, "name": "road", "isthing": 0},
             {"id": 11, "name": "car", "isthing": 1}, {"id": 40, "name": "person", "isthing": 1}]
COCO_IDS = {"sky": 1000, "road": 70000, "carA": 7, "carB": 300, "crowd": 90000}


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def build_simple(root: Path, stems: tuple[str, ...] = ("a",)) -> Path:
    """The hand-made image in seglab's simple layout (split train)."""
    for sub in ("images", "labels", "instances"):
        (root / sub / "train").mkdir(parents=True)
    for stem in stems:
        Image.fromarray(_image()).save(root / "images" / "train" / f"{stem}.png")
        Image.fromarray(LABEL).save(root / "labels" / "train" / f"{stem}.png")
        Image.fromarray(INST.astype(np.uint16)).save(root / "instances" / "train" / f"{stem}.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "panoptic.json").write_text(json.dumps({"things": ["person", "car"]}))
    return root


def coco_ids() -> np.ndarray:
    ids = np.zeros((H, W), np.int64)
    ids[LABEL == 0], ids[LABEL == 1], ids[LABEL == 3] = COCO_IDS["sky"], COCO_IDS["road"], COCO_IDS["crowd"]
    ids[INST == 7], ids[INST == 300] = COCO_IDS["carA"], COCO_IDS["carB"]
    return ids


def build_coco(root: Path) -> Path:
    """The same image in the COCO panoptic layout, the PNG's RGB written from the formula by hand."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "annotations" / "panoptic_train").mkdir(parents=True)
    Image.fromarray(_image()).save(root / "images" / "train" / "a.png")
    ids = coco_ids()
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb).save(root / "annotations" / "panoptic_train" / "a.png")
    infos = [{"id": COCO_IDS["sky"], "category_id": 5}, {"id": COCO_IDS["road"], "category_id": 7},
             {"id": COCO_IDS["carA"], "category_id": 11}, {"id": COCO_IDS["carB"], "category_id": 11},
             {"id": COCO_IDS["crowd"], "category_id": 40, "iscrowd": 1}]
    doc = {"images": [{"id": 9, "file_name": "a.png", "width": W, "height": H}],
           "annotations": [{"image_id": 9, "file_name": "a.png", "segments_info": infos}], "categories": COCO_CATS}
    (root / "annotations" / "panoptic_train.json").write_text(json.dumps(doc))
    return root


def _by_mask(ids: np.ndarray, segments: list[dict]) -> set:
    """Segments as (category, iscrowd, isthing, pixel positions): comparable across id numberings."""
    return {(s["category"], s["iscrowd"], s["isthing"], tuple(np.flatnonzero(ids == s["id"]))) for s in segments}


def test_simple_layout_reads_the_hand_made_segments(tmp_path: Path) -> None:
    split = open_panoptic_split(build_simple(tmp_path / "s"), "train")
    assert split.layout == "simple" and split.classes == CLASSES
    assert split.cat_ids == [1, 2, 3, 4] and split.isthing == [False, False, True, True]
    assert split.thing_classes == [2, 3] and len(split) == 1 and split.stem(0) == "a"
    image, ids, segments = split.load(0)
    assert image.dtype == np.uint8 and image.shape == (H, W, 3) and ids.dtype == np.int32
    np.testing.assert_array_equal(image, _image())
    assert segments == [{"id": 7, "category": 2, "iscrowd": 0, "isthing": True},
                        {"id": 300, "category": 2, "iscrowd": 0, "isthing": True},
                        {"id": 65536, "category": 0, "iscrowd": 0, "isthing": False},
                        {"id": 65537, "category": 1, "iscrowd": 0, "isthing": False},
                        {"id": 65536 + 4 + 3, "category": 3, "iscrowd": 1, "isthing": True}]
    assert ids[0, 7] == 0 and (ids == 0).sum() == 1  # the void pixel
    assert (ids == 7).sum() == 6 and (ids == 300).sum() == 6 and (ids == 65543).sum() == 2
    assert (ids == 65536).sum() == 15 and (ids == 65537).sum() == 48 - 1 - 15 - 6 - 6 - 2


def test_both_layouts_read_to_the_same_segments(tmp_path: Path) -> None:
    simple = open_panoptic_split(build_simple(tmp_path / "s"), "train")
    coco = open_panoptic_split(build_coco(tmp_path / "c"), "train")
    assert coco.layout == "coco" and coco.classes == CLASSES and coco.cat_ids == [5, 7, 11, 40]
    assert coco.isthing == simple.isthing and coco.thing_classes == simple.thing_classes
    (im1, ids1, seg1), (im2, ids2, seg2) = simple.load(0), coco.load(0)
    np.testing.assert_array_equal(im1, im2)
    np.testing.assert_array_equal(ids2, coco_ids())  # ids decoded from the RGB PNG, up to 90000
    assert _by_mask(ids1, seg1) == _by_mask(ids2, seg2)
    np.testing.assert_array_equal(semantic_map(ids1, seg1), LABEL.astype(np.int64))
    np.testing.assert_array_equal(semantic_map(ids2, seg2), LABEL.astype(np.int64))


def test_segment_id_encoding_by_hand(tmp_path: Path) -> None:
    # id = R + 256 G + 256^2 B: 300 = 44 + 256; 70000 = 112 + 256 * 17 + 65536; 16777215 = (255, 255, 255).
    rgb = np.array([[[0, 0, 0], [200, 0, 0], [44, 1, 0], [112, 17, 1], [255, 255, 255]]], np.uint8)
    expected = np.array([[0, 200, 300, 70000, 16777215]])
    np.testing.assert_array_equal(rgb_to_ids(rgb), expected)
    np.testing.assert_array_equal(ids_to_rgb(expected), rgb)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "p.png"), expected)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(DataError, match=r"gray\.png.*mode L.*RGB"):
        read_panoptic_png(tmp_path / "gray.png")


def test_training_targets_by_hand(tmp_path: Path) -> None:
    ds = PanopticDataset(open_panoptic_split(build_simple(tmp_path / "s"), "train"))
    image, t = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    torch.testing.assert_close(image, torch.from_numpy(_image()).permute(2, 0, 1).float() / 255)
    assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and isinstance(t["masks"], tv_tensors.Mask)
    # Car A covers columns 1-3, rows 2-3; car B columns 5-7, rows 4-5; the person crowd gives no instance.
    assert t["boxes"].tolist() == [[1, 2, 4, 4], [5, 4, 8, 6]]
    assert t["labels"].tolist() == [1, 1]  # car is thing_classes[0] -> label 1
    assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (2, H, W)
    np.testing.assert_array_equal(t["masks"][0].numpy(), (INST == 7).astype(np.uint8))
    np.testing.assert_array_equal(t["masks"][1].numpy(), (INST == 300).astype(np.uint8))
    assert type(t["semantic"]) is torch.Tensor and t["semantic"].dtype == torch.int64
    np.testing.assert_array_equal(t["semantic"].numpy(), LABEL)  # void 255, the crowd keeps class 3
    assert t["image_id"] == 1 and t["area"].tolist() == [6.0, 6.0] and t["iscrowd"].tolist() == [0, 0]


def test_targets_agree_across_layouts_and_collate(tmp_path: Path) -> None:
    a = PanopticDataset(open_panoptic_split(build_simple(tmp_path / "s"), "train"))[0]
    b = PanopticDataset(open_panoptic_split(build_coco(tmp_path / "c"), "train"))[0]
    torch.testing.assert_close(a[0], b[0])
    for key in ("boxes", "labels", "masks", "semantic"):
        torch.testing.assert_close(a[1][key].as_subclass(torch.Tensor), b[1][key].as_subclass(torch.Tensor))
    images, targets = collate_panoptic([a, b])
    assert len(images) == 2 and targets[1] is b[1]


def test_opening_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    root = build_simple(tmp_path / "s")
    (root / "instances" / "train" / "a.png").unlink()
    with pytest.raises(DataError, match=r"instances/train/a\.png: missing.*Add instances/train/<stem>\.png"):
        open_panoptic_split(root, "train")
    root = build_simple(tmp_path / "t")
    (root / "panoptic.json").write_text(json.dumps({"things": ["car", "bus"]}))
    with pytest.raises(DataError, match=r"panoptic\.json: thing classes \['bus'\] are not in classes\.txt"):
        open_panoptic_split(root, "train")
    (root / "panoptic.json").unlink()
    with pytest.raises(DataError, match=r"panoptic\.json: missing"):
        open_panoptic_split(root, "train")
    with pytest.raises(DataError, match="no images"):
        open_panoptic_split(root, "val")


def test_loading_errors_name_the_file(tmp_path: Path) -> None:
    root = build_simple(tmp_path / "s")
    inst = INST.copy()
    inst[0, 0] = 7  # instance 7 now also covers a sky (stuff) pixel
    Image.fromarray(inst.astype(np.uint16)).save(root / "instances" / "train" / "a.png")
    with pytest.raises(DataError, match=r"instances/train/a\.png.*instance ids \[7\] lie on stuff"):
        open_panoptic_split(root, "train").load(0)
    coco = build_coco(tmp_path / "c")
    path = coco / "annotations" / "panoptic_train.json"
    doc = json.loads(path.read_text())
    doc["annotations"][0]["segments_info"].pop(3)  # car B's entry
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"panoptic_train/a\.png: segment ids \[300\] are in the PNG but not in "):
        open_panoptic_split(coco, "train").load(0)
    doc["annotations"][0]["segments_info"][0]["category_id"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"panoptic_train\.json: .*category id 99 is not in 'categories'"):
        open_panoptic_split(coco, "train")


def test_an_instance_id_spanning_two_classes_is_refused(tmp_path: Path) -> None:
    root = build_simple(tmp_path / "s")
    label = LABEL.copy()
    label[2, 1] = 3  # one pixel of car A is now a person
    Image.fromarray(label).save(root / "labels" / "train" / "a.png")
    with pytest.raises(DataError, match=r"instance id 7 spans several classes \(car, person\)"):
        open_panoptic_split(root, "train").load(0)


def test_detect_task(tmp_path: Path, make_dataset, coco_root: Path) -> None:
    assert detect_task(build_simple(tmp_path / "s")) == "panoptic"
    assert detect_task(build_coco(tmp_path / "c")) == "panoptic"
    assert detect_task(make_dataset()) == "semantic"  # labels/ only
    assert detect_task(coco_root) == "instance"
    labels_only = build_simple(tmp_path / "x")
    (labels_only / "panoptic.json").unlink()  # labels/ + instances/ without panoptic.json: semantic as before
    assert detect_task(labels_only) == "semantic"


# --- transforms -------------------------------------------------------------------------------------------


def _coded_item() -> tuple[tv_tensors.Image, dict]:
    """A 16 x 20 item whose image encodes each pixel's position (R = x, G = y) so a crop can be located."""
    h, w = 16, 20
    yy, xx = np.mgrid[:h, :w]
    image = np.stack([xx * 10, yy * 10, np.zeros_like(xx)], 0).astype(np.float32) / 255
    masks = np.zeros((2, h, w), np.uint8)
    masks[0, 2:6, 3:9] = 1
    masks[1, 10:15, 12:19] = 1
    semantic = (xx // 5 + 4 * (yy // 8)).astype(np.int64)
    semantic[0, :] = 255
    m = torch.from_numpy(masks)
    from seglab.data.instance.dataset import tight_boxes

    target = {"boxes": tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=(h, w)),
              "labels": torch.tensor([1, 2]), "masks": tv_tensors.Mask(m),
              "semantic": SemanticMask(torch.from_numpy(semantic)), "image_id": 1}
    return tv_tensors.Image(torch.from_numpy(image)), target


def test_crop_keeps_masks_boxes_and_semantic_aligned() -> None:
    image, target = _coded_item()
    t = build_panoptic_train_transforms(8, scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0)
    moved = 0
    for seed in range(30):
        torch.manual_seed(seed)
        out_img, out = t(image, {k: v.clone() if torch.is_tensor(v) else v for k, v in target.items()})
        x0, y0 = round(float(out_img[0, 0, 0]) * 255 / 10), round(float(out_img[1, 0, 0]) * 255 / 10)
        moved += (x0, y0) != (0, 0)
        sem = target["semantic"][y0:y0 + 8, x0:x0 + 8]
        assert isinstance(out["semantic"], SemanticMask)
        torch.testing.assert_close(out["semantic"].as_subclass(torch.Tensor), sem.as_subclass(torch.Tensor))
        crop = target["masks"][:, y0:y0 + 8, x0:x0 + 8]
        keep = crop.flatten(1).any(1).bool()  # instances cropped away are dropped with their labels and boxes
        torch.testing.assert_close(out["masks"].as_subclass(torch.Tensor), crop[keep].as_subclass(torch.Tensor))
        assert out["labels"].tolist() == [lab for lab, k in zip([1, 2], keep.tolist(), strict=True) if k]
        for box, m in zip(out["boxes"].tolist(), out["masks"], strict=True):  # clamped boxes still hold their mask
            ys, xs = np.nonzero(m.numpy())
            assert box[0] <= xs.min() and box[1] <= ys.min() and box[2] >= xs.max() + 1 and box[3] >= ys.max() + 1
    assert moved > 10


def test_padding_is_void_for_semantic_and_zero_for_masks() -> None:
    image, target = _coded_item()
    t = build_panoptic_train_transforms((24, 28), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0)
    out_img, out = t(image, target)
    sem, masks = out["semantic"].as_subclass(torch.Tensor), out["masks"].as_subclass(torch.Tensor)
    assert sem.shape == (24, 28) and masks.shape == (2, 24, 28)
    assert (sem == 255).sum() == 24 * 28 - 16 * 20 + 20  # the padding plus the 20 void pixels of row 0
    assert (out_img == 0).all(0).sum() == 24 * 28 - 16 * 20 + 1  # the image pads with 0 ((0, 0) is black too)
    assert masks.sum() == target["masks"].sum()  # padding adds no mask pixels


def test_flip_and_rescale_move_semantic_with_the_masks() -> None:
    image, target = _coded_item()
    flip = build_panoptic_train_transforms((16, 20), scale=(1.0, 1.0), hflip=1.0, color_jitter=0.0)
    _, out = flip(image, {k: v.clone() if torch.is_tensor(v) else v for k, v in target.items()})
    torch.testing.assert_close(out["semantic"].as_subclass(torch.Tensor),
                               target["semantic"].as_subclass(torch.Tensor).flip(-1))
    assert out["boxes"].tolist() == [[20 - 9, 2, 20 - 3, 6], [20 - 19, 10, 20 - 12, 15]]
    double = build_panoptic_train_transforms((32, 40), scale=(2.0, 2.0), hflip=0.0, color_jitter=0.0)
    _, out = double(image, target)
    nearest = np.kron(target["semantic"].numpy(), np.ones((2, 2), np.int64))  # nearest: no class blending
    np.testing.assert_array_equal(out["semantic"].numpy(), nearest)
    np.testing.assert_array_equal(out["masks"].numpy(), np.kron(target["masks"].numpy(), np.ones((1, 2, 2), np.uint8)))


def test_dataset_with_transforms_returns_the_instance_path_types(tmp_path: Path) -> None:
    split = open_panoptic_split(build_simple(tmp_path / "s"), "train")
    ds = PanopticDataset(split, build_panoptic_train_transforms(4, scale=(1.0, 1.0), hflip=0.5))
    for i in range(10):
        torch.manual_seed(i)
        image, t = ds[0]
        assert image.shape == (3, 4, 4) and image.dtype == torch.float32
        assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and isinstance(t["masks"], tv_tensors.Mask)
        assert type(t["semantic"]) is torch.Tensor and t["semantic"].shape == (4, 4)
        assert len(t["boxes"]) == len(t["labels"]) == len(t["masks"]) == len(t["area"])
        assert all(m.any() for m in t["masks"])
        for m, c in zip(t["masks"], t["labels"], strict=True):  # each instance lies on its class in semantic
            assert set(t["semantic"][m.bool()].tolist()) == {[2, 3][int(c) - 1]}


# --- synthetic panoptic data ------------------------------------------------------------------------------


def test_synthetic_panoptic_is_deterministic_and_doctor_clean(tmp_path: Path) -> None:
    import hashlib

    from seglab.data.panoptic.checks import check_panoptic_dataset
    from seglab.data.panoptic.synthetic import PANOPTIC_CLASSES, make_panoptic

    def digest(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*.png"))}

    a = make_panoptic(tmp_path / "a", n_train=12, n_val=4, size=64, seed=3)
    b = make_panoptic(tmp_path / "b", n_train=12, n_val=4, size=64, seed=3)
    c = make_panoptic(tmp_path / "c", n_train=12, n_val=4, size=64, seed=4)
    assert digest(a) == digest(b) and len(digest(a)) == 3 * 16
    assert digest(a) != digest(c)
    assert detect_task(a) == "panoptic"
    report = check_panoptic_dataset(a, decode=True)
    assert report.errors == [] and report.warnings == [] and report.images == 16
    split = open_panoptic_split(a, "train")
    assert split.classes == list(PANOPTIC_CLASSES) and split.thing_classes == [3, 4, 5]
    for i in range(len(split)):
        _, ids, segments = split.load(i)
        stuff = [s for s in segments if not s["isthing"]]
        things = [s for s in segments if s["isthing"]]
        assert 1 <= len(stuff) <= 3 and 1 <= len(things) <= 4 and not any(s["iscrowd"] for s in segments)
        assert (ids > 0).all()  # no void: every pixel is sky, grass, water or a shape
        assert min((ids == s["id"]).sum() for s in things) >= 40 * (64 / 96) ** 2  # no sliver instances


def test_synthetic_panoptic_refuses_foreign_folders(tmp_path: Path) -> None:
    from seglab.data.panoptic.synthetic import make_panoptic

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="not made by `seglab data synth`"):
        make_panoptic(tmp_path / "x", n_train=1, n_val=1)
    root = make_panoptic(tmp_path / "y", n_train=3, n_val=1, size=32)
    make_panoptic(root, n_train=1, n_val=1, size=32)  # a smaller rerun leaves no stale files
    assert len(list((root / "instances" / "train").iterdir())) == 1
