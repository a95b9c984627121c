"""`seglab plan`: the fingerprint on real files and the rules on synthetic fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seglab.cli import main
from seglab.cli.app import console
from seglab.config import load_config
from seglab.plan.recipe import Fingerprint, evaluation_advice, fingerprint, plan_config, rules


def _fp(**kw: object) -> Fingerprint:
    base = dict(root="d", task="semantic", num_train=20, num_val=5, size=(512, 512), channels=3,
                classes=["a", "b", "c"], frequencies=[0.6, 0.39, 0.01 + 1e-9], image_share=[1.0, 1.0, 1.0],
                boundary=[0.05, 0.1, 0.1], mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    return Fingerprint(**{**base, **kw})


def _plan(fp: Fingerprint, device: str = "cpu") -> dict:
    return {k: v for k, v, _ in rules(fp, device)}


def test_every_decision_has_a_reason() -> None:
    assert all(isinstance(why, str) and len(why) > 10 for _, _, why in rules(_fp()))


def test_image_size_sets_the_crop() -> None:
    assert _plan(_fp(size=(2048, 1536)))["data.crop_size"] == 256  # huge images: the CPU's crop
    assert _plan(_fp(size=(2048, 1536)), "cuda")["data.crop_size"] == 512
    assert _plan(_fp(size=(100, 90)))["data.crop_size"] == 64  # tiny images: never larger than the image


def test_gray_data_gets_one_channel_rotations_and_no_rescaling() -> None:
    gray = _plan(_fp(channels=1, mean=[0.4], std=[0.1]))
    assert gray["data.in_channels"] == 1 and gray["data.mean"] == [0.4] and gray["data.rotate"] > 0
    assert gray["data.scale"] == [1.0, 1.0] and "data.rot90" not in gray  # quarter turns: no gain measured
    rgb = _plan(_fp())
    assert not {"data.in_channels", "data.rotate"} & set(rgb)  # RGB keeps the defaults, listed (issue 29.6)
    assert (rgb["data.scale"], rgb["data.hflip"], rgb["data.color_jitter"]) == ([0.5, 2.0], 0.5, 0.2)


def test_few_images_repeat_so_an_epoch_has_enough_steps() -> None:
    assert _plan(_fp(num_train=20))["data.repeats"] == 8  # 40 steps of 4 crops from 20 images
    assert _plan(_fp(num_train=20), "cuda")["data.repeats"] == 16  # batch 8 on a GPU
    assert _plan(_fp(num_train=150))["data.repeats"] == 2
    assert "data.repeats" not in _plan(_fp(num_train=184))  # CamVid: 46 steps already
    cfg, _ = plan_config(_fp(num_train=3))
    assert cfg.data.repeats == 54 and cfg.train.channels_last


def test_rare_and_thin_classes_get_dice_and_balanced_sampling() -> None:
    plain = _plan(_fp())
    assert "train.loss" not in plain and "data.sampler" not in plain
    rare = _plan(_fp(frequencies=[0.7, 0.295, 0.005], image_share=[1.0, 1.0, 0.2]))
    assert rare["train.loss"] == "ce+dice" and rare["data.sampler"] == "balanced"
    thin = _plan(_fp(boundary=[0.05, 0.6, 0.1]))
    assert thin["train.loss"] == "ce+dice" and "data.sampler" not in thin


def test_precision_follows_the_cpu(monkeypatch) -> None:
    import seglab.plan.recipe as plan

    monkeypatch.setattr(plan, "cpu_has_bf16", lambda: False)
    assert _plan(_fp())["train.precision"] == "fp32"  # emulated bf16 is slower than fp32
    assert _plan(_fp(task="instance"))["train.precision"] == "fp32"
    assert _plan(_fp(), "cuda")["train.precision"] == "bf16"
    monkeypatch.setattr(plan, "cpu_has_bf16", lambda: True)
    assert _plan(_fp())["train.precision"] == "bf16"


def test_instance_data_plans_a_mask_rcnn() -> None:
    plan = _plan(_fp(task="instance", size=(467, 378)))
    assert plan["model.name"].startswith("maskrcnn") and plan["model.options"]["min_size"] <= 378


def test_anchors_and_rois_follow_the_objects() -> None:
    # Penn-Fudan's train split: sides 40-165 px at 467x378, resized by 320/467: 28-113 px -> anchors 16-256
    def options(**kw: object) -> dict:
        return _plan(_fp(task="instance", size=(467, 378), **kw))["model.options"]

    pf = options(object_sizes=[40.3, 104.6, 164.7], objects_per_image=2.5)
    assert pf["anchor_sizes"] == [16, 32, 64, 128, 256] and pf["box_batch_size_per_image"] == 64
    assert options(object_sizes=[6.0, 12.0, 30.0], objects_per_image=2.5)["anchor_sizes"][0] == 8  # tiny objects
    assert options(object_sizes=[300.0, 350.0, 400.0], objects_per_image=1.0)["anchor_sizes"] == [32, 64, 128, 256,
                                                                                                    512]
    assert options(object_sizes=[27.6, 104.6, 164.7], objects_per_image=20.0)["box_batch_size_per_image"] == 128
    wide = rules(_fp(task="instance", size=(467, 378), object_sizes=[6.0, 100.0, 400.0], objects_per_image=2.0))
    options_, why = next((v, w) for k, v, w in wide if k == "model.options")
    assert options_["anchor_sizes"] == [32, 64, 128, 256, 512] and "larger objects are covered first" in why
    assert "anchor_sizes" not in options()  # no object statistics: the model's defaults


def test_panoptic_data_plans_a_panoptic_fpn() -> None:
    cpu = _plan(_fp(task="panoptic", size=(480, 360)))
    assert cpu["model.name"] == "panoptic_fpn_resnet18" and cpu["model.options"] == {"min_size": 320,
                                                                                      "max_size": 320}
    assert _plan(_fp(task="panoptic", size=(480, 360)), "cuda")["model.name"] == "panoptic_fpn_resnet50"


def test_fingerprint_of_a_thin_structure_dataset(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(3):
            lab = np.ones((40, 60), np.uint8)
            lab[:, 10::12] = 0  # 1-px lines: class 0 is thin, and rare
            Image.fromarray((lab * 200).astype(np.uint8)).save(tmp_path / "images" / split / f"{i}.png")
            Image.fromarray(lab).save(tmp_path / "labels" / split / f"{i}.png")
    fp = fingerprint(tmp_path)
    assert fp.size == (60, 40) and fp.channels == 1 and fp.boundary[0] == 1.0 and fp.boundary[1] < 0.5
    assert fp.thin == ["class_0"] and fp.num_val == 3
    cfg, decisions = plan_config(fp)
    assert cfg.train.loss == "ce+dice" and cfg.data.in_channels == 1 and cfg.data.crop_size == 32


def test_plan_writes_a_config_train_reads(tiny_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.yaml"
    assert main(["plan", str(tiny_data), "--out", str(out)]) == 0
    text = out.read_text()
    assert "# " in text and "crop_size: 32  # median image 32x32" in text
    cfg = load_config(out)
    assert cfg.data.root == str(tiny_data) and cfg.model.name == "unet"
    printed = capsys.readouterr().out
    assert "Train it: seglab train --plan" in printed
    assert "After training: seglab evaluate RUN" in printed and "# after training: seglab evaluate" in text


def test_evaluation_advice_follows_the_data() -> None:
    assert evaluation_advice(_fp(channels=1))[0] == "--tta hflip,vflip"  # no upright
    assert evaluation_advice(_fp())[0] == ""  # RGB scenes: measured no gain on CamVid
    assert evaluation_advice(_fp(task="instance")) is None  # detectors take no TTA


def test_plan_with_time_measures_this_machine(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    assert main(["plan", str(tiny_data), "--time", "30s", "--out", str(out)]) == 0
    cfg = load_config(out)
    assert cfg.train.time == "30s" and cfg.train.epochs >= 1
    assert "s/epoch (measured)" in out.read_text()


def _gray_thin_data(root: Path, n: int = 3) -> Path:
    """Gray images with 1-px lines: the plan wants 1 channel, no rescaling, ce+dice (thin class)."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            lab = np.ones((40, 60), np.uint8)
            lab[:, 10::12] = 0
            Image.fromarray((lab * 200).astype(np.uint8)).save(root / "images" / split / f"{i}.png")
            Image.fromarray(lab).save(root / "labels" / split / f"{i}.png")
    return root


