"""Model size and cost without training: parameter counts, GFLOPs, and the facts ``seglab models`` lists.

Counting builds the model on the meta device (no memory, no init cost). ``model_facts.json`` beside this
file holds, per registered model, its parameters and GFLOPs at a stated input, the measured CPU
throughput of ``benchmarks/models.py``, the quality of recorded runs (docs/results.md) and the "start
here" hints; ``python benchmarks/model_facts.py`` regenerates it, and tests/models/test_models_cli.py checks
it against the registry, so ``seglab models`` can list the zoo without importing timm or torchvision.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from seglab.models.registry import ModelEntry, build_model, get_entry

FACTS_FILE = Path(__file__).with_name("model_facts.json")
SEMANTIC_CLASSES = 21  # PASCAL VOC, the usual yardstick for published parameter counts
INSTANCE_CLASSES = 91  # COCO category ids


def count_parameters(name: str, num_classes: int, **options: object) -> int:
    """Number of parameters of ``build_model(name, num_classes, **options)``, built on the meta device."""
    with torch.device("meta"):
        model = build_model(name, num_classes, **options)
    return sum(p.numel() for p in model.parameters())


def default_classes(entry: ModelEntry) -> int:
    """The class count the listing counts at: the builder's default, else 21 (semantic) or 91 (instance)."""
    param = inspect.signature(entry.builder).parameters.get("num_classes")
    if param is not None and param.default is not inspect.Parameter.empty:
        return int(param.default)
    return SEMANTIC_CLASSES if entry.task == "semantic" else INSTANCE_CLASSES


def count_gflops(name: str, num_classes: int, size: int, **options: object) -> float:
    """GFLOPs (1e9 floating-point operations, a multiply and an add counting two) of one ``size`` x ``size``
    image through ``build_model(name, num_classes, **options)`` in eval mode.

    Convolutions, matrix products and attention are counted (``torch.utils.flop_counter``), as published
    GFLOPs are. Semantic models run on the meta device (instant, no memory). Instance models run for real
    on random weights with every detection kept (the score threshold at 0), so the box and mask heads are
    counted for the most detections the model returns: an upper bound for one image.
    """
    from torch.utils.flop_counter import FlopCounterMode

    entry = get_entry(name)
    counter = FlopCounterMode(display=False)
    if entry.task == "semantic":
        with torch.device("meta"):
            model = build_model(name, num_classes, **options).eval()
            x = torch.empty(1, int(options.get("in_channels", 3)), size, size)
        with counter, torch.no_grad():
            model(x)
    else:
        torch.manual_seed(0)
        model = build_model(name, num_classes, **options).eval()
        model.roi_heads.score_thresh = 0.0
        with counter, torch.no_grad():
            model([torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))])
    return counter.get_total_flops() / 1e9


def model_facts(path: str | Path | None = None) -> dict[str, Any]:
    """The contents of ``model_facts.json``: ``models`` (per name: task, default_input, options, params,
    gflops, gflops_input, cpu_img_s, quality), ``start_here`` hints and what each number means."""
    return json.loads(Path(path or FACTS_FILE).read_text())
