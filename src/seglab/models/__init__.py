"""Model zoo: every family registers itself in :mod:`seglab.models.registry` on import."""

import importlib

from seglab.models.registry import build_model, get_entry, list_models, register_model

_FAMILIES = ("unet", "fcn", "deeplab", "pspnet", "hrnet", "swin_unet", "lraspp", "maskrcnn", "panoptic")

for _family in _FAMILIES:
    try:
        importlib.import_module(f"seglab.models.{_family}")
    except ModuleNotFoundError as _e:  # a family not written yet is skipped; a missing dependency is not
        if _e.name != f"seglab.models.{_family}":
            raise

from seglab.models.summary import count_parameters  # noqa: E402

__all__ = ["build_model", "count_parameters", "get_entry", "list_models", "register_model"]
