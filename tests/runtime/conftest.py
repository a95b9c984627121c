"""The bundle of the shared tiny U-Net run (``semantic_bundle`` in tests/conftest.py), under a local name."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundle_path(semantic_bundle: Path) -> Path:
    return semantic_bundle
