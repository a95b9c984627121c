"""The default palette's first 20 colours are far apart to the eye: every pair at least 20 CIEDE2000 apart.

CIEDE2000 is written out here from Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula:
implementation notes, supplementary test data, and mathematical observations", and checked against four pairs
of their published test data; sRGB -> CIELAB uses the sRGB standard's D65 matrix. No seglab code is in the
reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from seglab.viz import IGNORE_COLOR, default_palette


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, float), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, float), -1, 0)
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar**7 / (cbar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p, h2p = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    dh = h2p - h1p
    dh = np.where(c1p * c2p == 0, 0, np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh)))
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbar, cbarp, hsum = (l1 + l2) / 2, (c1p + c2p) / 2, h1p + h2p
    hbar = np.where(c1p * c2p == 0, hsum, np.where(np.abs(h1p - h2p) <= 180, hsum / 2,
                                                 np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(hbar - 30)) + 0.24 * np.cos(np.radians(2 * hbar))
         + 0.32 * np.cos(np.radians(3 * hbar + 6)) - 0.20 * np.cos(np.radians(4 * hbar - 63)))
    rt = -np.sin(np.radians(60 * np.exp(-(((hbar - 275) / 25) ** 2)))) * 2 * np.sqrt(cbarp**7 / (cbarp**7 + 25.0**7))
    sl = 1 + 0.015 * (lbar - 50) ** 2 / np.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    dl, dc = (l2 - l1) / sl, (c2p - c1p) / sc
    return np.sqrt(dl**2 + dc**2 + (d_h / sh) ** 2 + rt * dc * (d_h / sh))


@pytest.mark.parametrize(("lab1", "lab2", "want"), [  # Sharma et al. (2005), table 1, pairs 1, 7, 17, 25
    ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425), ((50, 0, 0), (50, -1, 2), 2.3669),
    ((50, 2.5, 0), (73, 25, -18), 27.1492), ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
])
def test_the_reference_formula_matches_published_pairs(lab1, lab2, want: float) -> None:
    assert float(ciede2000(np.array(lab1), np.array(lab2))) == pytest.approx(want, abs=1e-4)


def test_the_first_20_default_colours_are_perceptually_distinct() -> None:
    pal = default_palette(20, ignore_index=None)
    lab = srgb_to_lab(pal)
    d = ciede2000(lab[:, None], lab[None])
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 20.0, f"closest pair {pal[np.unravel_index(d.argmin(), d.shape)[0]]} ΔE00 {d.min():.1f}"
    # and none looks like the ignore colour or out-of-range white
    others = srgb_to_lab(np.array([IGNORE_COLOR, (255, 255, 255)]))
    assert ciede2000(lab[:, None], others[None]).min() >= 20.0
    # the palette's other promises: class 0 black, channels <= 224, 255 different class colours
    full = default_palette(256, ignore_index=None)
    assert tuple(full[0]) == (0, 0, 0) and full[:256].max() <= 224
    assert len({tuple(c) for c in full[:255]}) == 255
