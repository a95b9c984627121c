"""The instance task adapter: a Mask R-CNN run through the one trainer, exact resume, COCO AP plumbing, DDP."""

from __future__ import annotations

import csv
import math
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from seglab.checkpoint import load_checkpoint, read_checkpoint
from seglab.config import RunConfig, config_from_dict
from seglab.data.instance.coco import collate_instances
from seglab.data.sampling import repeat_factors
from seglab.data.synthetic import make_shapes
from seglab.distributed import EpochSampler
from seglab.engine.build import UnseededDataset, build_task
from seglab.engine.instance import InstanceTask
from seglab.engine.task import Task
from seglab.engine.trainer import train
from seglab.errors import ConfigError
from seglab.viz import save_instance_panels

TINY = {"min_size": 64, "max_size": 64, "fpn_channels": 16, "box_batch_size_per_image": 16, "mask_head_layers": 1}
LOSS_KEYS = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}


@pytest.fixture(autouse=True)
def _one_thread():
    # Detection graphs are many small ops: on a shared 2-core machine one thread is the fastest.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes") / "data", n_train=8, n_val=4, size=64, seed=0)


def _config(data: Path, out: Path, **train: object) -> RunConfig:
    cfg = config_from_dict({
        "data": {"root": str(data), "crop_size": 64, "scale": [1.0, 1.0], "color_jitter": 0.0, "workers": 0},
        "model": {"name": "maskrcnn_resnet18_fpn", "options": dict(TINY)},
        "train": {"out": str(out), "epochs": 2, "batch_size": 4, "lr": 0.01, "optimizer": "sgd",
                  "warmup_epochs": 0.0, "num_samples": 2},
    })
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model_state"]


# --- a whole run -------------------------------------------------------------------------------------


