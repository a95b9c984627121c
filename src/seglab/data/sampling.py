"""Repeat-factor sampling (LVIS): images holding rare classes are drawn more often, for every task."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def repeat_factors(categories: Sequence[set[int]], threshold: float = 0.1) -> torch.Tensor:
    """LVIS repeat-factor sampling weights (Gupta et al. 2019) from the categories in each image.

    r_c = max(1, sqrt(t / f_c)) with f_c the fraction of images containing category c; an image's weight
    is the largest r_c of its categories (1 for an image without instances).
    """
    n = max(1, len(categories))
    freq: dict[int, float] = {}
    for cats in categories:
        for c in cats:
            freq[c] = freq.get(c, 0.0) + 1.0 / n
    r_c = {c: max(1.0, math.sqrt(threshold / f)) for c, f in freq.items()}
    return torch.tensor([max((r_c[c] for c in cats), default=1.0) for cats in categories], dtype=torch.float64)
