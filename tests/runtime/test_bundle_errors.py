"""Bad bundles and bad options get a clear SeglabError (exit 2), and ``resize`` round-trips to the input size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from seglab.errors import ConfigError, DataError, ModelError, OutputError  # noqa: E402
from seglab.runtime import RuntimeOptions, load_bundle, predict_bundle_files, predict_image  # noqa: E402
from seglab.runtime.bundle import Bundle  # noqa: E402


def test_missing_and_corrupt_files(tmp_path: Path, bundle_path: Path) -> None:
    with pytest.raises(ModelError, match="no such bundle"):
        load_bundle(tmp_path / "nope.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="cannot load this file"):
        load_bundle(tmp_path / "bad.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(bundle_path.read_bytes()[:2000])  # a truncated download
    with pytest.raises(ModelError, match="cannot load this file"):
        load_bundle(cut)


def test_onnx_without_seglab_metadata_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 4, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    with pytest.raises(ModelError, match="no seglab metadata"):
        load_bundle(tmp_path / "plain.onnx")


def test_options_and_outputs_refused(bundle_path: Path, semantic_run: dict, tmp_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    images = semantic_run["data"] / "images" / "val"
    with pytest.raises(ConfigError, match="overlay"):
        predict_bundle_files(bundle, [images], tmp_path / "a", format="overlay")
    with pytest.raises(ConfigError, match="--overlap"):
        predict_bundle_files(bundle, [images], tmp_path / "a", options=RuntimeOptions(overlap=1.0))
    with pytest.raises(ConfigError, match="unknown item"):
        predict_bundle_files(bundle, [images], tmp_path / "a", options=RuntimeOptions(tta="spin"))
    with pytest.raises(DataError, match="no images"):
        predict_bundle_files(bundle, [], tmp_path / "a")
    predict_bundle_files(bundle, [images / "s0.png"], tmp_path / "b")
    with pytest.raises(OutputError, match="--exist-ok"):
        predict_bundle_files(bundle, [images / "s0.png"], tmp_path / "b")
    assert predict_bundle_files(bundle, [images / "s0.png"], tmp_path / "b", exist_ok=True).written == 1
    panoptic = Bundle(path=bundle_path, session=None, meta={}, task="panoptic")
    with pytest.raises(ModelError, match="semantic and instance bundles"):
        predict_bundle_files(panoptic, [images], tmp_path / "c")


def test_unreadable_input_is_reported_and_others_written(bundle_path: Path, semantic_run: dict,
                                                         tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = predict_bundle_files(load_bundle(bundle_path), [bad, semantic_run["data"] / "images" / "val" / "s1.png"],
                                  tmp_path / "out")
    assert result.written == 1 and result.failures[0][0] == str(bad) and "cannot read image" in result.failures[0][1]


def test_resize_predicts_small_and_returns_the_input_size() -> None:
    """A fake 2-class model whose logits say "right half of what I see": with resize 20, a 30 x 60 image is
    seen at 10 x 20, and the class map comes back at 30 x 60 with the boundary at column 30 exactly."""
    seen = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        n, _, h, w = batch.shape
        right = (np.arange(w) >= w // 2).astype(np.float32)
        return np.broadcast_to(np.stack([1 - right, right])[None, :, None, :], (n, 2, h, w)).copy() * 5

    fake = Bundle(path=Path("fake.onnx"), session=None, meta={}, classes=["l", "r"], resize=20)
    fake.run = run  # type: ignore[method-assign]
    labels = predict_image(fake, np.zeros((30, 60, 3), np.uint8))
    assert seen == [(1, 3, 10, 20)] and labels.shape == (30, 60)
    expected = np.zeros((30, 60), np.int64)
    expected[:, 30:] = 1
    assert np.array_equal(labels, expected)
