"""One registry of model builders: ``name -> builder(num_classes, **options) -> nn.Module``."""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from seglab.config import coerce_value
from seglab.errors import ConfigError, ModelError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, task and the input size it is usually trained at."""

    name: str
    builder: Callable[..., nn.Module]
    task: str = "semantic"
    default_input: int = 512

    def options(self) -> dict[str, object]:
        """Keyword options of the builder and their defaults (``num_classes`` excluded)."""
        sig = inspect.signature(self.builder)
        return {k: p.default for k, p in sig.parameters.items() if k != "num_classes"}


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, task: str = "semantic", default_input: int = 512) -> Callable:
    """Decorator registering ``builder`` under ``name``; duplicate names are a bug and raise."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelEntry(name, builder, task, default_input)
        return builder

    return deco


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; unknown names list the valid ones and a close match."""
    _load_all()
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelError(f"unknown model {name!r}.{hint} Available: {', '.join(sorted(MODELS))}.")
    return MODELS[name]


def build_model(name: str, num_classes: int, **options: object) -> nn.Module:
    """Build a registered model. Unknown options raise a ``ModelError`` listing the accepted ones."""
    entry = get_entry(name)
    accepted = entry.options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ModelError(
            f"model {name!r} has no option(s) {', '.join(unknown)}. "
            f"Accepted options: {', '.join(sorted(accepted)) or 'none'}."
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"Expected `num_classes` to be a positive integer, but got {num_classes!r}.")
    options = check_options(entry, options)
    try:
        return entry.builder(num_classes=num_classes, **options)
    except (ValueError, TypeError, RuntimeError, KeyError) as e:
        # A builder (or torch inside it) refusing a value the types allowed, e.g. base_channels=-8.
        given = ", ".join(f"{k}={v!r}" for k, v in options.items() if k != "in_channels") or "defaults"
        raise ModelError(f"model {name!r} cannot be built with {given}: {e}. Check the values with "
                         "`seglab models` (options and their defaults).") from e


def check_options(entry: ModelEntry, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against the builder's annotations (``base_channels=abc`` is refused, 3 -> 3.0)."""
    hints, defaults = typing.get_type_hints(entry.builder), entry.options()
    checked = {}
    for key, value in options.items():
        example = f"Example: --model-opt {key}={defaults[key]!r}."
        try:
            checked[key] = coerce_value(f"{entry.name}.{key}", value, hints.get(key, Any))
        except ConfigError as e:
            raise ModelError(f"model option {str(e).removeprefix('config key ')} {example}") from e
        v, default = checked[key], defaults[key]
        if isinstance(v, int) and not isinstance(v, bool):
            # sizes (channels, depth, stride) default to a positive int; no int option takes a negative value
            low = 1 if isinstance(default, int) and not isinstance(default, bool) and default > 0 else 0
            if v < low:
                raise ModelError(f"model option `{entry.name}.{key}` must be >= {low}; got {v}. {example}")
    return checked


def list_models() -> list[ModelEntry]:
    """All registered models, sorted by name."""
    _load_all()
    return [MODELS[k] for k in sorted(MODELS)]


def _load_all() -> None:
    # Importing the model modules registers them; done lazily so `import seglab` stays cheap.
    import seglab.models  # noqa: F401


def is_instance_model(model: nn.Module) -> bool:
    """True for torchvision-style detectors (Mask R-CNN): they take a list of images, return dicts."""
    return hasattr(model, "roi_heads") and hasattr(model, "rpn")


def is_panoptic_model(model: nn.Module) -> bool:
    """True for panoptic models (Panoptic FPN, a merged pair): they say so with ``task = "panoptic"``."""
    return getattr(model, "task", None) == "panoptic"


def takes_image_lists(model: nn.Module) -> bool:
    """True for models called with a list of [0, 1] RGB images (detectors and panoptic models), False for
    semantic models, which take one normalised (N, C, H, W) batch."""
    return is_instance_model(model) or is_panoptic_model(model)