def test_what_the_user_wrote_wins_even_when_it_equals_a_default(tmp_path: Path) -> None:
    """Issue 29 item 2: train.loss=ce (the default) was replaced by the plan's ce+dice unless marked given."""
    from seglab.config import config_from_dict
    from seglab.plan.apply import apply_plan

    data = _gray_thin_data(tmp_path / "d")
    cfg = config_from_dict({"data": {"root": str(data)}, "train": {"loss": "ce", "lr": 0.001}})
    planned, _ = apply_plan(cfg, "cpu")
    assert planned.train.loss == "ce+dice" and planned.train.lr == 3e-3  # nobody said these were chosen
    mine, why = apply_plan(cfg, "cpu", given={"train.loss", "train.lr", "data.in_channels"})
    assert (mine.train.loss, mine.train.lr, mine.data.in_channels) == ("ce", 0.001, 3)
    assert mine.data.mean is None and mine.data.scale == [1.0, 1.0]  # 1-channel statistics cannot go with 3
    assert "your own data.in_channels, train.loss, train.lr kept" in why


def test_a_named_model_keeps_the_data_rules(tmp_path: Path) -> None:
    """Issue 29 item 3: --model used to drop the whole plan (3 channels on gray data, rescale, plain CE)."""
    from seglab.config import config_from_dict
    from seglab.plan.apply import apply_plan

    data = _gray_thin_data(tmp_path / "d")
    cfg = config_from_dict({"data": {"root": str(data)}, "model": {"name": "fcn8s"}})
    planned, why = apply_plan(cfg, "cpu")
    d, t = planned.data, planned.train
    assert (d.in_channels, d.scale, d.rotate, len(d.mean), t.loss) == (1, [1.0, 1.0], 15.0, 1, "ce+dice")
    assert d.crop_size == 32  # the crop follows the 60x40 images whatever the model
    assert planned.model == cfg.model and (t.lr, t.batch_size, d.repeats) == (1e-3, 8, 1)  # model rules: yours
    assert "your fcn8s" in why and "train.lr" in why


