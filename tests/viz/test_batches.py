"""train_batch.png: augmented training images as the loader gives them, drawn without moving the run's RNG."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from seglab.viz import augmented_batch, save_data_pictures, save_train_batch


def _semantic_task(root, crop: int = 40):
    from seglab.data.io import DEFAULT_MAX_PIXELS
    from seglab.engine.semantic import SemanticTask
    from seglab.engine.task import Augment

    return SemanticTask(str(root), augment=Augment(crop_size=crop, scale=(0.5, 2.0)), max_pixels=DEFAULT_MAX_PIXELS)


def test_the_batch_is_augmented_and_the_rngs_do_not_move(tiny_data) -> None:
    task = _semantic_task(tiny_data)
    before = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    images, masks = augmented_batch(task.train_set, task.collate(), n=8)
    after = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    assert images.shape == (8, 3, 40, 40) and masks.shape == (8, 40, 40)  # cropped (32 px images, padded)
    assert (masks == 255).any()  # the crop pads with ignore, which the picture shows in magenta


def test_semantic_batch_picture_size(tiny_data, tmp_path) -> None:
    task = _semantic_task(tiny_data)
    out = save_train_batch(tmp_path / "b.png", augmented_batch(task.train_set, task.collate(), n=8),
                           task.model_info())
    with Image.open(out) as im:
        w, h = im.size
    assert w == 1600  # 4 image | label pairs of 2 in
    assert 2 * 240 <= h < 2 * 240 + 150  # two rows of square cells, the title and a one-line legend


class _InstanceTrainSplit:
    """What :func:`save_data_pictures` reads of a task, for an instance training split alone."""

    def __init__(self, dataset) -> None:
        self.train_set, self.num_classes, self.classes = dataset, dataset.num_classes, list(dataset.classes)

    def model_info(self) -> dict:
        return {"task": "instance", "classes": self.classes, "ignore_index": 255, "palette": None}

    def collate(self):
        from seglab.data.instance.coco import collate_instances

        return collate_instances


def test_instance_batch_picture_and_both_data_pictures(mask_root, tmp_path) -> None:
    from seglab.data.instance.coco import open_instance_split
    from seglab.data.transforms import build_instance_train_transforms

    augment = build_instance_train_transforms(48, scale=(1.0, 1.0), hflip=0.5, color_jitter=0.0)
    save_data_pictures(tmp_path, _InstanceTrainSplit(open_instance_split(mask_root, "train", augment)))
    with Image.open(tmp_path / "train_batch.png") as im:
        assert im.size == (900, 310)  # 3 images in one row of 3 in
    with Image.open(tmp_path / "labels.png") as im:
        assert im.size == (1300, 320)  # 4 classes, no ignore row
