"""Shared fixtures: a seeded RNG, one torch thread, tiny semantic-model options, the shared datasets folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# Small settings per semantic model so building, training a step or exporting each stays seconds on 2 cores.
TINY_SEMANTIC: dict[str, dict] = {
    "unet": {"base_channels": 8},
    "unet_resnet34": {"base_channels": 8},
    "fcn32s": {"base_channels": 4, "fc_channels": 16},
    "fcn16s": {"base_channels": 4, "fc_channels": 16},
    "fcn8s": {"base_channels": 4, "fc_channels": 16},
    "deeplabv3": {"encoder": "resnet18", "channels": 16},
    "deeplabv3plus": {"encoder": "resnet18", "channels": 16, "low_channels": 8},
    "pspnet": {"encoder": "resnet18", "channels": 16},
    "hrnet_w18": {"encoder": "hrnet_w18_small"},
    "hrnet_w18_small": {},
    "swin_unet": {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2), "base_channels": 8},
    "lraspp_mobilenet_v3": {"encoder": "mobilenetv3_small_050", "inter_channels": 16},
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for the test: small tensors and detection graphs (many small ops) only
    contend for extra threads on a shared 2-core machine (up to 8x slower). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_semantic() -> dict[str, dict]:
    """Small constructor options per semantic model name (``{}`` default for names not listed); read only."""
    return TINY_SEMANTIC


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is absent (only on seglab developer machines and CI)")
    return SHARED_DATASETS
