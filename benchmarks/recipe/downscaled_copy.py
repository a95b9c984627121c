"""The hand-downscaled arm of issue 25: a copy of a semantic dataset scaled down, and its predictions scaled back.

``copy``: every image (bilinear) and label (nearest) of ``SRC`` scaled by ``1 / factor`` into ``DST``; other files
(``classes.txt``, palettes) copied as they are. ``upsample``: predicted label PNGs scaled back (nearest) to the
sizes of the full-resolution labels, so ``seglab evaluate --predictions`` scores them where the rule's run is
scored. The data goes to folders you name, never into the repository:

    python benchmarks/recipe/downscaled_copy.py copy /tmp/vignette /tmp/vignette_ds3 --factor 3
    python benchmarks/recipe/downscaled_copy.py upsample preds /tmp/vignette/labels/val preds_full
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

SCALED = {"images": Image.BILINEAR, "labels": Image.NEAREST}


def copy(src: Path, dst: Path, factor: float) -> int:
    """Write the scaled copy; returns how many images and labels were scaled."""
    n = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.parts[0] in SCALED and path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
            image = Image.open(path)
            size = (max(1, round(image.width / factor)), max(1, round(image.height / factor)))
            image.resize(size, SCALED[rel.parts[0]]).save(target)
            n += 1
        else:
            shutil.copy(path, target)
    return n


def upsample(predictions: Path, labels: Path, out: Path) -> int:
    """Scale each predicted PNG to its full-resolution label's size (nearest); returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in sorted(predictions.glob("*.png")):
        reference = labels / path.name
        if reference.is_file():
            predicted = Image.open(path)
            predicted.resize(Image.open(reference).size, Image.NEAREST).save(out / path.name)
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("copy")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    c.add_argument("--factor", type=float, default=3.0)
    u = sub.add_parser("upsample")
    u.add_argument("predictions", type=Path)
    u.add_argument("labels", type=Path)
    u.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "copy":
        print(f"scaled {copy(args.src, args.dst, args.factor)} file(s) by 1/{args.factor:g} into {args.dst}")
    else:
        print(f"upsampled {upsample(args.predictions, args.labels, args.out)} prediction(s) into {args.out}")


if __name__ == "__main__":
    main()
