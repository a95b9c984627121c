"""SegmentationFolder: dtypes, shapes and values for every image and label format, transforms, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.data import SegmentationFolder
from seglab.errors import ConfigError, DataError

LABEL = (np.arange(48).reshape(6, 8) % 3).astype(np.uint8)


def _one_pair(tmp_path: Path, image: Image.Image, label: Image.Image, image_name: str = "x.png") -> Path:
    root = tmp_path / "one"
    (root / "images/train").mkdir(parents=True)
    (root / "labels/train").mkdir(parents=True)
    image.save(root / "images/train" / image_name)
    label.save(root / "labels/train/x.png")
    return root


def test_rgb_png_and_l_label_values(make_dataset) -> None:
    root = make_dataset()
    ds = SegmentationFolder(root, "train")
    image, mask = ds[1]
    expected = np.asarray(Image.open(root / "images/train/b.png"), dtype=np.float32) / 255.0
    assert image.dtype == torch.float32 and image.shape == (3, 6, 8)
    assert mask.dtype == torch.int64 and mask.shape == (6, 8)
    assert type(image) is torch.Tensor and type(mask) is torch.Tensor
    assert torch.allclose(image, torch.from_numpy(expected).permute(2, 0, 1))
    assert torch.equal(mask, torch.from_numpy(LABEL.astype(np.int64)))


def test_layout_attributes(make_dataset) -> None:
    root = make_dataset(n=3)
    (root / "palette.txt").write_text("0 0 0\n255 0 0\n0, 255, 0\n")
    ds = SegmentationFolder(root, "train")
    assert len(ds) == 3
    assert ds.stems == ["a", "b", "c"]
    assert ds.samples[2] == (root / "images/train/c.png", root / "labels/train/c.png")
    assert ds.classes == ["sky", "road", "car"] and ds.num_classes == 3
    assert ds.palette.dtype == np.uint8
    assert ds.palette.tolist() == [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def test_classes_without_classes_file(make_dataset) -> None:
    root = make_dataset(classes=False)
    unknown = SegmentationFolder(root, "train")
    assert unknown.num_classes is None and unknown.classes == [] and unknown.palette is None
    known = SegmentationFolder(root, "train", num_classes=4)
    assert known.num_classes == 4 and known.classes == ["class_0", "class_1", "class_2", "class_3"]


def test_palette_label_reads_indices_not_colors(tmp_path) -> None:
    label = Image.fromarray(LABEL)
    label.putpalette([10, 20, 30, 200, 0, 0, 0, 200, 0])
    root = _one_pair(tmp_path, Image.fromarray(np.zeros((6, 8, 3), np.uint8)), label)
    assert Image.open(root / "labels/train/x.png").mode == "P"
    _, mask = SegmentationFolder(root, "train", num_classes=3)[0]
    assert torch.equal(mask, torch.from_numpy(LABEL.astype(np.int64)))


def test_16_bit_label(tmp_path) -> None:
    wide = LABEL.astype(np.uint16) * 150  # 0, 150, 300
    root = _one_pair(tmp_path, Image.fromarray(np.zeros((6, 8, 3), np.uint8)), Image.fromarray(wide))
    assert Image.open(root / "labels/train/x.png").mode == "I;16"
    _, mask = SegmentationFolder(root, "train", num_classes=301)[0]
    assert mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(wide.astype(np.int64)))


def test_gray_image_is_promoted_or_kept(tmp_path) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    root = _one_pair(tmp_path, Image.fromarray(gray), Image.fromarray(LABEL))
    rgb, _ = SegmentationFolder(root, "train")[0]
    assert rgb.shape == (3, 6, 8)
    for c in range(3):
        assert torch.allclose(rgb[c], torch.from_numpy(gray / 255.0).float())
    one, _ = SegmentationFolder(root, "train", in_channels=1)[0]
    assert one.shape == (1, 6, 8) and torch.allclose(one[0], rgb[0])


@pytest.mark.parametrize("name", ["x.png", "x.tif"])
def test_rgba_and_tiff_images_drop_alpha(tmp_path, name) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (6, 8, 4), dtype=np.uint8)
    root = _one_pair(tmp_path, Image.fromarray(rgba), Image.fromarray(LABEL), name)
    image, _ = SegmentationFolder(root, "train")[0]
    assert image.shape == (3, 6, 8)
    assert torch.allclose(image, torch.from_numpy(rgba[..., :3] / 255.0).float().permute(2, 0, 1))


def test_jpeg_image_matches_pillow_decode(tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    root = _one_pair(tmp_path, Image.fromarray(rgb), Image.fromarray(LABEL), "x.jpg")
    image, mask = SegmentationFolder(root, "train")[0]
    reference = np.asarray(Image.open(root / "images/train/x.jpg").convert("RGB")) / 255.0
    assert torch.allclose(image, torch.from_numpy(reference).float().permute(2, 0, 1))
    assert mask.shape == (6, 8)


def test_transforms_get_tv_tensors_and_move_both(make_dataset) -> None:
    root = make_dataset()
    seen = {}

    def flip(image, mask):
        seen.update(image=(type(image), image.dtype, tuple(image.shape)), mask=(type(mask), mask.dtype))
        return v2.RandomHorizontalFlip(p=1.0)(image, mask)

    image, mask = SegmentationFolder(root, "train", transforms=flip)[0]
    plain_image, plain_mask = SegmentationFolder(root, "train")[0]
    assert seen == {"image": (tv_tensors.Image, torch.uint8, (3, 6, 8)), "mask": (tv_tensors.Mask, torch.int64)}
    assert type(image) is torch.Tensor and type(mask) is torch.Tensor
    assert image.dtype == torch.float32 and mask.dtype == torch.int64
    assert torch.equal(image, plain_image.flip(-1)) and torch.equal(mask, plain_mask.flip(-1))


def test_transform_output_that_is_already_float_is_kept(make_dataset) -> None:
    root = make_dataset()
    normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])
    image, _ = SegmentationFolder(root, "train", transforms=lambda i, m: (normalize(i), m))[0]
    plain, _ = SegmentationFolder(root, "train")[0]
    assert torch.allclose(image, (plain - 0.5) / 0.25, atol=1e-6)


def test_dataloader_batches(make_dataset) -> None:
    ds = SegmentationFolder(make_dataset(n=4), "train")
    images, masks = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 6, 8) and masks.shape == (4, 6, 8) and masks.dtype == torch.int64


def test_broken_split_raises_data_error_pointing_to_the_doctor(make_dataset) -> None:
    root = make_dataset()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "labels/train/a.png")
    (root / "labels/train/b.png").unlink()
    with pytest.raises(DataError) as info:
        SegmentationFolder(root, "train")
    message = str(info.value)
    assert "2 problem(s)" in message and "a.png" in message and "b.png" in message
    assert f"seglab data check {root} --split train" in message


def test_missing_split_raises(make_dataset) -> None:
    root = make_dataset()
    with pytest.raises(DataError, match="val"):
        SegmentationFolder(root, "val")
    with pytest.raises(DataError, match="split folder not found"):
        SegmentationFolder(root, "val", check=False)


def test_unchecked_dataset_pairs_what_it_can_and_checks_values_on_read(make_dataset) -> None:
    root = make_dataset(n=3)
    (root / "labels/train/c.png").unlink()
    bad = LABEL.copy()
    bad[0, 0] = 9
    Image.fromarray(bad).save(root / "labels/train/b.png")
    ds = SegmentationFolder(root, "train", check=False)
    assert ds.stems == ["a", "b"]
    assert ds[0][1].max() == 2
    with pytest.raises(DataError, match=r"b\.png: values \[9\]"):
        ds[1]


def test_bad_arguments(make_dataset) -> None:
    with pytest.raises(ConfigError, match="in_channels"):
        SegmentationFolder(make_dataset(), "train", in_channels=2)


def test_shared_isbi_membrane(shared_datasets) -> None:
    ds = SegmentationFolder(shared_datasets / "isbi2012_membrane", "train")
    image, mask = ds[0]
    assert len(ds) == 20 and ds.classes == ["membrane", "cell"]
    assert image.shape == (3, 512, 512) and mask.shape == (512, 512)
    assert set(mask.unique().tolist()) <= {0, 1}
