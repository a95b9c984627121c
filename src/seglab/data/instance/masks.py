"""Instance-mask folder dataset: ``masks/<split>/<stem>.png`` (0 = background, k = instance k) + ``<stem>.json``.

``<stem>.json`` = ``{"labels": [c_1, ..., c_n]}``, the category id of each instance; names come from
``classes.txt`` read by :func:`seglab.data.layout.category_names` (the background and id-offset rule is
there). Items are the same detection targets as :class:`seglab.data.instance.coco.CocoInstances`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.data.instance.dataset import InstanceDataset
from seglab.data.io import read_image, read_label
from seglab.data.layout import category_names, list_split, read_classes, read_instance_labels
from seglab.errors import DataError

MAX_MASK_BYTES = 2**31  # the per-image instance masks one item may allocate


class InstanceMaskFolder(InstanceDataset):
    """Instance-mask folder (``masks/<split>/<stem>.png`` + ``<stem>.json``) with CocoInstances' output.

    Image ids are 1-based positions in the sorted image list, the ids
    :func:`seglab.data.instance.convert.masks_to_coco` writes. A PNG without its JSON is accepted only when
    ``classes.txt`` names a single category (all instances get it).

    Raises:
        DataError: no images in the split, or a broken ``classes.txt``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transforms: Callable | None = None) -> None:
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.image_paths = list_split(self.root / "images" / split)
        if not self.image_paths:
            raise DataError(f"{self.root / 'images' / split}: no images. Expected images/{split}/<stem>.png "
                            f"with masks/{split}/<stem>.png beside it.")
        names = category_names(read_classes(self.root))
        if not names:  # no classes.txt: categories are whatever the JSON files use
            used = {c for p in self.image_paths for c in self.instance_labels(p, None) or []}
            names = {c: f"class_{c}" for c in sorted(used)}
        self.set_categories(names)

    def mask_path(self, image_path: Path) -> Path:
        """The instance-id PNG of an image."""
        return self.root / "masks" / self.split / f"{image_path.stem}.png"

    def instance_labels(self, image_path: Path, n: int | None) -> list[int] | None:
        """Category id of each of the ``n`` instances of an image, from its ``<stem>.json``.

        Without the JSON every instance gets the single category (when ``classes.txt`` names one); with
        ``n=None`` (count unknown) a missing JSON gives None instead of raising.

        Raises:
            DataError: the JSON is missing and there is more than one category; a JSON that is not
                ``{"labels": [ints > 0]}``.
        """
        js = self.mask_path(image_path).with_suffix(".json")
        if js.is_file():
            return read_instance_labels(js)
        if n is not None and len(self.cat_ids) == 2:
            return [self.cat_ids[1]] * n
        if n is None:
            return None
        raise DataError(f"{js}: missing; it lists the category of each instance ({{\"labels\": [...]}}). "
                        "Write it, or keep a single category in classes.txt.")

    def checked_labels(self, image_path: Path, n: int) -> list[int]:
        """:meth:`instance_labels` of an image with ``n`` instances: exactly ``n``, each a known category.

        Raises:
            DataError: naming the JSON: a wrong count, an unknown category id, or what ``instance_labels``
                raises.
        """
        labels, js = self.instance_labels(image_path, n), self.mask_path(image_path).with_suffix(".json")
        if len(labels) != n:
            raise DataError(f"{js}: {len(labels)} labels for {n} instances in the PNG. Give one category id "
                            "per instance id 1..n.")
        unknown = sorted(set(labels) - set(self.cat_ids[1:]))
        if unknown:
            raise DataError(f"{js}: category ids {unknown} are not in classes.txt ({self.cat_ids[1:]}). Fix "
                            "the ids or add the names to classes.txt.")
        return labels

    def __len__(self) -> int:
        return len(self.image_paths)

    def image_categories(self) -> list[set[int]]:
        """Category ids listed for each image (from its JSON; the single category when there is none)."""
        out = []
        for path in self.image_paths:
            labels = self.instance_labels(path, None)
            out.append(set(labels) if labels is not None else {self.cat_ids[1]})
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        path = self.image_paths[i]
        image = read_image(path)
        mask = self.mask_path(path)
        ids = read_label(mask)
        if ids.shape != image.shape[:2]:
            raise DataError(f"{mask}: mask is {ids.shape[1]}x{ids.shape[0]}, image {path.name} is "
                            f"{image.shape[1]}x{image.shape[0]}. Run `seglab data check --task instance`.")
        n = int(ids.max(initial=0))
        labels = self.checked_labels(path, n)
        if n * ids.size > MAX_MASK_BYTES:  # one byte per pixel per instance: refuse before allocating
            raise DataError(f"{mask}: {n} instance ids in a {ids.shape[1]}x{ids.shape[0]} mask would need "
                            f"{n * ids.size / 2**30:.1f} GiB of masks. Instance ids must be 1..N for the N "
                            "objects of the image; renumber them (or split the image).")
        masks = ids[None] == np.arange(1, n + 1)[:, None, None]
        return self.make_sample(image, masks, labels, i + 1)
