"""A synthetic stand-in for issue 25's medical photographs: one large dark textured object per image, plus a dark
vignette in the corners that is *not* the object (2 classes). A case for the plan nobody tuned it on (item 6).

Each 765x575 RGB image has a skin-toned, mottled background; one blob (an ellipse with a wavy rim, 25-55% of
the image) that is darker and browner than the background, with its own blotches; and a circular aperture
whose corners fall to 15-30% of the skin's brightness,
about as dark as the object. A global gray threshold therefore marks the
corners as object; seeing the whole scene (its shape and place) is what tells them apart. Seeded, so the same
command writes the same PNGs; the data goes to a folder you name, never into the repository:

    python benchmarks/recipe/vignette_synth.py /tmp/vignette --train 60 --val 20 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

W, H = 765, 575


def _smooth_noise(rng: np.random.Generator, radius: float) -> np.ndarray:
    """Zero-mean, unit-range noise blurred to blobs about ``radius`` px across (PIL's blur: no scipy needed)."""
    raw = Image.fromarray((rng.random((H, W)) * 255).astype(np.uint8))
    field = np.asarray(raw.filter(ImageFilter.GaussianBlur(radius)), np.float32)
    return (field - field.mean()) / (np.ptp(field) + 1e-6)


def _blob(rng: np.random.Generator) -> np.ndarray:
    """A filled ellipse with a wavy rim (a few random harmonics of the radius), centred near the middle."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cx, cy = W / 2 + rng.uniform(-0.12, 0.12) * W, H / 2 + rng.uniform(-0.12, 0.12) * H
    a, b = rng.uniform(0.26, 0.40) * W, rng.uniform(0.28, 0.42) * H
    angle = np.arctan2((yy - cy) / b, (xx - cx) / a)
    wave = 1 + sum(rng.uniform(0, 0.05) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in range(2, 7))
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= wave ** 2


def sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image (uint8, HxWx3) and its label (uint8, 1 = object)."""
    mask = _blob(rng)
    skin = np.array([rng.uniform(190, 225), rng.uniform(145, 175), rng.uniform(120, 150)], np.float32)
    img = skin * (1 + 0.18 * _smooth_noise(rng, 25))[..., None] * (1 + 0.06 * _smooth_noise(rng, 3))[..., None]
    dark = rng.uniform(0.30, 0.42)
    tone = np.array([1.0, 0.85, 0.75], np.float32)  # a little browner than the skin
    blotch = 1 + 0.45 * _smooth_noise(rng, 8) + 0.25 * _smooth_noise(rng, 2)
    soft = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(6)),
                      np.float32)[..., None] / 255
    img = img * (1 - soft) + img * dark * tone * blotch[..., None] * soft
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.hypot((xx - W / 2) / (W / 2), (yy - H / 2) / (H / 2))  # 1 at the middle of each side, 1.41 at a corner
    edge = rng.uniform(0.98, 1.12)
    vignette = np.clip(1 - (r - edge) / 0.2, rng.uniform(0.15, 0.3), 1.0)[..., None]
    img = img * vignette + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def write(dst: Path, train: int, val: int, seed: int) -> None:
    """images/{train,val}/*.png, labels/{train,val}/*.png and classes.txt under ``dst``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        (dst / "images" / split).mkdir(parents=True, exist_ok=True)
        (dst / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, label = sample(rng)
            Image.fromarray(img).save(dst / "images" / split / f"{split}_{i:03d}.png")
            Image.fromarray(label, mode="L").save(dst / "labels" / split / f"{split}_{i:03d}.png")
    (dst / "classes.txt").write_text("background\nobject\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dst", type=Path, help="a new folder outside the repository")
    ap.add_argument("--train", type=int, default=60)
    ap.add_argument("--val", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    write(a.dst, a.train, a.val, a.seed)


if __name__ == "__main__":
    main()