def test_run_directory_checkpoint_and_loss_parts(shapes: Path, tmp_path: Path, monkeypatch) -> None:
    seen: list[dict] = []
    compute = InstanceTask.compute_loss

    def recording(self, *args):
        loss, parts = compute(self, *args)
        seen.append(parts)
        torch.testing.assert_close(loss.detach(), sum(parts.values()))
        return loss, parts

    monkeypatch.setattr(InstanceTask, "compute_loss", recording)
    out = tmp_path / "run"
    summary = train(_config(shapes, out))
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "curves.png", "report.md"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("mask_AP", "mask_AP50", "mask_AP75", "box_AP", "box_AP50"):
        assert 0.0 <= float(rows[-1][key]) <= 1.0, key
    assert "val_loss" not in rows[-1]  # Mask R-CNN gives no loss in eval mode: no column, not NaN
    report = (out / "report.md").read_text()
    assert "loss_classifier + loss_box_reg + loss_mask" in report and "loss `ce`" not in report
    assert summary["monitor"] == "mask_AP" and summary["steps"] == 2 * (8 // 4)
    assert len(seen) == 4 and all(set(p) == LOSS_KEYS for p in seen)
    assert all(torch.isfinite(v) and not v.requires_grad for p in seen for v in p.values())

    model, info = load_checkpoint(out / "best.pt")
    assert info.task == "instance" and info.classes == ["background", "circle", "square", "triangle"]
    assert info.cat_ids == [0, 1, 2, 3] and info.config["train"]["monitor"] == "mask_AP"
    assert type(model).__name__ == "MaskRCNN" and not model.training
    with torch.no_grad():
        det = model([torch.rand(3, 64, 64)])[0]
    assert set(det) == {"boxes", "labels", "scores", "masks"} and det["masks"].shape[-2:] == (64, 64)


def test_resume_ends_with_the_same_weights(shapes: Path, tmp_path: Path) -> None:
    """1 epoch + resume for a 2nd == 2 uninterrupted epochs (CPU, same seed; constant LR: same schedule)."""
    common = dict(schedule="constant", num_samples=0, eval_every=5)
    train(_config(shapes, tmp_path / "straight", **common))
    train(_config(shapes, tmp_path / "parts", epochs=1, **common))
    summary = train(_config(shapes, tmp_path / "parts", resume=True, **common))
    assert summary["epochs"] == 2 and summary["steps"] == 4
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "parts" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


# --- evaluation plumbing against independent references -----------------------------------------------


class _Lookup(nn.Module):
    """Returns fixed detections per image, found by the image's pixel sum (a stand-in for a trained model)."""

    def __init__(self, table: dict[float, dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.table = table

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [self.table[round(float(im.double().sum()), 3)] for im in images]


def _detections(task: InstanceTask, perturb: bool) -> _Lookup:
    """Truth as detections; with ``perturb``: the 1st instance of each image eroded, a false positive added."""
    table = {}
    g = torch.Generator().manual_seed(3)
    for i in range(len(task.val_set)):
        image, t = task.val_set[i]
        masks, labels = t["masks"].float().clone(), t["labels"].clone()
        if perturb and len(masks):
            masks[0, : masks.shape[1] // 2] = 0  # top half of the first instance lost
            masks = torch.cat([masks, torch.zeros_like(masks[:1])])
            masks[-1, :8, :8] = 1
            labels = torch.cat([labels, labels[:1]])
        scores = torch.rand(len(masks), generator=g) * 0.9 + 0.1
        boxes = torch.tensor([[0, 0, 64, 64]] * len(masks), dtype=torch.float32)
        for k, m in enumerate(masks):
            ys, xs = torch.where(m > 0)
            if len(ys):
                boxes[k] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        table[round(float(image.double().sum()), 3)] = {"boxes": boxes, "labels": labels, "scores": scores,
                                                          "masks": masks[:, None]}
    return _Lookup(table)


def _val_loader(task: InstanceTask, rank: int = 0, world: int = 1) -> torch.utils.data.DataLoader:
    sampler = EpochSampler(len(task.val_set), 0, rank, world, shuffle=False)
    return torch.utils.data.DataLoader(UnseededDataset(task.val_set), batch_size=3, sampler=sampler,
                                       collate_fn=collate_instances)


def _evaluate(task: InstanceTask, model: nn.Module, rank: int = 0, world: int = 1) -> dict[str, float]:
    import contextlib

    metrics, val_loss = task.evaluate(model, _val_loader(task, rank, world), task.criterion(),
                                      torch.device("cpu"), contextlib.nullcontext)
    assert val_loss is None
    return metrics


def _pycocotools(gt: dict, detections: list[dict], iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = COCO()
    coco.dataset = {k: [dict(r) for r in v] if isinstance(v, list) else v for k, v in gt.items()}
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes([dict(d) for d in detections]), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [float(s) for s in ev.stats]


def _pycoco_detections(model: _Lookup, task: InstanceTask) -> list[dict]:
    """The lookup table as COCO results, encoded with pycocotools (independent of seglab's encoder)."""
    from pycocotools import mask as pmask

    out = []
    for i in range(len(task.val_set)):
        image, t = task.val_set[i]
        d = model([image])[0]
        for k in range(len(d["labels"])):
            rle = pmask.encode(np.asfortranarray(d["masks"][k, 0].numpy().astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            x1, y1, x2, y2 = d["boxes"][k].tolist()
            out.append({"image_id": t["image_id"], "category_id": task.cat_ids[int(d["labels"][k])],
                        "score": float(d["scores"][k]), "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": rle})
    return out


@pytest.mark.parametrize("layout", ["coco", "mask_folder"])
def test_perfect_detections_score_one(shapes: Path, tmp_path: Path, layout: str) -> None:
    root = shapes
    if layout == "mask_folder":  # same data without the COCO JSON: ground truth built from the masks
        root = tmp_path / "data"
        shutil.copytree(shapes, root, ignore=shutil.ignore_patterns("annotations"))
    task = build_task(_config(root, tmp_path / "run"))
    assert type(task.val_set).__name__ == ("CocoInstances" if layout == "coco" else "InstanceMaskFolder")
    metrics = _evaluate(task, _detections(task, perturb=False))
    for key in ("mask_AP", "mask_AP50", "mask_AP75", "box_AP", "box_AP50", "mask_AR100"):
        assert metrics[key] == pytest.approx(1.0), key
    assert math.isnan(metrics["mask_APl"])  # no object larger than 96^2 px: undefined, not -1


def test_imperfect_detections_match_pycocotools(shapes: Path, tmp_path: Path) -> None:
    task = build_task(_config(shapes, tmp_path / "run"))
    model = _detections(task, perturb=True)
    metrics = _evaluate(task, model)
    ref_dets = _pycoco_detections(model, task)
    gt = task.ground_truth()
    for prefix, iou_type in (("mask", "segm"), ("box", "bbox")):
        ref = _pycocotools(gt, ref_dets, iou_type)
        for name, idx in (("AP", 0), ("AP50", 1), ("AP75", 2), ("APs", 3), ("AR100", 8)):
            assert metrics[f"{prefix}_{name}"] == pytest.approx(ref[idx], abs=1e-6), (prefix, name)
    assert 0.2 < metrics["mask_AP"] < 0.95  # the perturbation really costs AP


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        task = build_task(_config(Path(root), Path(out) / "run"))
        metrics = _evaluate(task, _detections(task, perturb=True), rank, world)
        torch.save(metrics, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_gathers_detections_from_every_rank(shapes: Path, tmp_path: Path) -> None:
    """Two gloo ranks, each predicting half of the val split, report the one-process numbers."""
    task = build_task(_config(shapes, tmp_path / "run"))
    single = _evaluate(task, _detections(task, perturb=True))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(shapes), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got.keys() == single.keys()
        for k, v in single.items():
            assert (math.isnan(v) and math.isnan(got[k])) or got[k] == pytest.approx(v, abs=1e-12), k


# --- smaller pieces -----------------------------------------------------------------------------------


def test_repeat_factors_hand_computed() -> None:
    # threshold 1: f_1 = 3/4 -> sqrt(4/3); f_2 = 1/4 -> 2; the empty image keeps 1
    w = repeat_factors([{1}, {1}, {1, 2}, set()], threshold=1.0)
    torch.testing.assert_close(w, torch.tensor([math.sqrt(4 / 3), math.sqrt(4 / 3), 2.0, 1.0], dtype=torch.float64))
    assert repeat_factors([{1}, {2}], threshold=0.1).tolist() == [1.0, 1.0]  # nothing rare below 10%


def test_balanced_sampler_weights_follow_the_json(shapes: Path, tmp_path: Path) -> None:
    import json

    task = build_task(_config(shapes, tmp_path / "run"))
    coco = json.loads((shapes / "annotations" / "instances_train.json").read_text())
    want = [{a["category_id"] for a in coco["annotations"] if a["image_id"] == im["id"]}
            for im in sorted(coco["images"], key=lambda im: im["id"])]
    assert task.train_set.image_categories() == want
    torch.testing.assert_close(task.sample_weights(), repeat_factors(want))


def test_task_selection_and_config_errors(shapes: Path, tmp_path: Path) -> None:
    cfg = _config(shapes, tmp_path / "run")
    task = build_task(cfg)
    assert isinstance(task, InstanceTask) and isinstance(task, Task) and task.default_monitor == "mask_AP"
    assert cfg.train.monitor is None  # building a task never changes the config
    assert task.num_classes == 4 and task.model_info()["mean"] == [0.0, 0.0, 0.0]
    cfg = _config(shapes, tmp_path / "run")
    cfg.data.num_classes = 3
    with pytest.raises(ConfigError, match="num_classes=3.*3 categories"):
        build_task(cfg)
    with pytest.raises(ConfigError, match="instances_test.json"):
        InstanceTask(str(shapes), val_split="test")


def test_sample_panels_are_written(shapes: Path, tmp_path: Path) -> None:
    from PIL import Image

    task = build_task(_config(shapes, tmp_path / "run"))
    image, truth = task.val_set[0]
    pred = {**truth, "scores": torch.full((len(truth["labels"]),), 0.9)}
    path = save_instance_panels(tmp_path / "s" / "p.png", [(image, truth, pred), (image, truth, None)],
                                task.classes, titles=["a", "b"])
    with Image.open(path) as im:
        assert im.size == (600, 600)
        pixels = np.asarray(im.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # an actual picture, not a blank canvas
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["p.png"]  # no temp file left behind


@pytest.mark.parametrize(("key", "value"), [("rotate", 10.0), ("rot90", True), ("elastic", 5.0)])
def test_detector_tasks_refuse_semantic_only_augmentation(shapes: Path, tmp_path: Path, key: str,
                                                          value: object) -> None:
    # rotations, quarter turns and elastic warps would leave the boxes behind: refused by name, never skipped
    cfg = _config(shapes, tmp_path / "r")
    setattr(cfg.data, key, value)
    with pytest.raises(ConfigError, match=f"data.{key} applies to semantic training, not to instance models"):
        build_task(cfg)
    cfg.data.vflip, cfg.data.rotate, cfg.data.rot90, cfg.data.elastic = 1.0, 0.0, False, 0.0
    assert build_task(cfg).name == "instance"  # vertical flips move boxes too: accepted