def test_print_config_and_training_resolve_alike(tmp_path: Path) -> None:
    from seglab.config import config_from_dict
    from seglab.plan.apply import apply_plan, resolve_run

    data = _gray_thin_data(tmp_path / "d")
    cfg = config_from_dict({"data": {"root": str(data)}, "train": {"device": "cpu"}})
    assert resolve_run(cfg)[0] == apply_plan(cfg, "cpu")[0]
    resumed = config_from_dict({"train": {"resume": True}}, cfg)
    assert resolve_run(resumed) == (resumed, None)  # a resumed run trains its own config.yaml


# --- the training scale (issue 25 items 1 and 3) on synthetic fingerprints -----------------------------------


def _scaled(size: tuple[int, int], frac: float, boundary: float = 0.01, gray: bool = False) -> Fingerprint:
    """Two classes: a background (most pixels) and objects whose 90th-percentile side is ``frac`` of the image's
    long side; ``boundary``: the objects' edge share (width 2 / boundary px)."""
    from seglab.data.label_geometry import ClassScale

    side = frac * max(size)
    return _fp(size=size, long_sides=(max(size),) * 3, classes=["background", "object"], frequencies=[0.7, 0.3],
               image_share=[1.0, 1.0], boundary=[0.01, boundary], mean=[0.5] * (1 if gray else 3),
               std=[0.2] * (1 if gray else 3), channels=1 if gray else 3,
               scale=[ClassScale(20, max(size), max(size), 1.0, 1.0, 0.7),
                      ClassScale(20, side / 2, side, frac / 2, frac, 0.3)])


def _reasons(fp: Fingerprint, device: str = "cpu") -> dict:
    return {k: why for k, _, why in rules(fp, device)}


def test_large_objects_on_large_images_are_trained_downscaled() -> None:
    """The medical photographs of issue 25: 765x575, one object ~70 % of the side: about 3x smaller."""
    plan = _plan(_scaled((765, 575), 0.7))
    assert plan["data.resize"] == 256 and plan["data.crop_size"] == 192  # 0.75 x 256 / 0.7 = 274 -> 256
    assert plan["model.options"] == {"base_channels": 16}  # objects 179 px: inside depth 4's 200 px field
    why = _reasons(_scaled((765, 575), 0.7))
    assert ("object's large objects (90th percentile: 70% of the image side, 536 px at the median long side)"
            in why["data.resize"])
    assert "long side 256 px puts them at 179 px" in why["data.resize"]


