"""The files ``seglab predict RUN`` writes for an instance checkpoint, from an instance bundle (no torch).

Per input ``<stem>.png`` (instance ids, 0 = background, painted with seglab's id palette) and ``<stem>.json``
(category id, class and score of each id), ``<stem>_color.png`` with ``--save index,color``; at the end
``predictions.json`` (every kept detection as COCO results) and ``predictions.csv`` (one row per input,
instances per class), as :class:`seglab.inference.writers.InstanceWriter` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seglab.runtime.bundle import Bundle
from seglab.runtime.instance import detect, instance_ids, to_coco
from seglab.runtime.outputs import BundleResult, colorize, gray_palette, save_rgb, write_table


class InstanceFiles:
    """Writes an instance bundle's predictions of a list of images under ``out``."""

    def __init__(self, bundle: Bundle, out: Path, formats: tuple[str, ...], score_threshold: float | None) -> None:
        self.bundle, self.out, self.formats = bundle, out, formats
        self.threshold = 0.5 if score_threshold is None else float(score_threshold)
        self.classes = bundle.classes
        self.cat_ids = [int(c) for c in bundle.meta.get("seglab.cat_ids") or range(len(bundle.classes))]
        palette = bundle.meta.get("seglab.id_palette256")
        self.palette = np.asarray(palette if palette is not None else gray_palette(), dtype=np.uint8).reshape(-1, 3)
        self.columns = ["file", "output", "image_id", "height", "width", "status", "detections", "instances"] + \
            [f"count_{c}" for c in self.classes[1:]]

    @staticmethod
    def names(stem: str, formats: tuple[str, ...]) -> list[str]:
        """The files one input's outputs take."""
        return [f"{stem}.png", f"{stem}.json"] + [f"{stem}_{f}.png" for f in formats if f != "index"]

    def write_all(self, paths: list[Path], failures: list[tuple[str, str]], stems: dict[Path, str],
                  callback: Callable[[int, int], None] | None) -> BundleResult:
        """Predict and write every path; rows for ``failures`` (inputs naming no image) come first."""
        from seglab.data.io import read_image
        from seglab.fileio import atomic_write_text

        detections: list[dict] = []
        image_id = 0

        def write_one(path: Path) -> dict:
            nonlocal image_id
            inst = detect(self.bundle, read_image(path, channels=3), self.threshold)
            image_id += 1
            row = self._write(path, stems[path], inst, image_id)
            detections.extend(to_coco(inst, image_id, self.cat_ids))
            return row

        written = write_table(self.out / "predictions.csv", self.columns, paths, failures, write_one, callback)
        atomic_write_text(self.out / "predictions.json", json.dumps(detections) + "\n")
        return BundleResult(self.out, written, failures, self.out / "predictions.csv",
                            detections=self.out / "predictions.json")

    def _write(self, path: Path, stem: str, inst: dict, image_id: int) -> dict:
        from seglab.data.io import write_label
        from seglab.fileio import atomic_write_text

        ids, kept = instance_ids(inst["masks"], inst["scores"])
        write_label(self.out / f"{stem}.png", ids, palette=self.palette)
        labels = inst["labels"][kept].tolist()
        record = {"labels": [self.cat_ids[c] for c in labels], "classes": [self.classes[c] for c in labels],
                  "scores": [round(float(v), 4) for v in inst["scores"][kept]]}
        atomic_write_text(self.out / f"{stem}.json", json.dumps(record) + "\n")
        if "color" in self.formats:
            save_rgb(self.out / f"{stem}_color.png", colorize(ids, self.palette, None))
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(self.classes))
        return {"file": str(path), "output": f"{stem}.png", "image_id": image_id, "height": ids.shape[0],
                "width": ids.shape[1], "status": "ok", "detections": len(inst["labels"]), "instances": len(labels),
                **{f"count_{c}": int(counts[i]) for i, c in enumerate(self.classes) if i > 0}}

