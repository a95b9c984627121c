"""Statistics of an instance split: objects per class, images per class, object sizes (COCO's area buckets).

What a user decides from them: which classes are rare (``--sampler balanced``), whether the objects are
small for the model's input size (``min_size`` / ``max_size`` of Mask R-CNN), how crowded the images are.
COCO splits are counted from the JSON alone (``area``, else the box); mask folders from the id PNGs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.instance.checks import load_coco
from seglab.data.instance.masks import InstanceMaskFolder
from seglab.data.io import read_label

SMALL, MEDIUM = 32**2, 96**2  # COCO's area buckets (pixels): small < 32^2 <= medium < 96^2 <= large


def _coco_objects(root: Path, split: str) -> tuple[dict[int, str], int, list[tuple[int, int, float]]]:
    index = load_coco(root / "annotations" / f"instances_{split}.json", root / "images" / split)
    objects = []
    for _, a in index.annotations:
        if a.get("iscrowd", 0):
            continue
        area = a.get("area") or (a["bbox"][2] * a["bbox"][3] if "bbox" in a else 0.0)
        objects.append((a["image_id"], a["category_id"], float(area)))
    return index.categories, len(index.images), objects


def _mask_objects(root: Path, split: str) -> tuple[dict[int, str], int, list[tuple[int, int, float]]]:
    folder = InstanceMaskFolder(root, split)
    objects = []
    for i, path in enumerate(folder.image_paths):
        ids = read_label(folder.mask_path(path))
        areas = np.bincount(ids.ravel())[1:]
        labels = folder.checked_labels(path, len(areas))
        objects += [(i, int(c), float(a)) for c, a in zip(labels, areas, strict=True) if a > 0]
    names = dict(zip(folder.cat_ids[1:], folder.classes[1:], strict=True))
    return names, len(folder.image_paths), objects


def instance_stats(root: str | os.PathLike, split: str = "train") -> dict[str, Any]:
    """Objects per class, images per class, object areas (median, COCO small/medium/large) of a split.

    Returns:
        ``classes``, ``category_ids``, ``num_images``, ``num_objects``, ``objects_per_image`` (mean, max),
        ``object_size`` (percentiles ``p5``/``p50``/``p95`` of the square root of the area), and per class
        ``objects``, ``images``, ``median_area``, ``small``, ``medium``, ``large``.

    Raises:
        DataError: the split has no COCO file or mask folder, or a file the doctor would refuse.
    """
    root = Path(root)
    coco = (root / "annotations" / f"instances_{split}.json").is_file()
    names, n_images, objects = (_coco_objects if coco else _mask_objects)(root, split)
    cats = sorted(names)
    per_image = np.bincount([im for im, _, _ in objects]) if objects else np.zeros(1, int)
    rows = []
    for c in cats:
        areas = np.array([a for _, k, a in objects if k == c])
        rows.append({"objects": int(areas.size), "images": len({im for im, k, _ in objects if k == c}),
                     "median_area": float(np.median(areas)) if areas.size else float("nan"),
                     "small": int((areas < SMALL).sum()), "medium": int(((areas >= SMALL) & (areas < MEDIUM)).sum()),
                     "large": int((areas >= MEDIUM).sum())})
    return {"layout": "coco" if coco else "masks", "classes": [names[c] for c in cats], "category_ids": cats,
            "num_images": n_images, "num_objects": len(objects),
            "objects_per_image": {"mean": len(objects) / max(1, n_images), "max": int(per_image.max())},
            "object_size": _size_percentiles([a for _, _, a in objects]), "per_class": rows}


def _size_percentiles(areas: list[float]) -> dict[str, float]:
    """5th, 50th and 95th percentile of the objects' side (square root of the area, in pixels): what anchors
    must cover."""
    sides = np.sqrt(np.asarray(areas, float)) if areas else np.full(1, np.nan)
    return {f"p{q}": float(np.percentile(sides, q)) for q in (5, 50, 95)}
