"""What ``seglab predict`` writes for a panoptic checkpoint: COCO panoptic PNGs + one JSON, and pictures.

``<stem>.png`` is the prediction as data in COCO's panoptic format (segment id = R + 256 G + 256^2 B, 0 =
void) and ``panoptic.json`` (written at the end) lists every image's ``segments_info`` with COCO category ids,
so the folder is a COCO panoptic prediction, and ``seglab evaluate --predictions OUT`` scores it (images are
numbered in prediction order, not with the dataset's ids: match them by ``file_name``).
``<stem>_<format>.png`` pictures (color, overlay, panel) draw each segment as a shade of its class colour with a
thin outline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError
from seglab.inference.naming import OutputNames
from seglab.inference.writers import PredictOptions, class_palette, save_rgb, semantic_only


def encode_ids(ids: np.ndarray) -> np.ndarray:
    """Segment ids ``(H, W)`` -> COCO panoptic RGB ``(H, W, 3)`` uint8 (id = R + 256 G + 256^2 B)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ConfigError(f"segment ids must lie in [0, 2^24); got {ids.min()}..{ids.max()}.")
    return np.stack([ids % 256, ids // 256 % 256, ids // 256**2], axis=-1).astype(np.uint8)


def segments_info(ids: np.ndarray, segments: list[dict], cat_ids: list[int]) -> list[dict]:
    """COCO ``segments_info`` of one prediction: id, category_id, iscrowd, area, bbox [x, y, w, h], score."""
    records = []
    for s in segments:
        ys, xs = np.nonzero(ids == int(s["id"]))
        if not len(xs):
            continue  # a listed segment the merge left without pixels is not a segment
        x0, y0 = int(xs.min()), int(ys.min())
        records.append({"id": int(s["id"]), "category_id": int(cat_ids[int(s["category"])]), "iscrowd": 0,
                        "area": len(xs), "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                        "score": round(float(s.get("score", 1.0)), 4)})
    return records


class PanopticWriter:
    """Writes one input's COCO panoptic PNG (and pictures), collects its ``segments_info`` for panoptic.json."""

    @staticmethod
    def refuse(info: CheckpointInfo, given: dict[str, Any]) -> None:
        """Semantic-only options, and --score-threshold: the merge's threshold is the model's own option."""
        semantic_only(info, given)
        if given.get("score_threshold") is not None:
            raise ConfigError(f"--score-threshold: {info.path} is a panoptic checkpoint; its merge keeps instances "
                              f"scoring >= {info.options.get('score_threshold', 0.5)} (the model option "
                              "score_threshold: set it when training with --model-opt, or with seglab merge "
                              "--score-threshold). Drop --score-threshold.")

    def __init__(self, out: Path, info: CheckpointInfo, options: PredictOptions, model: nn.Module) -> None:
        self.out, self.info, self.options, self.model = out, info, options, model
        self.classes, self.cat_ids = list(info.classes), list(info.cat_ids)
        self.things = {int(c) for c in info.options.get("thing_classes", [])}
        self.pictures = [fmt for fmt in options.formats if fmt != "index"]
        self.palette = class_palette(info)
        self.names = OutputNames(self.files, ["predictions.csv", "panoptic.json"])
        self.detections_path = out / "panoptic.json"
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.columns = ["file", "output", "image_id", "height", "width", "status", "segments", "things"] + \
            [f"count_{c}" for c in self.classes]

    def files(self, stem: str) -> list[str]:
        """The file names one input's outputs take."""
        return [f"{stem}.png"] + [f"{stem}_{fmt}.png" for fmt in self.pictures]

    def predict(self, items: Iterator[tuple[Path, np.ndarray]]) -> Iterator[tuple]:
        """``(path, image, result)`` per readable input (``result``: ``ids``, ``segments``, ``instances``)."""
        from seglab.inference.panoptic import predict_panoptic

        return predict_panoptic(self.model, items, batch_size=self.options.tiles.batch_size, resize=self.info.resize)

    def write(self, path: Path, image: np.ndarray, result: dict[str, Any]) -> dict:
        from seglab.fileio import atomic_path

        stem = self.names.stems[path]
        ids = np.asarray(result["ids"], dtype=np.int64)
        segments = [s for s in result["segments"] if (ids == int(s["id"])).any()]
        with atomic_path(self.out / f"{stem}.png") as tmp:
            from PIL import Image

            Image.fromarray(encode_ids(ids)).save(tmp, format="PNG")
        for fmt in self.pictures:
            self._picture(fmt, self.out / f"{stem}_{fmt}.png", path, image, ids, segments)
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": path.name, "height": int(ids.shape[0]),
                            "width": int(ids.shape[1])})
        self.annotations.append({"image_id": image_id, "file_name": f"{stem}.png",
                                 "segments_info": segments_info(ids, segments, self.cat_ids)})
        counts = np.bincount([int(s["category"]) for s in segments], minlength=len(self.classes))
        return {"file": str(path), "output": f"{stem}.png", "image_id": image_id, "height": ids.shape[0],
                "width": ids.shape[1], "status": "ok", "segments": len(segments),
                "things": sum(int(s["category"]) in self.things for s in segments),
                **{f"count_{c}": int(counts[i]) for i, c in enumerate(self.classes)}}

    def _picture(self, fmt: str, target: Path, path: Path, image: np.ndarray, ids: np.ndarray,
                 segments: list[dict]) -> None:
        from seglab import viz

        if fmt == "color":
            save_rgb(target, viz.colorize_panoptic(ids, segments, self.palette))
        elif fmt == "overlay":
            save_rgb(target, viz.overlay_panoptic(image, ids, segments, self.palette, self.options.alpha))
        else:
            viz.save_panoptic_panels(target, [(image, None, (ids, segments))], self.palette, self.classes,
                                     titles=[path.name])

    def finish(self) -> None:
        """panoptic.json: the images, each one's segments_info, and the categories (COCO panoptic format)."""
        from seglab.fileio import atomic_write_text

        categories = [{"id": int(c), "name": n, "isthing": int(i in self.things)}
                      for i, (n, c) in enumerate(zip(self.classes, self.cat_ids, strict=True))]
        record = {"images": self.images, "annotations": self.annotations, "categories": categories}
        atomic_write_text(self.detections_path, json.dumps(record) + "\n")
