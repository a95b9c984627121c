"""Model zoo: every family registers itself in :mod:`seglab.models.registry` on import."""

import importlib

from seglab.models.registry import build_model, get_entry, list_models, register_model

# Every family module, imported so its ``@register_model`` builders run. A new family must be listed here;
# tests/test_architecture.py fails when a module that registers models is missing (docs/architecture.md).
_FAMILIES = ("unet", "fcn", "deeplab", "pspnet", "hrnet", "swin_unet", "lraspp", "maskrcnn", "panoptic")

for _family in _FAMILIES:
    importlib.import_module(f"seglab.models.{_family}")

from seglab.models.summary import count_parameters  # noqa: E402

__all__ = ["build_model", "count_parameters", "get_entry", "list_models", "register_model"]
