"""Shared fixtures: a seeded RNG, one torch thread, tiny semantic-model options, the shared datasets folder,
tiny datasets (tests/data, tests/engine and tests/cli) and trained-model stand-ins (tests/inference, tests/cli)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

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


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """seglab's cache (clean preflight scans) in a temporary folder, never the user's ~/.cache."""
    old = os.environ.get("SEGLAB_CACHE_DIR")
    os.environ["SEGLAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("seglab-cache"))
    yield
    if old is None:
        os.environ.pop("SEGLAB_CACHE_DIR", None)
    else:
        os.environ["SEGLAB_CACHE_DIR"] = old


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


# --- Tiny datasets shared by the library tests (tests/data, tests/engine) and tests/cli (end to end) ------
# Pillow and seglab are imported inside the fixtures, for the reason given below for the checkpoints.

NAMES = ("sky", "road", "car")


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Build ``tmp_path/ds`` with ``n`` RGB images (W x H = 8 x 6) and 'L' labels holding 0..K-1."""
    from PIL import Image

    def make(n: int = 2, splits: tuple[str, ...] = ("train",), k: int = len(NAMES), classes: bool = True) -> Path:
        root = tmp_path / "ds"
        rng = np.random.default_rng(0)
        for split in splits:
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)
            for stem in "abcdefgh"[:n]:
                image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
                label = (np.arange(48).reshape(6, 8) % k).astype(np.uint8)  # every class present
                Image.fromarray(image).save(root / "images" / split / f"{stem}.png")
                Image.fromarray(label).save(root / "labels" / split / f"{stem}.png")
        if classes:
            (root / "classes.txt").write_text("\n".join(NAMES[:k]) + "\n")
        return root

    return make


# The tiny instance dataset: per image, (category id, (y0, y1, x0, x1)) rectangles drawn in order as
# instance ids 1..n on a H x W canvas; "c" has no instance.
INSTANCE_H, INSTANCE_W = 40, 48
INSTANCE_RECTS = {
    "a": [(1, (2, 12, 5, 15)), (3, (20, 38, 30, 46))],
    "b": [(2, (0, 40, 0, 8)), (1, (10, 20, 20, 30)), (2, (25, 35, 10, 20))],
    "c": [],
}


@pytest.fixture
def instance_spec() -> SimpleNamespace:
    """What ``mask_root`` holds: ``H``, ``W`` and ``RECTS`` (read only)."""
    return SimpleNamespace(H=INSTANCE_H, W=INSTANCE_W, RECTS=INSTANCE_RECTS)