def test_huge_images_small_objects_and_tiny_images_keep_native_resolution() -> None:
    assert "data.resize" not in _plan(_scaled((8000, 6000), 0.01))  # small objects: crops at full resolution
    assert _plan(_scaled((8000, 6000), 0.01))["data.crop_size"] == 256
    huge = _plan(_scaled((8000, 6000), 0.5))
    assert huge["data.resize"] == 384 and huge["data.crop_size"] == 256  # 0.75 x 256 / 0.5
    tiny = _plan(_scaled((32, 32), 1.0))
    assert "data.resize" not in tiny and tiny["data.crop_size"] == 32  # already fits whatever it holds
    assert "fit a 256 px crop at native resolution" in _reasons(_scaled((32, 32), 1.0))["data.crop_size"]


def test_a_thin_class_keeps_native_resolution() -> None:
    """ISBI's membranes (7.7 px by this measure) and CamVid's poles (3.4 px) must not be downscaled."""
    thin = _scaled((765, 575), 0.7, boundary=0.3)  # the object class itself is thin: not an object to fit
    assert "data.resize" not in _plan(thin)
    fp = _scaled((765, 575), 0.7)
    fp.classes, fp.frequencies, fp.boundary = [*fp.classes, "pole"], [0.6, 0.3, 0.1], [0.01, 0.01, 2 / 3.4]
    fp.image_share, fp.scale = [1.0] * 3, [*fp.scale, fp.scale[1]]
    assert "data.resize" not in _plan(fp)
    assert "the thinnest class (pole, 3.4 px wide) must stay 8 px wide" in _reasons(fp)["data.crop_size"]
    fp.boundary[2] = 2 / 40.0  # a 40 px wide class allows a resize, no smaller than keeps it 8 px wide
    assert _plan(fp)["data.resize"] == 256 and "pole 2.7 px" not in _reasons(fp)["data.resize"]


def test_objects_wider_than_the_receptive_field_get_a_deeper_unet() -> None:
    gpu = _plan(_scaled((2000, 2000), 0.9), "cuda")  # 0.75 x 512 / 0.9 = 427 -> 416 px: objects 374 px
    assert gpu["data.resize"] == 416 and gpu["model.options"] == {"base_channels": 32, "depth": 5}
    assert "receptive field 408 px (depth 4: 200 px)" in _reasons(_scaled((2000, 2000), 0.9), "cuda")[
        "model.options"]


def test_the_receptive_field_table_is_the_layer_tables() -> None:
    from seglab.models.layers import layer_table
    from seglab.models.registry import build_model
    from seglab.plan.scale import UNET_RF

    for depth, rf in UNET_RF.items():
        rows = layer_table(build_model("unet", 2, in_channels=1, base_channels=4, depth=depth), (1, 64, 64))
        assert max(r.receptive_field for r in rows) == rf


def test_reasons_say_what_they_used(monkeypatch) -> None:
    """Issue 29 item 6: batch size is a constant; Mask R-CNN's precision cites no U-Net measurement; one channel
    names the headers it read, not microscopy as a fact."""
    import seglab.plan.recipe as plan

    monkeypatch.setattr(plan, "cpu_has_bf16", lambda: True)
    why = _reasons(_fp())
    assert "constant" in why["train.batch_size"] and "fits" not in why["train.batch_size"]
    detector = _reasons(_fp(task="instance", size=(467, 378)))
    assert "constant" in detector["train.batch_size"] and "fits" not in detector["train.batch_size"]
    assert "U-Net" not in detector["train.precision"] and "not measured for this model" in detector[
        "train.precision"]
    gray = _reasons(_fp(channels=1, gray_images=20, mean=[0.4], std=[0.1]))
    assert gray["data.in_channels"].startswith("gray in all of 20 image headers") and "assumes" in gray["data.scale"]


