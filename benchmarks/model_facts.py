"""Regenerate src/seglab/models/model_facts.json: what `seglab models` lists, without building any model then.

Per registered model: task, default input, options (name=default), parameters (21 classes for semantic
models, the builder's default class count for instance models), GFLOPs of one image at the model's default
input (square), the CPU training throughput measured by ``benchmarks/models.py`` (results/models.json), the
quality of recorded runs (docs/results.md) and the "start here" hints. Run: ``python benchmarks/model_facts.py``
after adding a model, a benchmark or a recorded run; tests/models/test_models_cli.py fails until the file
matches the registry again. ``python benchmarks/model_facts.py NAME ...`` recounts only those models and keeps
the other rows as the file has them (the instance models' real runs take minutes on a small CPU).

Panoptic models cannot be built without ``thing_classes`` (and ``panoptic_merge`` without its two models), so
they are counted with the options in ``COUNT_OPTIONS`` (COCO panoptic: 133 classes, the first 80 things), which
their rows record as ``count_options``; their GFLOPs come from a real run with every detection kept, like the
instance models'.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
from torchvision.models.detection.roi_heads import RoIHeads

from _common import HERE, RESULTS
from seglab.models import list_models
from seglab.models.registry import ModelEntry, build_model
from seglab.models.summary import FACTS_FILE, count_gflops, count_parameters, default_classes

# The options panoptic models are counted with: COCO panoptic's 80 things (class indices 0..79 of 133); the
# merge of the two "start here" models of each task.
COCO_THINGS = list(range(80))
COUNT_OPTIONS: dict[str, dict] = {
    "panoptic_fpn_resnet18": {"thing_classes": COCO_THINGS},
    "panoptic_fpn_resnet50": {"thing_classes": COCO_THINGS},
    "panoptic_fpn_mobilenet_v3": {"thing_classes": COCO_THINGS},
    "panoptic_merge": {"thing_classes": COCO_THINGS, "instance_to_class": COCO_THINGS,
                       "semantic": {"name": "unet", "num_classes": 133, "options": {}},
                       "instance": {"name": "maskrcnn_resnet18_fpn", "num_classes": 81, "options": {}}},
}

# Recorded runs (docs/results.md): the model, the options of the run, and the headline numbers.
# The newest headline of each (tests/models/test_models_cli.py reads them back out of docs/results.md).
PLAN = "docs/results.md#seglab-plan-on-the-three-shared-datasets-side-by-side-with-a-plain-smp-loop"
QUALITY = {
    "unet": [{"dataset": "ISBI-2012 EM membranes", "short": "ISBI", "metric": "mIoU", "value": 0.799,
              "split": "val (5 images)", "options": "base_channels=16, in_channels=1 (seglab plan)",
              "note": "from scratch, 12 min on one CPU thread, mean of 3 seeds; 0.802 with flip TTA",
              "source": PLAN},
             {"dataset": "CamVid, 11 classes", "short": "CamVid", "metric": "mIoU", "value": 0.281,
              "split": "val (51 images)", "options": "base_channels=16 (seglab plan)",
              "note": "from scratch, 15 min on one CPU thread, mean of 2 seeds", "source": PLAN}],
    "maskrcnn_resnet18_fpn": [
        {"dataset": "Penn-Fudan pedestrians", "short": "Penn-Fudan", "metric": "mask AP", "value": 0.232,
         "split": "val (20 images)", "options": "resized to 320 px (seglab plan)",
         "note": "from scratch, 15 min on one CPU thread, best checkpoint; box AP 0.383", "source": PLAN}],
    "panoptic_fpn_resnet18": [
        {"dataset": "synthetic shapes (seglab demo --task panoptic)", "short": "demo", "metric": "PQ",
         "value": 0.892, "split": "val (60 images)", "options": "demo recipe",
         "note": "from scratch, 6 epochs, about 2.5 min CPU; things 0.819, stuff 0.966",
         "source": "docs/results.md#panoptic-synthetic-shapes-end-to-end-against-two-merged-runs"},
        {"dataset": "CamVid panoptic (Car, Pedestrian, Bicyclist as things)", "short": "CamVid", "metric": "PQ",
         "value": 0.359, "split": "val (51 images)", "options": "resized to 320 px (seglab plan)",
         "note": "from scratch, 10 epochs, 14 min on one CPU thread",
         "source": "docs/results.md#panoptic-camvid-stuff--cars-pedestrians-bicyclists"}],
}

# "Start here": the first model to try per use case, with the options and the reason.
START_HERE = [
    {"use": "small data, CPU, first try (medical, microscopy, defects)", "model": "unet",
     "options": "base_channels=16..32", "why": "trains from scratch on a CPU: ISBI mIoU 0.80 in 12 minutes on one "
                                               "thread (seglab plan)"},
    {"use": "street scenes, natural photos (GPU)", "model": "deeplabv3plus", "options": "",
     "why": "atrous ResNet-50 context plus a sharp decoder; give it pretrained encoder weights from a file"},
    {"use": "fast inference, edge devices", "model": "lraspp_mobilenet_v3", "options": "",
     "why": "3.2 M parameters and about 4 GFLOPs at 512x512: the cheapest semantic model here"},
    {"use": "instances: count or separate objects", "model": "maskrcnn_resnet18_fpn", "options": "",
     "why": "the CPU Mask R-CNN recipe: Penn-Fudan mask AP 0.23 from scratch in 15 minutes (seglab plan)"},
]


def speeds() -> tuple[dict[str, float], dict]:
    """fp32 training images/s per model from benchmarks/results/models.json, and where they were measured."""
    path = RESULTS / "models.json"
    if not path.is_file():
        return {}, {}
    record = json.loads(path.read_text())
    rows = {r["model"]: float(r["fp32_img_s"]) for r in record["rows"] if "fp32_img_s" in r}
    return rows, {"source": "benchmarks/results/models.json (python benchmarks/models.py)",
                  "machine": record["machine"], "date": record["date"],
                  "what": "training images/s (forward + backward), 256x256, batch 4, fp32, CPU, default widths"}


def panoptic_gflops(name: str, num_classes: int, size: int, **options: object) -> float:
    """GFLOPs of one ``size`` x ``size`` image through a panoptic model: a real run, every detection kept (the
    box and mask heads counted for the most detections), as ``count_gflops`` counts instance models."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = build_model(name, num_classes, **options).eval()
    for m in model.modules():
        if isinstance(m, RoIHeads):
            m.score_thresh = 0.0
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model([torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))])
    return counter.get_total_flops() / 1e9