@pytest.fixture
def mask_root(tmp_path: Path) -> Path:
    """An instance-mask folder dataset ``tmp_path/inst`` (split train) with a background-first classes.txt."""
    from PIL import Image

    from seglab.data.io import write_label

    root, split = tmp_path / "inst", "train"
    (root / "images" / split).mkdir(parents=True)
    (root / "classes.txt").write_text("background\ncircle\nsquare\ntriangle\n")
    rng = np.random.default_rng(0)
    for stem, rects in INSTANCE_RECTS.items():
        image = rng.integers(0, 255, (INSTANCE_H, INSTANCE_W, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / split / f"{stem}.png")
        ids = np.zeros((INSTANCE_H, INSTANCE_W), np.uint8)
        for k, (_, (y0, y1, x0, x1)) in enumerate(rects, 1):
            ids[y0:y1, x0:x1] = k
        write_label(root / "masks" / split / f"{stem}.png", ids)
        (root / "masks" / split / f"{stem}.json").write_text(json.dumps({"labels": [c for c, _ in rects]}))
    return root


@pytest.fixture
def coco_root(mask_root: Path) -> Path:
    """``mask_root`` plus its COCO JSON ``annotations/instances_train.json`` (written by masks_to_coco)."""
    from seglab.data.instance.convert import masks_to_coco

    masks_to_coco(mask_root, "train", mask_root / "annotations" / "instances_train.json")
    return mask_root


def write_tiny_dataset(root: Path, n_train: int = 16, n_val: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A tiny semantic dataset written in seconds: bright squares (class 1) and dark discs (class 2)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(90, 130, (size, size, 3)).astype(np.uint8)
            lab = np.zeros((size, size), np.uint8)
            x0, y0 = rng.integers(0, size // 2, 2)
            lab[y0 : y0 + size // 3, x0 : x0 + size // 3] = 1
            cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = 2
            img[lab == 1] = (230, 220, 40)
            img[lab == 2] = (20, 40, 160)
            Image.fromarray(img).save(root / "images" / split / f"{split}_{i:03d}.png")
            Image.fromarray(lab).save(root / "labels" / split / f"{split}_{i:03d}.png")
    (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """``write_tiny_dataset`` in ``tmp_path/data``: 16 train / 4 val images of 32 px, 3 classes."""
    return write_tiny_dataset(tmp_path / "data")


# --- Trained-model stand-ins shared by tests/inference (library) and tests/cli (end to end) -------------
# Imports stay inside the fixtures: every test directory loads this file, and a package being refactored
# must not break the collection of tests that never use these checkpoints.

SEMANTIC_CLASSES = ["background", "square", "bar"]
SEMANTIC_MEAN, SEMANTIC_STD = [0.45, 0.5, 0.55], [0.2, 0.25, 0.3]
SEMANTIC_OPTIONS = {"base_channels": 8, "depth": 2}
INSTANCE_CLASSES = ["background", "circle", "square", "triangle"]
TINY_MASKRCNN = {"min_size": 64, "max_size": 64, "fpn_channels": 16, "box_batch_size_per_image": 16,
                 "mask_head_layers": 1}


def _semantic_state(model: torch.nn.Module, task: str = "semantic") -> dict:
    return {"task": task, "model": {"name": "unet", "num_classes": 3, "options": SEMANTIC_OPTIONS},
            "model_state": model.state_dict(), "classes": SEMANTIC_CLASSES, "in_channels": 3,
            "mean": SEMANTIC_MEAN, "std": SEMANTIC_STD, "ignore_index": 255, "config": {"data": {"crop_size": 48}},
            "epoch": 1, "step": 10, "metrics": {}, "palette": [[0, 0, 0], [250, 10, 10], [10, 250, 10]]}


@pytest.fixture(scope="session")
def semantic_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 4-image val split (RGB PNG + label each) and a tiny random-weight U-Net checkpoint; read only.

    Keys: ``root``, ``data``, ``run`` (run folder), ``ckpt`` (its best.pt), ``model`` (the saved weights,
    eval mode), ``classes``, ``mean``, ``std``, ``inconsistent`` (the same U-Net saved as task 'instance').
    """
    from PIL import Image

    from seglab.checkpoint import save_checkpoint
    from seglab.models import build_model

    root = tmp_path_factory.mktemp("semantic_run")
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "images" / "val").mkdir(parents=True)
    (data / "labels" / "val").mkdir(parents=True)
    (data / "classes.txt").write_text("\n".join(SEMANTIC_CLASSES) + "\n")
    for i, (h, w) in enumerate(((32, 40), (32, 40), (28, 44), (36, 36))):
        label = np.zeros((h, w), np.uint8)
        label[4:14, 5:15] = 1
        label[20:24, :] = 2
        label[0, :] = 255
        image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        image[label == 1] += np.uint8(150)
        image[label == 2, 2] = 250
        Image.fromarray(image).save(data / "images" / "val" / f"s{i}.png")
        Image.fromarray(label).save(data / "labels" / "val" / f"s{i}.png")
    torch.manual_seed(0)
    model = build_model("unet", 3, **SEMANTIC_OPTIONS).eval()
    run = root / "run"
    save_checkpoint(run / "best.pt", _semantic_state(model))
    save_checkpoint(root / "inconsistent.pt", _semantic_state(model, task="instance"))  # a U-Net "detector"
    return {"root": root, "data": data, "run": run, "ckpt": run / "best.pt", "model": model,
            "classes": SEMANTIC_CLASSES, "mean": SEMANTIC_MEAN, "std": SEMANTIC_STD,
            "inconsistent": root / "inconsistent.pt"}


@pytest.fixture(scope="session")
def semantic_bundle(semantic_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``semantic_run``'s checkpoint exported as an ONNX bundle (``export_checkpoint``); read only. Skips without
    onnxruntime. Used by tests/runtime (the torch-free runtime) and tests/deploy (serve, bench)."""
    pytest.importorskip("onnxruntime")
    from seglab.checkpoint import load_checkpoint
    from seglab.export import export_checkpoint

    model, info = load_checkpoint(semantic_run["ckpt"])
    out = tmp_path_factory.mktemp("bundle") / "model.onnx"
    export_checkpoint(model, info, out)
    return out


@pytest.fixture(scope="session")
def instance_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Shapes data (COCO file + mask folders, 2 train / 5 val images of 64 px) and a tiny Mask R-CNN checkpoint.

    Keys: ``root``, ``data``, ``ckpt`` (``run/best.pt``), ``model`` (the saved weights with
    ``score_thresh`` 0: every detection kept, so random weights still detect something), ``state`` (the
    checkpoint's keys without the weights: ``CheckpointInfo.from_dict(state)`` describes the model),
    ``classes``, ``tiny`` (the model options), ``other_categories`` (the same weights saved with category
    ids 5, 6, 7, which the data does not have). Read only.
    """
    from seglab.checkpoint import save_checkpoint
    from seglab.data.synthetic import make_shapes
    from seglab.models import build_model

    root = tmp_path_factory.mktemp("instance_run")
    data = make_shapes(root / "data", n_train=2, n_val=5, size=64, seed=3)
    torch.manual_seed(0)
    model = build_model("maskrcnn_resnet18_fpn", 4, **TINY_MASKRCNN).eval()
    model.roi_heads.score_thresh = 0.0  # random weights: keep every detection so there is something to check
    state = {"task": "instance", "model": {"name": "maskrcnn_resnet18_fpn", "num_classes": 4,
                                           "options": TINY_MASKRCNN},
             "classes": INSTANCE_CLASSES, "cat_ids": [0, 1, 2, 3], "in_channels": 3, "mean": [0.0] * 3,
             "std": [1.0] * 3, "ignore_index": 255, "config": {}, "epoch": 1, "step": 1, "metrics": {},
             "palette": None}
    ckpt = root / "run" / "best.pt"
    save_checkpoint(ckpt, {**state, "model_state": model.state_dict()})
    other = root / "other_categories.pt"  # the same model trained on categories 5, 6, 7 (not the data's)
    save_checkpoint(other, {**state, "cat_ids": [0, 5, 6, 7], "model_state": model.state_dict()})
    return {"root": root, "data": data, "ckpt": ckpt, "model": model, "state": state,
            "classes": INSTANCE_CLASSES, "tiny": TINY_MASKRCNN, "other_categories": other}


@pytest.fixture(scope="session")
def instance_bundle(instance_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``instance_run``'s checkpoint exported as an ONNX bundle (any image size); read only. Skips without
    onnxruntime. Used by tests/runtime (the torch-free runtime) and tests/deploy (serve)."""
    pytest.importorskip("onnxruntime")
    from seglab.checkpoint import load_checkpoint
    from seglab.export import export_checkpoint

    out = tmp_path_factory.mktemp("instance_bundle") / "detector.onnx"
    export_checkpoint(*load_checkpoint(instance_run["ckpt"]), out)
    return out


@pytest.fixture
def index_labels(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Three 9 x 13 class-index PNGs (values 0..3, a few ignore pixels 255) in ``tmp_path/idx``."""
    from PIL import Image

    src = tmp_path / "idx"
    src.mkdir()
    for stem in ("a", "b", "c"):
        label = rng.integers(0, 4, size=(9, 13)).astype(np.uint8)
        label[0, :3] = 255  # some ignore pixels
        Image.fromarray(label).save(src / f"{stem}.png")
    return src
