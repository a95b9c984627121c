"""The plan's training scale: ``data.resize`` (a long side in px), the crop and the U-Net's depth, chosen from the
label geometry (:mod:`seglab.data.label_geometry`) so the large objects fit inside the crop and the receptive
field while the thinnest class stays a few pixels wide.

Why: on medical photographs (765x575, one large object each) a 256 px crop at full resolution held either the
dark vignette or part of the object, never the scene, and the model learned "dark = object" (test mIoU 0.659);
the same data downscaled 3x reached 0.841 in the same 12 minutes (issue 25). Thin structures pull the other
way: ISBI's membranes and CamVid's poles vanish when downscaled, so a thin class keeps native resolution.
"""

from __future__ import annotations

import math
from typing import Any

KEEP_WIDTH = 8.0  # px: the thinnest class (width 2 / boundary share) stays at least this wide (ISBI membranes: 7.7)
FIT = 0.75  # the large objects (90th percentile bounding-box side) take at most this share of the crop's side
WORTH = 0.9  # a resize to more than this share of the native long side is not worth its interpolation
MULTIPLE = 32  # sizes the U-Net's stride divides (depth 5)
# Theoretical receptive field (px) of the plan's U-Net (two 3x3 convolutions per stage) by depth, as
# `seglab models unet --input` computes it (models/layers.py; tests/engine/test_plan.py checks the table).
UNET_RF = {3: 96, 4: 200, 5: 408}
DEPTH = 4  # the U-Net's default depth, the one measured on ISBI and CamVid


def _objects(fp: Any) -> tuple[str, float] | None:
    """The class with the largest objects (90th percentile of its components' bounding-box side, as a fraction
    of the image's long side), leaving out the most frequent class (the background or the scene's main
    surface) and thin classes (lines and networks are not objects to see whole)."""
    if not fp.scale or not fp.frequencies:
        return None
    dominant = max(range(len(fp.frequencies)), key=fp.frequencies.__getitem__)
    thin = set(fp.thin)
    frac = [(s.frac_p90, c) for i, (c, s) in enumerate(zip(fp.classes, fp.scale, strict=True))
            if i != dominant and c not in thin and s.components]
    if not frac:
        return None
    value, name = max(frac)
    return name, value


def _thinnest(fp: Any) -> tuple[str, float] | None:
    widths = [(w, c) for c, w, f in zip(fp.classes, fp.widths, fp.frequencies, strict=True) if f > 0 and
              math.isfinite(w)]
    return (min(widths)[1], min(widths)[0]) if widths else None


def scale_rules(fp: Any, crop_max: int) -> tuple[list[tuple[str, Any, str]], int, str]:
    """``data.resize`` (when the scale changes) and ``data.crop_size`` with their reasons, and the U-Net depth
    with its reason (depth 4 unless a resize leaves objects wider than its receptive field)."""
    native = fp.long_sides[1] or max(fp.size)
    short = min(fp.size) if fp.size[0] else crop_max
    objects, thinnest = _objects(fp), _thinnest(fp)
    size = f"median image {fp.size[0]}x{fp.size[1]}"
    resize = None
    why = "; native resolution: no object class to fit (the most frequent class and thin classes are not " \
        "objects to see whole)" if fp.scale and not objects else ""
    if objects and native:
        name, frac = objects
        big = frac * native
        fit = FIT * crop_max / frac  # the long side at which the large objects take FIT of the crop
        floor = KEEP_WIDTH * native / thinnest[1] if thinnest else 0.0  # the long side keeping the thinnest class
        seen = (f"{name}'s large objects (90th percentile: {frac:.0%} of the image side, {big:.0f} px at the median "
                f"long side)")
        if fit >= WORTH * native:
            why = f"; {seen} fit a {crop_max} px crop at native resolution"
        elif floor >= WORTH * native:
            why = (f"; native resolution: the thinnest class ({thinnest[0]}, {thinnest[1]:.1f} px wide) must stay "
                   f"{KEEP_WIDTH:g} px wide, though {seen} exceed {FIT:.0%} of a {crop_max} px crop")
        else:  # rounded so the objects still fit, or the thin class stays wide enough
            resize = max(2 * MULTIPLE, int(fit // MULTIPLE * MULTIPLE if fit >= floor else
                                           -(-floor // MULTIPLE) * MULTIPLE))
            factor = resize / native
            kept = f", {thinnest[0]} {thinnest[1] * factor:.1f} px wide" if thinnest else ""
            why = (f"{seen} would not fit a {crop_max} px crop at native {native} px: long side {resize} px puts "
                   f"them at {frac * resize:.0f} px{kept}")
    factor = resize / native if resize else 1.0
    side = int(short * factor)
    crop = max(MULTIPLE, min(crop_max, side - side % MULTIPLE))
    whole = crop >= side - side % MULTIPLE and side - crop < MULTIPLE
    out = []
    if resize:
        out.append(("data.resize", resize, why + " (outputs return at the input's resolution)"))
        why = ""
    crop_why = (f"{size}{f', {resize} px long side' if resize else ''}: {crop} px crops "
                f"({'the full short side' if whole else 'validation on full images'}){why}")
    out.append(("data.crop_size", crop, crop_why))
    depth, depth_why = DEPTH, ""
    if resize and objects and objects[1] * resize > UNET_RF[DEPTH]:
        depth = 5 if crop % 32 == 0 else DEPTH
        depth_why = (f"; depth {depth}: the large objects span {objects[1] * resize:.0f} px after resizing, "
                     f"receptive field {UNET_RF[depth]} px (depth {DEPTH}: {UNET_RF[DEPTH]} px)")
    return out, depth, depth_why
