"""Model zoo: every family registers itself in :mod:`seglab.models.registry` on import."""

from seglab.models.registry import build_model, get_entry, list_models, register_model

__all__ = ["build_model", "get_entry", "list_models", "register_model"]
