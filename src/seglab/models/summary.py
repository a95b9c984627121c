"""Model size without building weights: parameter counts on the meta device (no memory, no init cost)."""

from __future__ import annotations

import torch

from seglab.models.registry import build_model


def count_parameters(name: str, num_classes: int, **options: object) -> int:
    """Number of parameters of ``build_model(name, num_classes, **options)``, built on the meta device.

    ``seglab models`` lists these counts; building on ``meta`` keeps the listing instant for big models.
    """
    with torch.device("meta"):
        model = build_model(name, num_classes, **options)
    return sum(p.numel() for p in model.parameters())
