"""`seglab merge`: two tiny checkpoints written by seglab's checkpoint writer -> one panoptic checkpoint that
loads and runs like the two models it holds; class matching by name; refused inputs; the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seglab.checkpoint import load_checkpoint, read_info, save_checkpoint
from seglab.cli import main
from seglab.errors import ConfigError, OutputError
from seglab.inference.merge_runs import instance_class_map, merge_checkpoints
from seglab.models import build_model
from seglab.models.panoptic import MergedPanoptic, combine

pytestmark = pytest.mark.usefixtures("one_thread")

SEMANTIC = ["background", "road", "person", "car"]  # panoptic classes: person (2) and car (3) are the things
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
PALETTE = [[0, 0, 0], [128, 64, 128], [220, 20, 60], [0, 0, 142]]
UNET = {"base_channels": 4, "depth": 2}
MASKRCNN = {"min_size": 48, "max_size": 64, "fpn_channels": 16, "box_batch_size_per_image": 16,
            "mask_head_layers": 1}


def _meta(task: str, name: str, classes: list[str], options: dict) -> dict:
    return {"task": task, "model": {"name": name, "num_classes": len(classes), "options": options},
            "classes": classes, "in_channels": 3, "ignore_index": 255, "config": {}, "epoch": 1, "step": 1,
            "metrics": {}}


def _semantic(path: Path, classes: list[str] = SEMANTIC) -> Path:
    torch.manual_seed(1)
    model = build_model("unet", len(classes), **UNET)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias[1] += 10.0  # random weights, but "road" (stuff) wins: the merge has a stuff segment to show
    save_checkpoint(path, {**_meta("semantic", "unet", classes, UNET), "model_state": model.state_dict(),
                           "mean": MEAN, "std": STD, "palette": PALETTE[: len(classes)]})
    return path


def _instance(path: Path, classes: list[str]) -> Path:
    torch.manual_seed(2)
    model = build_model("maskrcnn_resnet18_fpn", len(classes), **MASKRCNN)
    save_checkpoint(path, {**_meta("instance", "maskrcnn_resnet18_fpn", classes, MASKRCNN),
                           "model_state": model.state_dict(), "cat_ids": [0, *range(7, 6 + len(classes))],
                           "mean": [0.0] * 3, "std": [1.0] * 3, "palette": None})
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge")
    sem = _semantic(root / "sem_run" / "best.pt")
    inst = _instance(root / "inst.pt", ["background", "car", "person"])
    out = merge_checkpoints(root / "sem_run", inst, root / "panoptic.pt", score_threshold=0.3, stuff_area=16)
    return {"root": root, "sem": sem, "inst": inst, "out": out}


def test_merged_checkpoint_loads_and_runs_as_its_two_models(pair) -> None:
    model, info = load_checkpoint(pair["out"])
    assert isinstance(model, MergedPanoptic) and not model.training
    assert (info.task, info.model, info.classes, info.cat_ids) == ("panoptic", "panoptic_merge", SEMANTIC, [1, 2, 3, 4])
    assert (info.in_channels, info.mean, info.std, info.palette) == (3, [0.0] * 3, [1.0] * 3, PALETTE)
    assert info.options["thing_classes"] == [2, 3] and info.options["instance_to_class"] == [3, 2]
    assert (info.options["score_threshold"], info.options["stuff_area"]) == (0.3, 16)
    semantic, _ = load_checkpoint(pair["sem"])
    instance, _ = load_checkpoint(pair["inst"])
    image = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        [out] = model([image])
        logits = semantic(((image - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[None])
        [found] = instance([image])
    assert out["ids"].shape == (40, 56) and out["ids"].dtype == torch.long
    assert set(out["ids"].unique().tolist()) - {0} == {s["id"] for s in out["segments"]}
    assert {s["category"] for s in out["segments"] if not s["isthing"]} == {1}  # road, as the U-Net says
    assert torch.equal(out["instances"]["boxes"], found["boxes"])
    mapped = torch.tensor([{1: 3, 2: 2}[v] for v in found["labels"].tolist()], dtype=torch.long)
    assert torch.equal(out["instances"]["labels"], mapped)  # "car" (label 1) is class 3, "person" class 2
    ids, segments = combine(logits.argmax(1)[0], {**found, "labels": mapped}, [2, 3], score_threshold=0.3,
                            stuff_area=16)  # the two checkpoints' own models, merged by hand
    assert torch.equal(out["ids"], ids) and out["segments"] == segments
    assert any(s["isthing"] for s in segments)


def test_instance_classes_are_matched_by_name(pair) -> None:
    sem, inst = read_info(pair["sem"]), read_info(pair["inst"])
    assert instance_class_map(sem, inst) == [3, 2]  # instance "car" (label 1) is class 3, "person" class 2


def test_mismatched_classes_list_both(tmp_path: Path, pair) -> None:
    odd = _instance(tmp_path / "odd.pt", ["background", "car", "bus"])
    with pytest.raises(ConfigError, match=r"\['bus'\] are not classes.*Semantic classes: \['background', 'road', "
                                          r"'person', 'car'\]; instance classes: \['car', 'bus'\]"):
        merge_checkpoints(pair["sem"], odd, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(ConfigError, match="task 'instance'.*given as the semantic model"):
        merge_checkpoints(pair["inst"], pair["sem"], tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="overlap_threshold"):
        merge_checkpoints(pair["sem"], pair["inst"], tmp_path / "x.pt", overlap_threshold=2.0)


def test_refuses_to_overwrite_an_input(pair) -> None:
    before = pair["inst"].read_bytes()
    with pytest.raises(OutputError, match="would overwrite the input"):
        merge_checkpoints(pair["sem"], pair["inst"], pair["inst"])
    assert pair["inst"].read_bytes() == before
    with pytest.raises(OutputError, match="would overwrite the input"):
        merge_checkpoints(pair["root"] / "sem_run", pair["inst"], pair["sem"])  # the run folder's best.pt


def test_cli(tmp_path: Path, pair, capsys) -> None:
    out = tmp_path / "p.pt"
    assert main(["merge", str(pair["sem"]), str(pair["inst"]), "--out", str(out), "--stuff-area", "8"]) == 0
    assert f"-> {out}" in capsys.readouterr().out and read_info(out).options["stuff_area"] == 8
    assert main(["merge", str(pair["sem"]), str(pair["sem"]), "--out", str(tmp_path / "q.pt")]) == 2
    assert "given as the instance model" in capsys.readouterr().err
    assert main(["merge", str(pair["sem"]), str(pair["inst"]), "--out", str(out), "--score-threshold", "1.5"]) == 2
    assert main(["merge", str(tmp_path / "missing.pt"), str(pair["inst"]), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