def row(entry: ModelEntry, img_s: dict[str, float]) -> dict:
    """The facts of one registered model (counted now)."""
    classes = default_classes(entry)
    options = json.loads(json.dumps(entry.options()))  # tuples -> lists, as the file stores them
    extra = COUNT_OPTIONS.get(entry.name, {})
    gflops = panoptic_gflops if entry.task == "panoptic" else count_gflops
    counted = {"count_options": extra} if extra else {}
    return {"task": entry.task, "default_input": entry.default_input, "options": options, "classes": classes,
            "params": count_parameters(entry.name, classes, **extra),
            "gflops": round(gflops(entry.name, classes, entry.default_input, **extra), 2),
            "gflops_input": entry.default_input, "cpu_img_s": img_s.get(entry.name),
            "quality": QUALITY.get(entry.name, []), **counted}


def main(only: list[str]) -> None:
    torch.manual_seed(0)
    img_s, speed_meta = speeds()
    registered = [e.name for e in list_models()]
    unknown = sorted(set(only) - set(registered))
    if unknown:
        raise SystemExit(f"not registered: {unknown}")
    kept = json.loads(FACTS_FILE.read_text())["models"] if only and FACTS_FILE.is_file() else {}
    models = {}
    for entry in list_models():
        if only and entry.name not in only and entry.name in kept:
            models[entry.name] = kept[entry.name]
            continue
        start = time.perf_counter()
        models[entry.name] = row(entry, img_s)
        print(f"{entry.name}: {models[entry.name]['gflops']} GFLOPs ({time.perf_counter() - start:.1f} s)", flush=True)
    unknown = sorted({h["model"] for h in START_HERE} - set(models)) + sorted(set(QUALITY) - set(models))
    if unknown:
        raise SystemExit(f"START_HERE / QUALITY name models that are not registered: {unknown}")
    facts = {
        "generated_by": "python benchmarks/model_facts.py",
        "params": "parameters at the listed class count (21 for semantic models: PASCAL VOC's yardstick; 133 for "
                  "panoptic models: COCO panoptic's, counted with the row's count_options)",
        "gflops": "1e9 floating-point operations (multiply and add count two) for one image of gflops_input x "
                  "gflops_input, eval mode; instance and panoptic models: every detection kept (upper bound)",
        "speed": speed_meta, "start_here": START_HERE, "models": models,
    }
    tmp = FACTS_FILE.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(facts, indent=1) + "\n")
    os.replace(tmp, FACTS_FILE)
    print(f"wrote {FACTS_FILE.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
