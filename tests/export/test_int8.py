"""``--int8``: a well-conditioned model passes and its scores land in the metadata; a model whose outlier
activations crush the signal under 8-bit quantization is refused with both numbers, and nothing is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")


class Fragile(nn.Module):
    """Two 1x1 convs: ``mix`` gives ch0 = gray - 0.5 (the signal) and ch1 = ``outlier`` x gray; the head's
    class-1 logit is 20 x ch0. With ``outlier`` 1e4 both channels share one uint8 activation scale (~40 per
    step), so the signal rounds to 0 and every pixel becomes background; with 0 INT8 keeps the signal."""

    stride = 1

    def __init__(self, outlier: float) -> None:
        super().__init__()
        self.mix, self.head = nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            for conv in (self.mix, self.head):
                conv.weight.zero_()
                conv.bias.zero_()
            self.mix.weight[0] = 1 / 3
            self.mix.bias[0] = -0.5
            self.mix.weight[1] = outlier / 3
            self.head.weight[1, 0] = 20.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(x))


@pytest.fixture
def squares(tmp_path: Path) -> Path:
    """6 val images of 24 x 32: dark noise with a bright square (class 1)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for sub in ("images", "labels"):
        (root / sub / "val").mkdir(parents=True)
    for i in range(6):
        label = np.zeros((24, 32), np.uint8)
        label[4 + i:14 + i, 6 + 2 * i:18 + 2 * i] = 1
        image = rng.integers(0, 60, (24, 32, 3)).astype(np.uint8)
        image[label == 1] = rng.integers(190, 256, (int(label.sum()), 3)).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / "val" / f"v{i}.png")
        Image.fromarray(label).save(root / "labels" / "val" / f"v{i}.png")
    return root


def _info(root: Path):
    from seglab.checkpoint import CheckpointInfo

    return CheckpointInfo.from_dict({"task": "semantic", "model": {"name": "unet", "num_classes": 2, "options": {}},
                                     "classes": ["background", "square"], "in_channels": 3, "mean": [0.0] * 3,
                                     "std": [1.0] * 3, "config": {"data": {"root": str(root)}}})