def test_plan_does_not_overwrite_an_earlier_plan(tiny_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.yaml"
    out.write_text("# my edited plan\n")
    assert main(["plan", str(tiny_data), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "# my edited plan\n"
    assert main(["plan", str(tiny_data), "--out", str(out), "--force"]) == 0 and "unet" in out.read_text()


def test_plan_prints_the_object_scale_and_mixed_channels(tmp_path: Path, capsys, monkeypatch) -> None:
    data = _gray_thin_data(tmp_path / "d", n=3)
    for i in (1, 2):  # most images colour, the first gray: planned as colour, and said so
        path = data / "images" / "train" / f"{i}.png"
        Image.open(path).convert("RGB").save(path)
    fp = fingerprint(data)
    assert (fp.channels, fp.gray_images, fp.long_sides) == (3, 1, (60, 60, 60))
    assert "mixed: 1 gray and 2 colour images; planned as colour" in fp.mixed
    monkeypatch.setattr(console, "_width", 200)  # pinned: setenv("COLUMNS") alone failed under pytest-xdist
    assert main(["plan", str(data), "--out", str(tmp_path / "p.yaml")]) == 0
    out = capsys.readouterr().out
    assert "mixed: 1 gray and 2 colour images" in out and "side p90 px" in out and "longer side 60-60 px" in out


def test_plan_refuses_labels_that_are_all_ignore(tmp_path: Path, capsys) -> None:
    data = _gray_thin_data(tmp_path / "d", n=2)
    for path in (data / "labels" / "train").iterdir():
        Image.fromarray(np.full((40, 60), 255, np.uint8)).save(path)
    assert main(["plan", str(data), "--out", str(tmp_path / "p.yaml")]) == 2
    assert "every pixel of every label is the ignore value 255" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


# --- the plan's evaluation advice reaches evaluate / predict (issue 25 item 5) ---------------------------------


def test_the_tta_advice_is_a_planned_value() -> None:
    gray = plan_config(_fp(channels=1, mean=[0.4], std=[0.1]))[0]
    assert gray.data.tta == "hflip,vflip"  # recorded in config.yaml like every planned value
    assert plan_config(_fp())[0].data.tta is None  # colour scenes: measured no gain


def test_planned_tta_prefers_the_flag_then_the_run() -> None:
    from seglab.plan.recipe import planned_tta

    run = {"data": {"tta": "hflip,vflip"}}
    assert planned_tta("hflip", run) == ("hflip", None)  # the flag wins
    assert planned_tta("none", run) == ("none", None)  # and turns it off (parse_tta reads none as no TTA)
    tta, note = planned_tta(None, run)
    assert tta == "hflip,vflip" and "the plan's advice" in note and "--tta none" in note
    assert planned_tta("plan", run)[0] == "hflip,vflip"
    assert planned_tta(None, {"data": {}}) == (None, None)  # older runs: as before
    assert planned_tta("plan", {})[0] is None


def test_evaluate_and_predict_apply_the_recorded_advice(semantic_run: dict, tmp_path: Path, capsys,
                                                        monkeypatch) -> None:
    import torch

    import seglab.inference.evaluation as E
    from seglab.checkpoint import save_checkpoint

    state = torch.load(semantic_run["ckpt"], weights_only=True, map_location="cpu")
    state["config"] = {**state["config"], "data": {**state["config"]["data"], "tta": "hflip,vflip"}}
    save_checkpoint(tmp_path / "run" / "best.pt", state)
    used, real = [], E.evaluate_checkpoint
    monkeypatch.setattr(E, "evaluate_checkpoint", lambda *a, **kw: used.append(kw["tta"]) or real(*a, **kw))
    for flags in ([], ["--tta", "hflip"], ["--tta", "none"], ["--tta", "plan"]):
        assert main(["evaluate", str(tmp_path / "run"), "--data", str(semantic_run["data"]), *flags]) == 0
        assert ("TTA hflip,vflip: the plan's advice" in capsys.readouterr().err) == (flags in ([], ["--tta", "plan"]))
    assert used == ["hflip,vflip", "hflip", "none", "hflip,vflip"]
    image = next((semantic_run["data"] / "images" / "val").iterdir())
    assert main(["predict", str(tmp_path / "run"), str(image), "--out", str(tmp_path / "pred")]) == 0
    assert "TTA hflip,vflip: the plan's advice" in capsys.readouterr().err


def test_a_named_model_of_another_task_gets_no_plan(coco_root: Path) -> None:
    """The detector's data rules (shrink-only scale, 352 px crops) are not for a semantic model."""
    from seglab.config import config_from_dict
    from seglab.plan.apply import apply_plan

    cfg = config_from_dict({"data": {"root": str(coco_root)}, "model": {"name": "unet"}})
    planned, why = apply_plan(cfg, "cpu")
    assert planned == cfg and "the plan is for instance data and your unet is a semantic model" in why
