"""Backbones as feature pyramids: any timm ``features_only`` model, or a torchvision ResNet (``tv_`` prefix).

An :class:`Encoder` returns one feature map per stage, shallow to deep, and states each stage's channels and
stride, so decoders are written once against that contract. Weights never download: ``pretrained`` is a
local file in timm or torchvision format (or an encoder's own ``state_dict``), checked key by key.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn
from torch.utils.checkpoint import checkpoint

from seglab.errors import ModelError

TV_RESNETS = ("tv_resnet18", "tv_resnet34", "tv_resnet50", "tv_resnet101", "tv_resnet152")
_TIMM_FEATURE_OPTIONS = ("features_only", "out_indices", "output_stride", "feature_location")


class Encoder(nn.Module):
    """A backbone returning ``len(channels)`` feature maps; stage ``i`` has ``channels[i]`` channels at
    stride ``strides[i]`` relative to the input."""

    channels: list[int]
    strides: list[int]

    def __init__(self, body: nn.Module, name: str) -> None:
        super().__init__()
        self.body = body
        self.name = name
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute stage activations during backward (timm's own switch where it has one)."""
        self.grad_checkpointing = enable
        if hasattr(self.body, "set_grad_checkpointing"):
            self.body.set_grad_checkpointing(enable)

    def full_model_keys(self) -> set[str]:
        """Every key of the complete classifier this encoder comes from (head included), for weight checks."""
        raise NotImplementedError


class TimmEncoder(Encoder):
    """A timm model created with ``features_only=True`` (NHWC outputs, e.g. Swin, are permuted to NCHW)."""

    def __init__(self, name: str, in_channels: int, output_stride: int | None, depth: int | None,
                 **timm_options: object) -> None:
        kwargs: dict[str, object] = dict(timm_options)
        if output_stride is not None:
            kwargs["output_stride"] = output_stride
        if depth is not None:
            kwargs["out_indices"] = tuple(range(depth))
        if name.startswith("hrnet"):
            kwargs.setdefault("feature_location", "")  # the raw branches, not the classifier's widened ones
        if name.startswith("swin"):
            kwargs.setdefault("strict_img_size", False)  # any input size; windows are padded inside
        try:
            body = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_channels,
                                     **kwargs)
        except RuntimeError as e:
            raise ModelError(_unknown_encoder_message(name, e)) from e
        except (TypeError, ValueError, AssertionError) as e:
            raise ModelError(f"encoder {name!r} does not accept these options {kwargs}: {e}") from e
        super().__init__(body, name)
        self.channels = list(body.feature_info.channels())
        self.strides = list(body.feature_info.reduction())
        self._options = {k: v for k, v in kwargs.items() if k not in _TIMM_FEATURE_OPTIONS}
        self._in_channels = in_channels
        # timm states the layout (Swin gives NHWC); shape guessing would fail whenever H equals C.
        self._nhwc = str(getattr(body, "output_fmt", "NCHW")).endswith("NHWC")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps (N, channels[i], H / strides[i], W / strides[i]) for input (N, C, H, W)."""
        feats = self.body(x)
        if self._nhwc:
            return [f.permute(0, 3, 1, 2) for f in feats]
        return list(feats)

    def full_model_keys(self) -> set[str]:
        """Keys of the plain timm classifier (built on the meta device, so free)."""
        with torch.device("meta"):
            full = timm.create_model(self.name, pretrained=False, in_chans=self._in_channels, **self._options)
        return set(full.state_dict())


class TorchvisionResNetEncoder(Encoder):
    """``torchvision.models.resnet*`` without avgpool/fc; state-dict keys stay in torchvision format."""

    def __init__(self, name: str, in_channels: int, output_stride: int | None, depth: int | None) -> None:
        dilate = {None: None, 32: None, 16: [False, False, True], 8: [False, True, True]}
        if output_stride not in dilate:
            raise ModelError(f"encoder {name!r}: output_stride={output_stride} is not supported; "
                             "use 8, 16 or 32.")
        ctor = getattr(torchvision.models, name.removeprefix("tv_"))
        try:
            body = ctor(weights=None, replace_stride_with_dilation=dilate[output_stride])
        except NotImplementedError as e:  # BasicBlock resnets (18/34) cannot dilate in torchvision
            raise ModelError(f"encoder {name!r} cannot use output_stride={output_stride} (torchvision's "
                             f"basic-block ResNets do not dilate); use the timm name {name[3:]!r}.") from e
        if in_channels != 3:
            body.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        del body.avgpool, body.fc
        super().__init__(body, name)
        expansion = 4 if name in ("tv_resnet50", "tv_resnet101", "tv_resnet152") else 1
        stride_after = [2, 4, 8, 16, 32] if output_stride is None else [min(s, output_stride) for s in
                                                                        (2, 4, 8, 16, 32)]
        n = 5 if depth is None else depth
        self.channels = [64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion][:n]
        self.strides = stride_after[:n]
        self._ctor = ctor

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after the stem and after each of ``layer1..layer4`` (up to ``depth``)."""
        b = self.body
        x = b.relu(b.bn1(b.conv1(x)))
        feats = [x]
        x = b.maxpool(x)
        for layer in (b.layer1, b.layer2, b.layer3, b.layer4)[: len(self.channels) - 1]:
            use_ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
            x = checkpoint(layer, x, use_reentrant=False) if use_ckpt else layer(x)
            feats.append(x)
        return feats

    def full_model_keys(self) -> set[str]:
        """Keys of the complete torchvision classifier (with ``fc``)."""
        with torch.device("meta"):
            full = self._ctor(weights=None)
        return set(full.state_dict())