def test_int8_passes_and_records_both_scores(squares: Path, tmp_path: Path) -> None:
    from seglab.export.int8 import export_int8
    from seglab.runtime import load_bundle, predict_image

    out = tmp_path / "model-int8.onnx"
    result = export_int8(Fragile(0.0).eval(), _info(squares), out)
    assert result.fp32 == pytest.approx(1.0) and result.int8 >= result.fp32 - 0.01  # the signal is clean
    bundle = load_bundle(out)
    note = bundle.meta["seglab.int8"]
    assert note["fp32"] == pytest.approx(result.fp32) and note["int8"] == pytest.approx(result.int8)
    assert note["metric"] == "mean_iou" and note["images"] == 6 and note["calib_images"] == 6
    assert bundle.classes == ["background", "square"] and "int8" in bundle.meta["seglab.precision"]
    ops = {n.op_type for n in __import__("onnx").load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantized
    label = np.asarray(Image.open(squares / "labels" / "val" / "v0.png"))
    image = np.asarray(Image.open(squares / "images" / "val" / "v0.png"))
    assert np.array_equal(predict_image(bundle, image), label)


def test_int8_refused_when_outliers_crush_the_signal(squares: Path, tmp_path: Path) -> None:
    from seglab.export.int8 import Int8Refused, export_int8

    out = tmp_path / "model-int8.onnx"
    with pytest.raises(Int8Refused) as e:
        export_int8(Fragile(1e4).eval(), _info(squares), out)
    message = str(e.value)
    assert "FP32 1.0000" in message and "nothing was written" in message
    int8 = float(re.search(r"INT8 ([0-9.]+)", message).group(1))
    assert int8 < 0.6  # all background: IoU 1 - share of square pixels for background, 0 for square
    assert not out.exists() and list(tmp_path.iterdir()) == [squares]


def test_int8_bad_options(squares: Path, tmp_path: Path) -> None:
    from seglab.errors import ConfigError, DataError
    from seglab.export.int8 import Int8Options, export_int8

    model, info = Fragile(0.0).eval(), _info(squares)
    with pytest.raises(ConfigError, match="--calib-images"):
        export_int8(model, info, tmp_path / "m.onnx", Int8Options(calib_images=0))
    with pytest.raises(ConfigError, match="--max-drop"):
        export_int8(model, info, tmp_path / "m.onnx", Int8Options(max_drop=-1))
    with pytest.raises(DataError, match="--data"):
        export_int8(model, info, tmp_path / "m.onnx", Int8Options(data=str(tmp_path / "none")))
    with pytest.raises(DataError, match="no images"):
        export_int8(model, info, tmp_path / "m.onnx", Int8Options(calib_split="train"))
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_int8_prints_both_scores(semantic_run: dict, tmp_path: Path, capsys) -> None:
    from seglab.cli import main

    out = tmp_path / "m8.onnx"
    assert main(["export", str(semantic_run["ckpt"]), "--out", str(out), "--int8", "--data",
                 str(semantic_run["data"]), "--max-drop", "1"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "FP32" in printed and "INT8" in printed and "stored in the file's metadata" in printed and out.is_file()
    import onnx

    note = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["seglab.int8"])
    assert note["images"] == 4 and note["calib_images"] == 4
    assert main(["export", str(semantic_run["ckpt"]), "--out", str(tmp_path / "x.onnx"), "--int8",
                 "--data", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "x.onnx").exists()


def _mean_graph(path: Path, axes: list[int], keepdims: int, form: str = "initializer") -> None:
    """x (1, 3, H, W) -> ReduceMean(axes, keepdims) -> Mul by x: a squeeze-excite average. ``form``: the axes as an
    initializer or a Constant node (opset 18, shapes inferred and not), or as an attribute (opset 13)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if form == "attribute":
        nodes, inits, opset = [helper.make_node("ReduceMean", ["x"], ["m"], axes=axes, keepdims=keepdims)], [], 13
    else:
        nodes, opset = [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=keepdims)], 18
        inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes")] if form == "initializer" else []
        if form.startswith("constant"):
            nodes.insert(0, helper.make_node("Constant", [], ["axes"], value_ints=axes))
    nodes.append(helper.make_node("Mul", ["x", "m"] if keepdims else ["m", "m"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(proto if form == "constant-raw" else onnx.shape_inference.infer_shapes(proto), str(path))


@pytest.mark.parametrize(("axes", "keepdims", "form", "rewritten"), [
    ([2, 3], 1, "initializer", 1), ([-1, -2], 1, "initializer", 1), ([1], 1, "initializer", 0),
    ([2, 3], 0, "initializer", 0), ([2, 3], 1, "attribute", 1), ([1, 2], 1, "attribute", 0),
    ([2, 3], 1, "constant", 1), ([2, 3], 1, "constant-raw", 1)])
def test_spatial_means_become_global_pools_with_equal_outputs(tmp_path: Path, axes, keepdims, form,
                                                              rewritten) -> None:
    """Only a kept-dims mean over H and W is a GlobalAveragePool (onnxruntime quantizes that one, not ReduceMean),
    whichever way the exporter wrote the axes; the rewritten graph computes the same numbers, and other means are
    left alone."""
    import onnx
    import onnxruntime as ort

    from seglab.export.int8 import spatial_means_as_global_pools

    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    _mean_graph(src, axes, keepdims, form)
    assert spatial_means_as_global_pools(src, dst) == rewritten
    assert dst.is_file() == bool(rewritten)
    if rewritten:
        rewritten_graph = onnx.load(str(dst)).graph
        assert [n.op_type for n in rewritten_graph.node] == ["GlobalAveragePool", "Mul"]  # axes inputs dropped too
        assert not rewritten_graph.initializer
        x = np.random.default_rng(0).standard_normal((1, 3, 5, 7)).astype(np.float32)
        want = x * x.mean(axis=(2, 3), keepdims=True)  # the textbook squeeze-excite product
        got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_quantize_applies_the_rewrite(tmp_path: Path) -> None:
    """The INT8 file holds a (quantized) GlobalAveragePool where the FP32 export had a spatial ReduceMean."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    from seglab.export.int8 import quantize

    rng = np.random.default_rng(0)
    feeds = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(2)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    _mean_graph(tmp_path / "fp32.onnx", [2, 3], 1)
    quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", Reader())
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert "ReduceMean" not in ops and "GlobalAveragePool" in ops and "QuantizeLinear" in ops


def _hard_graph(path: Path) -> None:
    """x -> HardSwish -> a; x -> HardSigmoid(alpha 0.2, beta 0.4) -> b; y = a + b: both hard activations, one with
    non-default constants, feeding one output."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("HardSwish", ["x"], ["a"]),
             helper.make_node("HardSigmoid", ["x"], ["b"], alpha=0.2, beta=0.4),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))


def test_hard_activations_become_clips_with_equal_outputs(tmp_path: Path) -> None:
    """HardSwish and HardSigmoid become Mul/Add/Clip (which onnxruntime keeps in 8 bits) computing the textbook
    formulas: hardsigmoid(x) = clip(alpha x + beta, 0, 1), hardswish(x) = x relu6(x + 3) / 6."""
    import onnx
    import onnxruntime as ort

    from seglab.export.int8 import hard_activations_as_clips

    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    _hard_graph(src)
    assert hard_activations_as_clips(src, dst) == 2
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert "HardSwish" not in ops and "HardSigmoid" not in ops and ops.count("Clip") == 2
    x = np.linspace(-8, 8, 3 * 4 * 9, dtype=np.float32).reshape(1, 3, 4, 9)
    want = x * np.clip(x + 3, 0, 6) / 6 + np.clip(0.2 * x + 0.4, 0, 1)
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    plain = tmp_path / "c.onnx"
    _mean_graph(plain, [2, 3], 1)
    assert hard_activations_as_clips(plain, tmp_path / "d.onnx") == 0 and not (tmp_path / "d.onnx").exists()


def _swish_conv_graph(path: Path, rng: np.random.Generator, shared: bool) -> None:
    """x -> HardSigmoid -> Mul by x (a hard-swish, as onnxruntime's pre-processing writes it) -> Conv(W, b) -> y;
    with ``shared`` the weight also feeds a second Conv on x, so it may not be rescaled."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("HardSigmoid", ["x"], ["g"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["x", "g"], ["s"]),
             helper.make_node("Conv", ["s", "w", "b"], ["c"], pads=[1, 1, 1, 1])]
    nodes += [helper.make_node("Conv", ["x", "w", "b"], ["d"], pads=[1, 1, 1, 1]),
              helper.make_node("Add", ["c", "d"], ["y"])] if shared else [helper.make_node("Identity", ["c"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))


@pytest.mark.parametrize("shared", [False, True], ids=["own-weights", "shared-weights"])
def test_hard_swish_scale_moves_into_the_next_convolution(tmp_path: Path, shared: bool) -> None:
    """A hard-swish feeding only a convolution that owns its weights loses its Mul by 1/6 (the weights take it:
    x * clip(x + 3, 0, 6) convolved with W / 6); with a weight shared by another node the plain Mul/Add/Clip form
    stays. Either way the graph computes what it computed."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from seglab.export.int8 import hard_activations_as_clips

    rng = np.random.default_rng(3)
    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    _swish_conv_graph(src, rng, shared)
    assert hard_activations_as_clips(src, dst) == 1
    graph = onnx.load(str(dst)).graph
    ops = [n.op_type for n in graph.node]
    assert "HardSigmoid" not in ops and ops.count("Mul") == (2 if shared else 1)
    w_before = numpy_helper.to_array(next(t for t in onnx.load(str(src)).graph.initializer if t.name == "w"))
    w_after = numpy_helper.to_array(next(t for t in graph.initializer if t.name == "w"))
    np.testing.assert_allclose(w_after, w_before if shared else w_before / 6, rtol=1e-6)
    x = rng.uniform(-6, 6, (1, 3, 9, 11)).astype(np.float32)
    want, got = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
                 for p in (src, dst))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_no_fold_into_weights_a_graph_output_or_an_old_opset_could_see(tmp_path: Path) -> None:
    """A hard-swish whose product is also a graph output keeps its scale (the output must stay hard-swish); below
    opset 11 (Clip without bound inputs) nothing is rewritten."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from seglab.export.int8 import hard_activations_as_clips

    rng = np.random.default_rng(4)
    src = tmp_path / "a.onnx"
    _swish_conv_graph(src, rng, shared=False)
    proto = onnx.load(str(src))
    proto.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, None))  # the swish itself
    onnx.save(proto, str(src))
    assert hard_activations_as_clips(src, tmp_path / "b.onnx") == 1
    rewritten = onnx.load(str(tmp_path / "b.onnx")).graph
    w = numpy_helper.to_array(next(t for t in rewritten.initializer if t.name == "w"))
    np.testing.assert_array_equal(w, numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "w")))
    x = rng.uniform(-6, 6, (1, 3, 7, 5)).astype(np.float32)
    want, got = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})
                 for p in (src, tmp_path / "b.onnx"))
    for a, b in zip(want, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    proto.opset_import[0].version = 10
    onnx.save(proto, str(src))
    assert hard_activations_as_clips(src, tmp_path / "c.onnx") == 0 and not (tmp_path / "c.onnx").exists()


def test_quantize_keeps_hard_activations_in_int8(tmp_path: Path) -> None:
    """The INT8 file has no float HardSwish / HardSigmoid left, and still computes them (within 8-bit steps)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader

    from seglab.export.int8 import quantize

    rng = np.random.default_rng(0)
    feeds = iter([{"x": (4 * rng.standard_normal((1, 3, 8, 8))).astype(np.float32)} for _ in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    _hard_graph(tmp_path / "fp32.onnx")
    quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", Reader())
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert "HardSwish" not in ops and "HardSigmoid" not in ops and "QuantizeLinear" in ops
    x = (4 * rng.standard_normal((1, 3, 8, 8))).astype(np.float32).clip(-8, 8)
    want = x * np.clip(x + 3, 0, 6) / 6 + np.clip(0.2 * x + 0.4, 0, 1)
    got = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(got - want).max() < 0.25  # a few 8-bit steps of a range about 10 wide
