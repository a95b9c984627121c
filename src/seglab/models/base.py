"""The base every semantic model shares: pad the input to the model's stride, crop logits back, resize.

``SegmentationModel`` is the ~40-line contract of torchvision's segmentation models (backbone -> head ->
resize to the input, returning a tensor or ``{"out", "aux"}``) plus optional gradient checkpointing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) logits or features to ``size``; a no-op when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (N, C, H, W) on the bottom/right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


class SegmentationModel(nn.Module):
    """Base class: pad the input to ``self.stride``, run ``_forward``, crop logits back to (H, W).

    Subclasses set ``self.stride`` and implement ``_forward(x) -> Tensor | dict``; they call
    ``self.run(module, *args)`` for stages that gradient checkpointing may wrap.
    """

    stride: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute stage activations in backward to save memory (slower, same results)."""
        self.grad_checkpointing = enable
        for child in self.children():  # encoders switch their own (timm) checkpointing
            if hasattr(child, "set_grad_checkpointing"):
                child.set_grad_checkpointing(enable)

    def run(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        """Call ``module(*args)``, through ``torch.utils.checkpoint`` when checkpointing and training."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Logits (N, num_classes, H, W) for input (N, in_channels, H, W); ``{"out", "aux"}`` when training
        with an auxiliary head."""
        size = x.shape[-2:]
        out = self._forward(pad_to_multiple(x, self.stride))
        if isinstance(out, dict):
            return {k: v[..., : size[0], : size[1]] for k, v in out.items()}
        return out[..., : size[0], : size[1]]

    def _forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        raise NotImplementedError
