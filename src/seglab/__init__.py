"""seglab: image segmentation toolkit and CLI on PyTorch."""

__version__ = "0.1.0"

from seglab.errors import SeglabError  # noqa: E402
from seglab.models.registry import build_model  # noqa: E402

__all__ = ["SeglabError", "__version__", "build_model"]