def build_encoder(name: str, in_channels: int = 3, pretrained: str | os.PathLike | None = None,
                  output_stride: int | None = None, depth: int | None = None,
                  **timm_options: object) -> Encoder:
    """Build a backbone by name: a timm model name, or ``tv_resnet18``..``tv_resnet152`` for torchvision.

    Args:
        name: timm model name (``resnet34``, ``efficientnet_b0``, ``convnext_tiny``, ``swin_tiny_...``).
        in_channels: input channels (1 for grayscale).
        pretrained: path to a local weight file; nothing is ever downloaded.
        output_stride: 8 or 16 dilates the last stages (DeepLab, PSPNet); None keeps the native stride.
        depth: number of stages to return, shallowest first (None: all).
        **timm_options: extra keyword arguments for ``timm.create_model`` (e.g. ``embed_dim`` for Swin).
    """
    if depth is not None and depth < 1:
        raise ModelError(f"encoder depth must be >= 1, got {depth}.")
    if name.startswith("tv_"):
        if name not in TV_RESNETS:
            raise ModelError(f"unknown torchvision encoder {name!r}; use one of {', '.join(TV_RESNETS)}.")
        if timm_options:
            raise ModelError(f"torchvision encoder {name!r} takes no extra options "
                             f"({', '.join(timm_options)}).")
        encoder: Encoder = TorchvisionResNetEncoder(name, in_channels, output_stride, depth)
    else:
        encoder = TimmEncoder(name, in_channels, output_stride, depth, **timm_options)
    if pretrained is not None:
        load_encoder_weights(encoder, pretrained)
    return encoder


def load_encoder_weights(encoder: Encoder, path: str | os.PathLike) -> None:
    """Load a local weight file into ``encoder`` with a strict key check.

    Accepts the classifier's own format (timm or torchvision, head keys ignored), the same wrapped in
    ``{"state_dict": ...}`` / ``{"model": ...}``, or ``encoder.state_dict()``. A first conv with a different
    number of input channels is adapted (timm's ``adapt_input_conv``).

    Raises:
        ModelError: the file is missing or unreadable, or keys are missing/unexpected or shapes differ.
    """
    state = _read_state_dict(Path(path))
    own = encoder.body.state_dict()
    by_norm = {_norm_key(k): k for k in own}
    full_keys = encoder.full_model_keys()
    head_keys = {_norm_key(k) for k in full_keys} - set(by_norm)
    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        k = _norm_key(key.removeprefix("module.").removeprefix("body."))
        if k in by_norm:
            mapped[by_norm[k]] = value
        elif k not in head_keys:
            unexpected.append(key)
    missing = sorted(set(own) - set(mapped))
    if missing or unexpected:
        raise ModelError(f"{path}: weights do not fit encoder {encoder.name!r}: missing keys "
                         f"{_few(missing)}; unexpected keys {_few(sorted(unexpected))}. Pass a state dict "
                         f"saved from the same architecture ({encoder.name}).")
    _adapt_shapes(mapped, own, path)
    encoder.body.load_state_dict(mapped, strict=True)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"{path}: pretrained weight file not found. Pass a local .pt/.pth/.safetensors "
                         "file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt files raise many types
        raise ModelError(f"{path}: cannot read weights ({type(e).__name__}: {e}).") from e
    for wrapper in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not a state dict of tensors. Save weights with "
                         "torch.save(model.state_dict()).")
    return state


def _adapt_shapes(mapped: dict[str, torch.Tensor], own: dict[str, torch.Tensor], path: object) -> None:
    from timm.models import adapt_input_conv

    for key, value in mapped.items():
        target = own[key].shape
        if value.shape == target:
            continue
        if value.ndim == 4 and value.shape[0] == target[0] and value.shape[2:] == target[2:]:
            adapted = adapt_input_conv(target[1], value.float(), base_chans=value.shape[1])
            mapped[key] = adapted.to(value.dtype)
            continue
        raise ModelError(f"{path}: weight {key!r} has shape {tuple(value.shape)} but the encoder expects "
                         f"{tuple(target)}. Check the encoder name and its options.")


def _norm_key(key: str) -> str:
    # timm's FeatureListNet flattens "layers.0" into "layers_0"; compare names with both separators equal.
    return key.replace("_", ".")


def _few(keys: list[str], n: int = 8) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _unknown_encoder_message(name: str, error: Exception) -> str:
    close = difflib.get_close_matches(name, timm.list_models(), n=3)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return (f"unknown encoder {name!r} ({error}).{hint} Use a timm model name with features_only support, "
            f"or one of {', '.join(TV_RESNETS)}.")
