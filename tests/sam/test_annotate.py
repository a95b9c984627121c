"""``annotate``: the dataset it writes passes the doctors, reads back as SAM drew it, and trains (1 epoch).

The tiny SAM's masks mean nothing; what is checked is that every mask lands where seglab's readers expect it,
with the class its source gave.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytest.importorskip("segment_anything")

from seglab.cli import main  # noqa: E402
from seglab.data.instance.checks import check_instance_dataset  # noqa: E402
from seglab.data.instance.masks import InstanceMaskFolder  # noqa: E402
from seglab.data.semantic.checks import check_dataset  # noqa: E402
from seglab.errors import ConfigError, DataError, OutputError  # noqa: E402
from seglab.sam import AutoMaskOptions, AutoSource, ModelSource, PromptSource, SamSession, annotate  # noqa: E402
from seglab.sam.annotate import val_images  # noqa: E402
from seglab.sam.prompts import match_images, read_prompts  # noqa: E402
from seglab.viz import instance_ids  # noqa: E402

from .conftest import picture  # noqa: E402

PROMPTS = ("image,class,object,x1,y1,x2,y2,x,y,label\n"
           "im0.png,square,,4,3,22,20,,,\n"
           "im0.png,disc,d,,,,,34,28,1\n"
           "im1,disc,,26,20,44,36,,,\n"
           "im2.png,square,s,5,4,21,19,,,\n"
           "im2.png,square,s,,,,,40,5,0\n"
           "im3.png,disc,,,,,,30,30,1\n")


def _images(folder: Path, n: int = 5, size: tuple[int, int] = (64, 64)) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.fromarray(picture(i, *size)).save(folder / f"im{i}.png")
    return folder


def _prompt_source(tmp_path: Path, images: Path) -> PromptSource:
    path = tmp_path / "prompts.csv"
    path.write_text(PROMPTS)
    return PromptSource(match_images(read_prompts(path), sorted(images.iterdir()), str(path)), str(path))


def test_val_images_are_spread_evenly() -> None:
    assert val_images(5, 0.2) == [False, False, False, False, True]
    assert val_images(10, 0.3) == [False, False, False, True, False, False, True, False, False, True]
    assert not any(val_images(4, 0.0))
    # a small set still gets a validation image (3 x 0.2 rounds down to none): training needs one
    assert val_images(3, 0.2) == [False, False, True]
    assert val_images(2, 0.1) == [False, True]
    assert val_images(1, 0.2) == [False]  # one image stays in train


def test_three_images_at_a_fifth_still_give_a_trainable_dataset(tmp_path: Path, tiny_sam) -> None:
    """Issue 29: `seglab annotate` on 3 images with --val-fraction 0.2 put none in val, and training stopped."""
    from seglab.data.problems import split_warnings

    images = _images(tmp_path / "in", n=3)
    path = tmp_path / "prompts.csv"
    path.write_text("".join(line + "\n" for line in PROMPTS.splitlines() if not line.startswith("im3")))
    source = PromptSource(match_images(read_prompts(path), sorted(images.iterdir()), str(path)), str(path))
    result = annotate([images], tmp_path / "ds", SamSession(tiny_sam), source, val_fraction=0.2, review=False)
    assert result.images == {"train": 2, "val": 1}
    assert check_instance_dataset(tmp_path / "ds") == [] and split_warnings(tmp_path / "ds", "instance") == []


def test_prompt_round_trip_into_the_doctor_and_the_dataset(tmp_path: Path, tiny_sam) -> None:
    images = _images(tmp_path / "in")
    source = _prompt_source(tmp_path, images)
    session = SamSession(tiny_sam)
    result = annotate([images], tmp_path / "ds", session, source, val_fraction=0.2)
    ds = tmp_path / "ds"
    assert check_instance_dataset(ds) == []
    assert (ds / "classes.txt").read_text() == "background\ndisc\nsquare\n"
    assert result.images == {"train": 4, "val": 1} and session.embeddings == 4  # im4 has no prompt: not encoded
    assert sorted(p.name for p in (ds / "review" / "train").iterdir()) == [f"im{i}.png" for i in range(4)]
    record = json.loads((ds / "annotate.json").read_text())
    assert record["source"] == "prompts" and record["images"] == {"train": 4, "val": 1}
    # Reference: the same prompts asked of a fresh session, painted by score as the layout requires.
    ref, folder = SamSession(tiny_sam), InstanceMaskFolder(ds, "train")
    asks = {0: [({"box": [4, 3, 22, 20], "multimask": False}, 2), ({"points": [(34, 28)]}, 1)],
            2: [({"box": [5, 4, 21, 19], "points": [(40, 5)], "labels": [0], "multimask": False}, 2)]}
    for i, objs in asks.items():
        ref.set_image(picture(i, 64, 64))
        answers = [ref.predict(**kw) for kw, _ in objs]
        masks = np.stack([a.masks[a.best] for a in answers])
        ids, kept = instance_ids(masks, [a.scores[a.best] for a in answers])
        _, target = folder[i]
        assert np.array_equal(target["masks"].numpy(), (ids[None] == np.arange(1, len(kept) + 1)[:, None, None]))
        assert target["labels"].tolist() == [objs[k][1] for k in kept]  # contiguous label = category id here
    assert folder.classes == ["background", "disc", "square"]


def test_semantic_layout_passes_the_semantic_doctor(tmp_path: Path, tiny_sam) -> None:
    images = _images(tmp_path / "in")
    annotate([images], tmp_path / "ds", tiny_sam, _prompt_source(tmp_path, images), layout="semantic",
             val_fraction=0.2, review=False)
    ds = tmp_path / "ds"
    assert check_dataset(ds) == [] and not (ds / "review").exists() and not (ds / "masks").exists()
    assert sorted(p.name for p in (ds / "labels" / "val").iterdir()) == ["im4.png"]


def _train(tmp_path: Path, data: Path, model: dict, crop: int) -> Path:
    tmp_path.mkdir()
    out = tmp_path / "run"
    config = {"data": {"root": str(data), "crop_size": crop, "scale": [1.0, 1.0], "color_jitter": 0.0, "workers": 0},
              "model": model, "train": {"out": str(out), "epochs": 1, "batch_size": 2, "lr": 0.01,
                                         "warmup_epochs": 0.0}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "cfg.yaml")]) == 0
    return out


def test_seglab_trains_on_annotated_data(tmp_path: Path, tiny_sam) -> None:
    images = _images(tmp_path / "in")
    source = _prompt_source(tmp_path, images)
    annotate([images], tmp_path / "inst", tiny_sam, source, val_fraction=0.2)
    tiny = {"min_size": 64, "max_size": 64, "fpn_channels": 16, "box_batch_size_per_image": 16,
            "mask_head_layers": 1}
    run = _train(tmp_path / "a", tmp_path / "inst", {"name": "maskrcnn_resnet18_fpn", "options": tiny}, 64)
    # one epoch ran and was scored (val is im4, without objects: its AP is undefined, so no best.pt)
    assert (run / "last.pt").is_file() and "mask_AP" in (run / "metrics.csv").read_text().splitlines()[0]
    annotate([images], tmp_path / "sem", tiny_sam, source, layout="semantic", val_fraction=0.2)
    run = _train(tmp_path / "b", tmp_path / "sem", {"name": "unet", "options": {"base_channels": 4, "depth": 2}}, 32)
    assert (run / "best.pt").is_file() and len((run / "metrics.csv").read_text().splitlines()) == 2


def test_from_a_semantic_run_classes_come_from_the_model(tmp_path: Path, tiny_sam, semantic_run: dict) -> None:
    from seglab.checkpoint import load_checkpoint
    from seglab.inference import predict
    from seglab.sam.refine import semantic_regions

    model, info = load_checkpoint(semantic_run["ckpt"])
    source = ModelSource(model, info, min_area=4)
    folder = semantic_run["data"] / "images" / "val"
    annotate([folder], tmp_path / "ds", tiny_sam, source)
    ds = tmp_path / "ds"
    assert check_instance_dataset(ds) == []
    assert (ds / "classes.txt").read_text() == "background\nsquare\nbar\n"
    for path in sorted(folder.iterdir()):
        image = np.asarray(Image.open(path).convert("RGB"))
        labels = predict(model, image, mean=info.mean, std=info.std).numpy()
        regions = semantic_regions(labels, 0, 4)
        record = json.loads((ds / "masks" / "train" / f"{path.stem}.json").read_text())
        # one mask per region of at least 4 pixels (fewer where a mask is hidden), each with its region's class
        assert set(record["labels"]) <= set(regions.classes) and len(record["labels"]) <= len(regions.classes)


def test_from_an_instance_run_and_auto_classified(tmp_path: Path, tiny_sam, instance_run: dict,
                                                  semantic_run: dict) -> None:
    from seglab.checkpoint import load_checkpoint

    model, info = load_checkpoint(instance_run["ckpt"])
    model.roi_heads.score_thresh = 0.0
    folder = instance_run["data"] / "images" / "val"
    result = annotate([folder], tmp_path / "ds", tiny_sam, ModelSource(model, info, score_threshold=0.0))
    assert check_instance_dataset(tmp_path / "ds") == [] and sum(result.objects.values()) > 0
    assert (tmp_path / "ds" / "classes.txt").read_text() == "background\ncircle\nsquare\ntriangle\n"
    # Automatic masks named by the semantic model: each kept mask has the majority class of its pixels.
    sem_model, sem_info = load_checkpoint(semantic_run["ckpt"])
    classifier = ModelSource(sem_model, sem_info)
    auto = AutoSource(tiny_sam, AutoMaskOptions(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0),
                      classifier)
    image = np.asarray(Image.open(semantic_run["data"] / "images" / "val" / "s0.png").convert("RGB"))
    objects = auto.find(SamSession(tiny_sam), Path("s0.png"), image)
    labels = classifier.semantic_labels(image)
    for mask, cls in zip(objects.masks, objects.classes, strict=True):
        assert np.bincount(labels[mask], minlength=3).argmax() == cls + 1 != 0


def test_annotate_refuses(tmp_path: Path, tiny_sam) -> None:
    images = _images(tmp_path / "in", n=4)
    source = _prompt_source(tmp_path, images)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and is not empty"):
        annotate([images], tmp_path / "full", tiny_sam, source)
    with pytest.raises(DataError, match="not found"):
        annotate([tmp_path / "none"], tmp_path / "o", tiny_sam, source)
    Image.fromarray(picture(9)).save(images / "im0.jpg")
    with pytest.raises(DataError, match="share the stem 'im0'"):
        annotate([images], tmp_path / "o", tiny_sam, source)
    with pytest.raises(ConfigError, match="--layout"):
        annotate([images], tmp_path / "o", tiny_sam, source, layout="coco")
    with pytest.raises(ConfigError, match="--val-fraction"):
        annotate([images], tmp_path / "o", tiny_sam, source, val_fraction=1.0)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.annotate-*"))
    assert torch.get_num_threads() == 1
