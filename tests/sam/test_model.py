"""Loading SAM from a local file: the right file loads exactly; every wrong one is a clear CheckpointError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("segment_anything")

from seglab.errors import CheckpointError, ConfigError  # noqa: E402
from seglab.sam import SAM_TYPES, load_sam, register_sam_type, tiny_sam_type, unregister_sam_type  # noqa: E402
from seglab.sam.model import check_type, encoder_shape  # noqa: E402


def test_loads_the_saved_weights_exactly(tiny_file: Path, tiny_sam: torch.nn.Module) -> None:
    model = load_sam(tiny_file, "tiny")
    assert not model.training
    want = tiny_sam.state_dict()
    got = model.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_missing_file_names_the_file_each_type_expects(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as e:
        load_sam(tmp_path / "nope.pth", "vit_h")
    msg = str(e.value)
    assert "nope.pth: not found" in msg and "never downloads" in msg
    for name, file, size in (("vit_b", "sam_vit_b_01ec64.pth", "375 MB"), ("vit_l", "sam_vit_l_0b3195.pth", "1.25 GB"),
                             ("vit_h", "sam_vit_h_4b8939.pth", "2.56 GB")):
        assert f"{name}: {file} (about {size})" in msg
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_sam(tmp_path, "vit_b")


def test_a_file_of_another_type_names_the_type_it_holds(tiny_file: Path) -> None:
    with pytest.raises(CheckpointError) as e:
        load_sam(tiny_file, "vit_b")
    msg = str(e.value)
    assert "holds a tiny model (2 blocks of width 32)" in msg
    assert "--sam-model vit_b expects 12 blocks of width 768 (sam_vit_b_01ec64.pth" in msg
    assert "pass --sam-model tiny" in msg and "Traceback" not in msg


def _vit_like(depth: int, width: int) -> dict[str, torch.Tensor]:
    """The two things that give a SAM file's type away: its block count and its patch embedding width."""
    state = {f"image_encoder.blocks.{i}.norm1.weight": torch.ones(2) for i in range(depth)}
    state["image_encoder.patch_embed.proj.weight"] = torch.zeros(width, 3, 1, 1)
    return state


@pytest.mark.parametrize(("held", "asked"), [("vit_h", "vit_b"), ("vit_b", "vit_l"), ("vit_l", "vit_h")])
def test_the_published_types_are_told_apart(held: str, asked: str) -> None:
    kind = SAM_TYPES[held]
    state = _vit_like(kind.depth, kind.width)
    assert encoder_shape(state) == (kind.depth, kind.width)
    with pytest.raises(CheckpointError, match=f"holds a {held} model .* pass --sam-model {held}"):
        check_type(Path("x.pth"), state, SAM_TYPES[asked])
    check_type(Path("x.pth"), state, kind)  # the right type passes


def test_foreign_files_are_named_for_what_they_are(tmp_path: Path, semantic_run: dict) -> None:
    cases = {
        "seglab.pt": (None, "seglab training checkpoint"),
        "sam2.pt": ({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(1)}}, "SAM 2 checkpoint"),
        "text.pth": (b"not torch at all", "cannot read it as PyTorch weights"),
        "list.pth": ([1, 2, 3], "not a state dict of tensors"),
        "other.pth": ({"backbone.weight": torch.zeros(2)}, "holds no SAM image encoder"),
    }
    for name, (content, words) in cases.items():
        path = semantic_run["ckpt"] if content is None else tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        with pytest.raises(CheckpointError, match=words):
            load_sam(path, "vit_b")


def test_damaged_weights_are_refused_before_building(tiny_file: Path, tiny_sam: torch.nn.Module,
                                                     tmp_path: Path) -> None:
    state = dict(tiny_sam.state_dict())
    key = "mask_decoder.iou_token.weight"
    reshaped = {**state, key: torch.zeros(3, 3)}
    torch.save(reshaped, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=rf"1 tensor\(s\) of another shape \(e.g. {key} \(3, 3\) vs"):
        load_sam(tmp_path / "shape.pth", "tiny")
    missing = {k: v for k, v in state.items() if k != key}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=rf"1 tensor\(s\) missing \(e.g. {key}\)"):
        load_sam(tmp_path / "missing.pth", "tiny")
    nan = {**state, key: torch.full_like(state[key], float("nan"))}
    torch.save(nan, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="hold NaN/Inf"):
        load_sam(tmp_path / "nan.pth", "tiny")


def test_unknown_type_and_registry_rules(tiny_file: Path) -> None:
    with pytest.raises(ConfigError, match="'vit_x' is not a SAM model type; use one of vit_b, vit_l, vit_h"):
        load_sam(tiny_file, "vit_x")
    with pytest.raises(ConfigError, match="already registered"):
        register_sam_type(tiny_sam_type())
    with pytest.raises(ConfigError, match="cannot be removed"):
        unregister_sam_type("vit_b")
