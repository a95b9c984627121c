"""Loading Segment Anything from a local weight file: the model types, their files, and clear errors.

The model code is upstream's (``segment-anything``, the optional extra ``seglab[sam]``); seglab only picks
the architecture, reads the user's file weights-only and checks it before loading. Nothing is downloaded:
the weights come from the file the user names (``--sam-checkpoint``). A file of another type is reported
with the type it holds (its encoder depth and width give it away), so the fix is one flag.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from seglab.errors import CheckpointError, ConfigError, ModelError

INSTALL_HINT = "pip install 'seglab[sam]'  (or: pip install segment-anything)"


class SamNotInstalled(ModelError):
    """The optional extra ``seglab[sam]`` is not installed (exit code 2, with the command that installs it)."""


@dataclass(frozen=True)
class SamType:
    """One SAM architecture: how to build it and which file holds its weights.

    Attributes:
        name: the ``--sam-model`` value (``vit_b``, ...).
        depth, width: blocks and embedding width of the image encoder (how a file's type is recognised).
        file: the file name the authors publish the weights under; size: its size, to recognise it by.
        builder: returns the untrained model; ``None`` uses upstream's ``sam_model_registry[name]``.
    """

    name: str
    depth: int
    width: int
    file: str
    size: str
    builder: Callable[[], nn.Module] | None = None

    def build(self) -> nn.Module:
        """A fresh (untrained) model of this type, in eval mode."""
        if self.builder is not None:
            return self.builder().eval()
        return require_segment_anything().sam_model_registry[self.name](checkpoint=None).eval()


# The published SAM checkpoints (segment-anything's README); the files are downloaded by hand, never by seglab.
SAM_TYPES: dict[str, SamType] = {
    "vit_b": SamType("vit_b", 12, 768, "sam_vit_b_01ec64.pth", "about 375 MB"),
    "vit_l": SamType("vit_l", 24, 1024, "sam_vit_l_0b3195.pth", "about 1.25 GB"),
    "vit_h": SamType("vit_h", 32, 1280, "sam_vit_h_4b8939.pth", "about 2.56 GB"),
}


def register_sam_type(kind: SamType) -> None:
    """Add an architecture (a fine-tuned variant, or a tiny one in tests); a name already taken raises."""
    if kind.name in SAM_TYPES:
        raise ConfigError(f"SAM model type {kind.name!r} is already registered.")
    SAM_TYPES[kind.name] = kind


def unregister_sam_type(name: str) -> None:
    """Remove an architecture added with :func:`register_sam_type` (the published ones stay)."""
    if name in ("vit_b", "vit_l", "vit_h"):
        raise ConfigError(f"{name!r} is a published SAM type and cannot be removed.")
    SAM_TYPES.pop(name, None)


def expected_files() -> str:
    """``vit_b: sam_vit_b_01ec64.pth (about 375 MB); ...``: what each type reads, for error messages."""
    return "; ".join(f"{k.name}: {k.file} ({k.size})" for k in SAM_TYPES.values())


def require_segment_anything() -> ModuleType:
    """The ``segment_anything`` module, or :class:`SamNotInstalled` saying how to install it."""
    try:
        import segment_anything
    except ImportError as e:
        raise SamNotInstalled(f"Segment Anything is not installed; it is the optional extra seglab[sam]. "
                              f"Install it with: {INSTALL_HINT}. Then pass the weights you downloaded with "
                              f"--sam-checkpoint PATH ({expected_files()}).") from e
    return segment_anything


def sam_type(name: str) -> SamType:
    """The registered type ``name``, or a ConfigError listing the valid ones with their files."""
    if name not in SAM_TYPES:
        raise ConfigError(f"--sam-model {name!r} is not a SAM model type; use one of {', '.join(SAM_TYPES)} "
                          f"({expected_files()}).")
    return SAM_TYPES[name]


def read_sam_state(path: str | os.PathLike, kind: SamType) -> dict[str, torch.Tensor]:
    """The state dict in a SAM weight file, read weights-only (no pickled code runs).

    Raises:
        CheckpointError: missing, unreadable, a seglab training checkpoint, a SAM 2 file, or not a dict of
            tensors (each message names the file and the file the type expects).
    """
    path = Path(path)
    want = f"--sam-model {kind.name} reads {kind.file} ({kind.size}) from the Segment Anything release"
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise CheckpointError(f"--sam-checkpoint {path}: {what}. {want}; download it by hand (seglab never "
                              f"downloads) and pass its path. Files by type: {expected_files()}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"--sam-checkpoint {path}: cannot read it as PyTorch weights ({type(e).__name__}). "
                              f"The file may be truncated (download it again) or not a SAM checkpoint; {want}.") from e
    if isinstance(state, dict) and "model_state" in state and "classes" in state:
        raise CheckpointError(f"--sam-checkpoint {path}: this is a seglab training checkpoint, not Segment "
                              f"Anything weights; {want}. Pass the seglab run as the model argument instead.")
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and any(
            "trunk" in k for k in state["model"]):
        raise CheckpointError(f"--sam-checkpoint {path}: this is a SAM 2 checkpoint; seglab[sam] runs SAM 1 "
                              f"(segment-anything). {want}.")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"--sam-checkpoint {path}: not a state dict of tensors; {want}.")
    return state


def encoder_shape(state: dict[str, torch.Tensor]) -> tuple[int, int] | None:
    """``(blocks, width)`` of the ViT image encoder a SAM state dict holds; None when it holds none."""
    patch = state.get("image_encoder.patch_embed.proj.weight")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))}
    if patch is None or patch.ndim != 4 or not blocks:
        return None
    return max(blocks) + 1, int(patch.shape[0])


def check_type(path: Path, state: dict[str, torch.Tensor], kind: SamType) -> None:
    """Refuse a file whose encoder is not ``kind``'s, naming the type it holds when one matches."""
    shape = encoder_shape(state)
    if shape is None:
        raise CheckpointError(f"--sam-checkpoint {path}: holds no SAM image encoder (no image_encoder.* "
                              f"weights); it is not a Segment Anything checkpoint. Files by type: {expected_files()}.")
    if shape == (kind.depth, kind.width):
        return
    match = [k for k in SAM_TYPES.values() if (k.depth, k.width) == shape]
    held = f"a {match[0].name} model" if match else "an encoder of no known type"
    fix = f"pass --sam-model {match[0].name}" if match else f"pass the {kind.file} file"
    raise CheckpointError(f"--sam-checkpoint {path}: holds {held} ({shape[0]} blocks of width {shape[1]}), but "
                          f"--sam-model {kind.name} expects {kind.depth} blocks of width {kind.width} ({kind.file}, "
                          f"{kind.size}); {fix}. Files by type: {expected_files()}.")


def fit_problems(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into ``model``: missing, unexpected and mis-shaped tensors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    out = []
    for what, names in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
        if names:
            out.append(f"{len(names)} tensor(s) {what} (e.g. {', '.join(names[:2])})")
    return out


def load_sam(checkpoint: str | os.PathLike, model_type: str = "vit_b",
             device: str | torch.device = "cpu") -> nn.Module:
    """Build SAM of ``model_type`` and load the weights of the local file ``checkpoint``.

    Returns:
        upstream's ``Sam`` module in eval mode on ``device``.

    Raises:
        SamNotInstalled: the extra is missing (the message says how to install it).
        ConfigError: an unknown ``model_type``.
        CheckpointError: a missing, unreadable or wrong file (the type it holds, and the file each type
            expects, are named).
    """
    from seglab.checkpoint import nonfinite_tensors

    require_segment_anything()
    kind = sam_type(model_type)
    path = Path(checkpoint)
    state = read_sam_state(path, kind)
    check_type(path, state, kind)
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"--sam-checkpoint {path}: {len(bad)} tensor(s) hold NaN/Inf (e.g. {bad[0]}); the "
                              f"file is damaged. Download {kind.file} again.")
    model = kind.build()
    problems = fit_problems(model, state)
    if problems:
        raise CheckpointError(f"--sam-checkpoint {path}: the weights do not fit SAM {kind.name}: "
                              f"{'; '.join(problems)}. Pass the {kind.file} file ({kind.size}).")
    model.load_state_dict(state)
    return model.to(device).eval()
