"""Penn-Fudan as person/background *semantic* data: a case for the plan that nobody tuned it on (issue 25, item 6).

Every pedestrian instance becomes class 1 ("person"), the rest class 0; the shared train/val split is kept.
Images are written as PNG (the smp loop reads *.png only). The data goes to a folder you name, never into the
repository:

    python benchmarks/recipe/pennfudan_semantic.py ../shared/datasets/pennfudan /tmp/pf_semantic
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def convert(src: Path, dst: Path) -> dict[str, int]:
    """Write images/{split}/*.png, labels/{split}/*.png (0 background, 1 person) and classes.txt."""
    counts = {}
    for split in ("train", "val"):
        (dst / "images" / split).mkdir(parents=True, exist_ok=True)
        (dst / "labels" / split).mkdir(parents=True, exist_ok=True)
        masks = sorted((src / "masks" / split).glob("*.png"))
        for mask in masks:
            image = next((src / "images" / split).glob(mask.stem + ".*"))
            Image.open(image).convert("RGB").save(dst / "images" / split / f"{mask.stem}.png")
            person = (np.asarray(Image.open(mask)) > 0).astype(np.uint8)
            Image.fromarray(person, mode="L").save(dst / "labels" / split / f"{mask.stem}.png")
        counts[split] = len(masks)
    (dst / "classes.txt").write_text("background\nperson\n")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the shared pennfudan folder (images/, masks/)")
    ap.add_argument("dst", type=Path, help="a new folder outside the repository")
    a = ap.parse_args()
    print(convert(a.src, a.dst))


if __name__ == "__main__":
    main()
