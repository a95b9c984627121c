"""See inside a trained model: the strongest feature maps of chosen layers, and a class-activation map per class.

The CAM is Grad-CAM (Selvaraju et al., ICCV 2017) adapted to segmentation as in Vinogradova et al. (AAAI
2020): the score of class ``c`` is the sum of its logits over the pixels predicted as ``c`` (all pixels when
none is), the layer's activations ``A_k`` are weighted by the spatial mean of ``d score / d A_k``, and
``relu(sum_k w_k A_k)`` is upsampled to the image and scaled to [0, 1].
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seglab.errors import ModelError


def _module(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        names = [n for n in modules if n and n.count(".") <= 1]
        close = difflib.get_close_matches(layer, list(modules), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ModelError(f"model has no layer {layer!r}.{hint} Layers: {', '.join(names[:24])}"
                         + (" ..." if len(names) > 24 else "") + " (see model.named_modules()).")
    return modules[layer]


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out["out"] if isinstance(out, dict) else out


def layer_shapes(model: nn.Module, x: torch.Tensor, depth: int = 2) -> dict[str, tuple[int, ...]]:
    """Output shape of every module up to ``depth`` dots deep that returns a 4-D tensor, in forward order."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if name and name.count(".") < depth:
            def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor) and out.ndim == 4:
                    shapes.setdefault(name, tuple(out.shape))
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            _logits(model.eval(), x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def default_layers(model: nn.Module, x: torch.Tensor, num_classes: int) -> list[str]:
    """The deepest (smallest) feature map and the last full-resolution one before the classifier."""
    shapes = layer_shapes(model, x)
    if not shapes:
        raise ModelError("no layer of this model returns a (N, C, H, W) feature map; pass --layers.")
    deepest = min(shapes, key=lambda n: shapes[n][2] * shapes[n][3])
    full = [n for n, s in shapes.items() if s[2:] == tuple(x.shape[2:]) and s[1] != num_classes]
    last = full[-1] if full else list(shapes)[-1]
    return list(dict.fromkeys([deepest, last]))


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str, classes: Sequence[int]) -> torch.Tensor:
    """Grad-CAM maps ``(len(classes), H, W)`` in [0, 1] for one image ``x`` ``(1, C, H, W)`` at ``layer``."""
    saved: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        while isinstance(out, (list, tuple)):
            out = out[0]
        out.retain_grad()
        saved["a"] = out

    handle = _module(model, layer).register_forward_hook(hook)
    model.eval()
    maps = []
    try:
        for c in classes:
            model.zero_grad(set_to_none=True)
            logits = _logits(model, x.detach().requires_grad_(True))
            region = logits.argmax(1, keepdim=True) == c
            score = (logits[:, c : c + 1] * (region if region.any() else torch.ones_like(region))).sum()
            score.backward()
            a, g = saved["a"], saved["a"].grad
            if g is None:
                raise ModelError(f"layer {layer!r} is not on the path to the output; pick another with --layers.")
            cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
            cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]
            maps.append((cam / cam.max().clamp_min(1e-12)).detach())
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)  # leave no gradients behind in the caller's model
    return torch.stack(maps)


def strongest_channels(features: torch.Tensor, k: int = 16) -> torch.Tensor:
    """The ``k`` channels of ``(C, H, W)`` features with the largest mean absolute activation, strongest first."""
    order = features.abs().mean(dim=(1, 2)).argsort(descending=True)[:k]
    return features[order]


def inspect_image(model: nn.Module, image: torch.Tensor, out: str | os.PathLike, *, layers: Sequence[str] = (),
                  class_names: Sequence[str], mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None, cam_layer: str | None = None, channels: int = 16,
                  resize: int | None = None) -> list[Path]:
    """Write ``features_<layer>.png`` per layer and ``cam.png`` (a CAM per class) for one image under ``out``.

    Args:
        image: ``(C, H, W)`` float in [0, 1] (normalised here with ``mean``/``std``, as the model was trained).
        layers: module names (``model.named_modules()``); empty: :func:`default_layers`.
        cam_layer: the Grad-CAM layer; default the last of ``layers``.
        resize: the checkpoint's ``data.resize``: the image is inspected at the scale the model was trained on.
    """
    from seglab.data.resize import resize_long_side
    from seglab.models.features import capture_features, save_feature_grid
    from seglab.viz.inspect import save_cams

    image = resize_long_side(image.float(), resize)
    x = image[None].float()
    if mean is not None and std is not None:
        x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    layers = list(layers) or default_layers(model, x, len(class_names))
    out = Path(out)
    written = []
    for layer in layers:
        features = capture_features(model, x, layer)[0]
        path = out / f"features_{layer.replace('.', '_')}.png"
        save_feature_grid(strongest_channels(features, channels), path, max_channels=channels)
        written.append(path)
    cams = grad_cam(model, x, cam_layer or layers[-1], range(len(class_names)))
    written.append(save_cams(out / "cam.png", image, cams.numpy(), class_names, cam_layer or layers[-1]))
    return written


def mean_cam_inside(cam: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean CAM value inside ``mask`` and outside it (how much a class's map sits on its object)."""
    return float(cam[mask].mean()), float(cam[~mask].mean())
