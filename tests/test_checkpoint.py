"""Loading checkpoints: clear errors for missing or inconsistent files, validated ``CheckpointInfo``."""

from __future__ import annotations

import pytest
import torch

from seglab.checkpoint import CheckpointInfo, load_checkpoint, read_info, save_checkpoint
from seglab.errors import CheckpointError, ModelError, SeglabError


def _meta(**changes) -> dict:
    base = {"model": {"name": "unet", "num_classes": 2, "options": {}}, "classes": ["bg", "fg"]}
    return {**base, **changes}


def test_load_returns_the_saved_model_and_its_info(semantic_run) -> None:
    model, info = load_checkpoint(semantic_run["run"])  # a run folder means its best.pt
    assert not model.training and info.path == str(semantic_run["ckpt"])
    assert info.task == "semantic" and info.model == "unet" and info.classes == semantic_run["classes"]
    assert info.mean == semantic_run["mean"] and info.std == semantic_run["std"] and info.cat_ids == [0, 1, 2]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), semantic_run["model"](x), rtol=0, atol=0)


def test_inconsistent_instance_checkpoint_is_refused(semantic_run, tmp_path) -> None:
    """A U-Net labelled as an instance model: refused at load time, before anything is predicted or written."""
    with pytest.raises(ModelError) as e:
        load_checkpoint(semantic_run["inconsistent"])
    err = " ".join(str(e.value).split())
    assert "not a detector" in err and "inconsistent" in err, err
    assert isinstance(e.value, SeglabError)  # the CLI prints it and exits 2
    # the exporter checks on its own too, and writes nothing
    from seglab.export import export_checkpoint

    info = read_info(semantic_run["inconsistent"])
    assert info.task == "instance"
    with pytest.raises(ModelError) as e:
        export_checkpoint(semantic_run["model"], info, tmp_path / "x.onnx")
    err = " ".join(str(e.value).split())
    assert "not a detector" in err and "inconsistent" in err, err
    assert not (tmp_path / "x.onnx").exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no best.pt or last.pt"):
        load_checkpoint(tmp_path)


def test_foreign_files_are_refused(tmp_path) -> None:
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a seglab checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_from_dict_refuses_class_names_and_category_ids_that_disagree() -> None:
    with pytest.raises(CheckpointError, match="2 class names but 3 category ids.*inconsistent"):
        CheckpointInfo.from_dict(_meta(cat_ids=[0, 1, 2]), "c.pt")


@pytest.mark.parametrize("changes, message", [
    ({"model": "unet"}, "c.pt: 'model' must be"),
    ({"model": {"num_classes": 2}}, "c.pt: 'model' must be"),
    ({"classes": "bg,fg"}, "c.pt: 'classes' must be a list; got str"),
    ({"classes": None}, "'classes' must be a list; got NoneType"),
    ({"task": "depth"}, "unknown task 'depth'"),
    ({"in_channels": "three"}, "'in_channels' must be a non-negative integer; got str"),
    ({"ignore_index": -4}, "'ignore_index' must be a non-negative integer"),
    ({"mean": ["a", "b"]}, "'mean' must be a list of numbers"),
    ({"std": 0.5}, "'std' must be a list; got float"),
    ({"cat_ids": ["x", "y"]}, "'cat_ids' must hold integers"),
    ({"palette": [[1, 2]]}, r"'palette' must hold \[r, g, b\] triples"),
    ({"config": [1, 2]}, "'config' must be a mapping"),
    ({"metrics": "good"}, "'metrics' must be a mapping"),
    ({"epoch": 1.5}, "'epoch' must be a non-negative integer"),
    ({"model": {"name": "unet", "num_classes": "2"}}, r"c.pt \(model\): 'num_classes' must be"),
    ({"model": {"name": "unet", "num_classes": 2, "options": ["a"]}}, "'model.options' must be a mapping"),
])
def test_from_dict_refuses_bad_types(changes: dict, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        CheckpointInfo.from_dict(_meta(**changes), "c.pt")


@pytest.mark.parametrize("name, task", [("unet", "semantic"), ("maskrcnn_resnet18_fpn", "instance"),
                                        ("not_registered", "semantic")])
def test_old_checkpoint_without_task_gets_the_registry_task(name: str, task: str) -> None:
    info = CheckpointInfo.from_dict(_meta(model={"name": name, "num_classes": 2, "options": {}}))
    assert info.task == task and info.path == ""


def test_from_dict_defaults_and_types() -> None:
    info = CheckpointInfo.from_dict(_meta(), "c.pt")
    assert info.cat_ids == [0, 1] and info.in_channels == 3 and info.ignore_index == 255
    assert info.mean is None and info.std is None and info.palette is None and info.config == {}
    assert info.model_spec == {"name": "unet", "num_classes": 2, "options": {}} and info.image_channels == 3
    info = CheckpointInfo.from_dict(_meta(in_channels=1, mean=[0.5], std=[0.25], cat_ids=[0, 7]))
    assert info.image_channels == 1 and info.mean == [0.5] and info.cat_ids == [0, 7]


def test_saved_checkpoint_round_trips(tmp_path) -> None:
    save_checkpoint(tmp_path / "c.pt", {**_meta(), "model_state": {}})
    info = read_info(tmp_path / "c.pt")
    assert info.path == str(tmp_path / "c.pt") and info.classes == ["bg", "fg"] and info.task == "semantic"


@pytest.mark.parametrize("options, message", [
    ({"base_channels": "abc"}, "c.pt: its model cannot be rebuilt: model option `unet.base_channels` expects an "
                               "integer"),
    ({"base_channels": -8}, "must be >= 1"),
    ({"no_such_option": 1}, "has no option"),
])
def test_a_checkpoint_with_bad_model_options_is_a_clear_error(options: dict, message: str) -> None:
    info = CheckpointInfo.from_dict(_meta(model={"name": "unet", "num_classes": 2, "options": options}), "c.pt")
    with pytest.raises(CheckpointError, match=message):
        info.build_model()


def test_model_state_must_be_tensors(tmp_path) -> None:
    torch.save({**_meta(), "model_state": {"w": "not a tensor"}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="'model_state' must be a state dict of tensors"):
        load_checkpoint(tmp_path / "odd.pt")
