"""Look inside a network: capture a layer's feature maps and save them as a grid image.

The study guide's "visualize learned features" exercise: pick a layer by its module name
(``model.named_modules()``), run one input, keep what that layer produced.
"""

from __future__ import annotations

import difflib
import math
import os

import torch
from torch import nn

from seglab.errors import ModelError
from seglab.fileio import atomic_path


def capture_features(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Run ``model(x)`` in eval mode without gradients and return the output of submodule ``layer``.

    Args:
        model: any ``nn.Module``.
        x: input batch (N, C, H, W).
        layer: a name from ``model.named_modules()``, e.g. ``"stem"`` or ``"encoder.body.layer2"``.

    Returns:
        The layer's output (for tuple/list outputs, the first tensor), detached.

    Raises:
        ModelError: ``layer`` is not a submodule name; the message lists close and valid names.
    """
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        names = [n for n in modules if n]
        close = difflib.get_close_matches(layer, names, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelError(f"model has no layer {layer!r}.{hint} Some valid names: {', '.join(names[:12])} "
                         f"({len(names)} in all; see model.named_modules()).")
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        while isinstance(output, (list, tuple)):
            output = output[0]
        captured.append(output.detach())

    handle = modules[layer].register_forward_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise ModelError(f"layer {layer!r} did not run for this input (it may be unused in forward).")
    return captured[0]


def save_feature_grid(features: torch.Tensor, path: str | os.PathLike, max_channels: int = 16) -> None:
    """Save up to ``max_channels`` channels of (C, H, W) or (1, C, H, W) features as a grid PNG.

    Each channel is min-max scaled on its own, so weak and strong channels are both visible.
    """
    if features.ndim == 4:
        if features.shape[0] != 1:
            raise ModelError(f"save_feature_grid expects one image, got a batch of {features.shape[0]}; "
                             "pass features[0].")
        features = features[0]
    if features.ndim != 3:
        raise ModelError(f"save_feature_grid expects (C, H, W) features, got shape {tuple(features.shape)}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = features[:max_channels].float().cpu()
    n = maps.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            m = maps[i]
            ax.imshow(((m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)).numpy(), cmap="viridis")
            ax.set_title(f"ch {i}", fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=os.path.splitext(str(path))[1].lstrip(".") or "png", dpi=100)
    finally:
        plt.close(fig)
