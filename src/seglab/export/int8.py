"""``seglab export --int8``: a static INT8 bundle, shipped only when it scores within ``max_drop`` of FP32.

INT8 can collapse a model silently (outlier activations share one 8-bit scale with the signal; Ultralytics'
"near-zero mAP" INT8 exports while FP32 was fine). So the FP32 bundle is exported, quantized with
onnxruntime's static quantization (QDQ, per-channel weights) calibrated on the user's own images, and both
files are scored on the val split with seglab's metrics (:class:`seglab.metrics.SegMetrics`, the headline
``mean_iou``) through the same runtime ``seglab predict model.onnx`` uses. A drop above ``max_drop`` raises
:class:`Int8Refused` and nothing is written; a pass stores both numbers in the bundle's metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seglab.checkpoint import CheckpointInfo
from seglab.errors import ConfigError, DataError, SeglabError
from seglab.export.common import DOCS, ExportResult

HEADLINE = "mean_iou"


class Int8Refused(SeglabError):
    """The INT8 model scores more than ``max_drop`` below FP32 on the val split; nothing was written."""


@dataclass(frozen=True)
class Int8Options:
    """Where calibration and scoring images come from and how much the headline may drop."""

    data: str | None = None  # dataset root; default the run's data.root
    calib_split: str = "val"
    calib_images: int = 64
    eval_split: str = "val"
    max_drop: float = 0.01


@dataclass
class Int8Result:
    """The INT8 bundle written and the scores that let it through."""

    path: Path
    fp32: float
    int8: float
    metric: str
    images: int
    calib_images: int
    export: ExportResult | None = None


def split_pairs(root: Path, split: str) -> list[tuple[Path, Path | None]]:
    """``(image, label or None)`` of every image in ``root/images/<split>``, by file stem."""
    from seglab.data.io import IMAGE_EXTS, list_files

    images = list_files(root / "images" / split, IMAGE_EXTS)
    if not images:
        raise DataError(f"{root / 'images' / split}: no images to calibrate or score INT8 on. Pass --data ROOT "
                        f"(a seglab dataset) or another --calib-split; see {DOCS}.")
    labels = root / "labels" / split
    return [(p, (labels / f"{p.stem}.png") if (labels / f"{p.stem}.png").is_file() else None) for p in images]


def calibration_reader(bundle, paths: list[Path]):
    """An onnxruntime ``CalibrationDataReader`` feeding each image as the runtime would (resize, normalize)."""
    from onnxruntime.quantization import CalibrationDataReader

    from seglab.data.io import read_image
    from seglab.runtime.semantic import normalize, resize_planes, resized_size

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(paths)

        def get_next(self) -> dict[str, np.ndarray] | None:
            path = next(self.items, None)
            if path is None:
                return None
            x = normalize(read_image(path, channels=bundle.image_channels), bundle.in_channels, bundle.mean,
                          bundle.std)
            size = resized_size(x.shape[1], x.shape[2], bundle.resize)
            return {bundle.input_name: (resize_planes(x, size) if size != x.shape[1:] else x)[None]}

    return Reader()


def score_bundle(bundle, pairs: list[tuple[Path, Path | None]], num_classes: int, ignore_index: int) -> float:
    """The headline (``mean_iou``) of a bundle on labelled images, as ``seglab evaluate`` computes it."""
    import torch

    from seglab.data.io import read_image, read_label
    from seglab.metrics import SegMetrics
    from seglab.runtime import predict_image

    metrics = SegMetrics(num_classes, ignore_index=ignore_index)
    for image, label in pairs:
        if label is None:
            continue
        pred = predict_image(bundle, read_image(image, channels=bundle.image_channels))
        metrics.update(torch.from_numpy(pred)[None], torch.from_numpy(read_label(label).astype(np.int64))[None])
    return float(metrics.compute()[HEADLINE])


def quantize(fp32: Path, out: Path, reader) -> None:
    """Static QDQ quantization: int8 per-channel weights, uint8 activations calibrated by ``reader``.

    onnxruntime's pre-processing (graph optimization, shape inference) runs first, as its docs advise; a graph
    it cannot pre-process is quantized as exported.
    """
    import logging

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = fp32.with_name(fp32.stem + "-pre.onnx")
    try:
        quant_pre_process(str(fp32), str(source), skip_symbolic_shape=True)
    except Exception:  # onnxruntime raises its own types; the plain graph still quantizes
        source = fp32
    pooled = fp32.with_name(fp32.stem + "-pooled.onnx")
    if spatial_means_as_global_pools(source, pooled):
        source = pooled
    clipped = fp32.with_name(fp32.stem + "-clipped.onnx")
    if hard_activations_as_clips(source, clipped):
        source = clipped
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" notice is printed regardless
    try:
        quantize_static(str(source), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(level)


def spatial_means_as_global_pools(src: Path, dst: Path) -> int:
    """Rewrite each ``ReduceMean`` over H and W (kept dims, 4-D input) as the equal ``GlobalAveragePool``.

    Squeeze-excite blocks (MobileNetV3, LR-ASPP) average with ``x.mean((2, 3), keepdim=True)``, which exports as
    ReduceMean. onnxruntime quantizes GlobalAveragePool (QLinearGlobalAveragePool) but not ReduceMean, so each
    one dequantizes a whole feature map to float: LR-ASPP at 512 px spent 5.3 of its 41 ms there (INT8 1.37x
    FP32 on one thread; 1.64x with the rewrite). Returns how many nodes were rewritten; ``dst`` is written
    only when that is above zero.
    """
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(src))
    if not proto.graph.value_info:  # onnxruntime's pre-processing did not run: the ranks come from here
        proto = onnx.shape_inference.infer_shapes(proto)
    graph = proto.graph
    wanted = {n.input[1] for n in graph.node if n.op_type == "ReduceMean" and len(n.input) > 1}
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in wanted}
    for n in graph.node:  # axes from a Constant node (a tensor, or a list of ints)
        if n.op_type == "Constant" and n.output[0] in wanted and n.attribute:
            known[n.output[0]] = np.asarray(helper.get_attribute_value(n.attribute[0]) if
                                            n.attribute[0].name == "value_ints" else
                                            numpy_helper.to_array(n.attribute[0].t))
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in (*graph.input, *graph.value_info)
            if v.type.tensor_type.HasField("shape")}
    count = 0
    for index, node in enumerate(list(graph.node)):
        if node.op_type != "ReduceMean" or rank.get(node.input[0]) != 4:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")  # opset < 18: an attribute; from 18: the second input
        if axes is None and len(node.input) > 1 and node.input[1] in known:
            axes = np.ravel(known[node.input[1]]).tolist()
        if attrs.get("keepdims", 1) != 1 or axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            continue
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output),
                                                  name=f"seglab_spatial_mean_{count}"))
        count += 1
    if count:
        used = {name for n in graph.node for name in n.input}
        for init in [t for t in graph.initializer if t.name in wanted and t.name not in used]:
            graph.initializer.remove(init)  # the axes the rewritten means took (onnxruntime warns of unused ones)
        for const in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in wanted - used]:
            graph.node.remove(const)
        onnx.save(proto, str(dst))
    return count


def hard_activations_as_clips(src: Path, dst: Path) -> int:
    """Rewrite each ``HardSigmoid`` as ``Clip(alpha x + beta, 0, 1)`` (Mul, Add, Clip) and each ``HardSwish`` as
    ``x`` times that, so onnxruntime keeps them in 8 bits.

    onnxruntime quantizes neither op: each one dequantizes a feature map, computes in float and quantizes again,
    while Mul and Add run as QLinearMul / QLinearAdd and a Clip folds into the quantization range. Where a
    hard-swish (``HardSwish``, or ``HardSigmoid(x)`` times ``x``) feeds only convolutions that own their weights,
    the scale ``alpha`` moves into those weights instead (``x * Clip(x + beta / alpha, 0, 1 / alpha)``, weights
    times ``alpha``), which saves one element-wise op per activation. MobileNetV3 and LR-ASPP use 28 of them.
    Returns how many nodes were rewritten (0 below opset 11, whose Clip has no bound inputs); ``dst`` is written
    only when that is above zero.
    """
    import onnx

    proto = onnx.load(str(src))
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:  # Clip takes its bounds as inputs from opset 11
        return 0
    users: dict[str, list[Any]] = {}
    for n in graph.node:
        for name in n.input:
            users.setdefault(name, []).append(n)
    for value in graph.output:  # a graph output is a use no weight can absorb
        users.setdefault(value.name, []).append(value)
    fed = {value.name for value in graph.input}  # an initializer the caller may override is not ours to scale
    weights = {t.name: t for t in graph.initializer if t.name not in fed and t.data_type == onnx.TensorProto.FLOAT}
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type in ("HardSigmoid", "HardSwish"):
            nodes += _as_clips(node, f"seglab_hard{count}", graph, users, weights)
            count += 1
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    if count:
        onnx.save(proto, str(dst))
    return count


def _as_clips(node: Any, k: str, graph: Any, users: dict[str, list[Any]], weights: dict[str, Any]) -> list[Any]:
    """The nodes replacing one hard activation (named ``k_*``); their constants go into ``graph``, and a folded
    ``alpha`` into the weights of the convolutions that follow."""
    from onnx import helper, numpy_helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    swish = node.op_type == "HardSwish"  # HardSwish(x) = x * HardSigmoid(x) with alpha 1/6, beta 0.5
    alpha, beta = (1 / 6, 0.5) if swish else (float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5)))
    x = node.input[0]
    product = node if swish else _times_input(node, users)
    convs = _conv_users(product.output[0], users, weights) if product is not None and alpha > 0 else None
    if convs is not None:  # x * Clip(x + beta / alpha, 0, 1 / alpha) = hardswish / alpha; weights * alpha
        for conv in convs:
            w = weights[conv.input[1]]
            w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * np.float32(alpha), w.name))
        constants = {"beta": beta / alpha, "lo": 0.0, "hi": 1 / alpha}
    else:
        constants = {"alpha": alpha, "beta": beta, "lo": 0.0, "hi": 1.0}
    for name, value in constants.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), f"{k}_{name}"))
    out = [] if convs is not None else [helper.make_node("Mul", [x, f"{k}_alpha"], [f"{k}_scaled"], name=f"{k}_mul")]
    gate = f"{k}_gate" if swish else node.output[0]
    out += [helper.make_node("Add", [x if convs is not None else f"{k}_scaled", f"{k}_beta"], [f"{k}_shifted"],
                             name=f"{k}_add"),
            helper.make_node("Clip", [f"{k}_shifted", f"{k}_lo", f"{k}_hi"], [gate], name=f"{k}_clip")]
    if swish:
        out.append(helper.make_node("Mul", [x, gate], list(node.output), name=f"{k}_swish"))
    return out


def _times_input(node: Any, users: dict[str, list[Any]]) -> Any:
    """The Mul computing ``x * HardSigmoid(x)`` when that is the gate's only use (a hard-swish), else None."""
    uses = users.get(node.output[0], [])
    if len(uses) == 1 and getattr(uses[0], "op_type", "") == "Mul" and \
            sorted(uses[0].input) == sorted([node.input[0], node.output[0]]):
        return uses[0]
    return None


def _conv_users(name: str, users: dict[str, list[Any]], weights: dict[str, Any]) -> list[Any] | None:
    """The convolutions reading ``name`` as their input, when those are all its uses (no graph output either) and
    each owns its float32 weight initializer (a scale folded into the weights then reaches nothing else), else
    None."""
    uses = users.get(name, [])
    if not uses or any(getattr(n, "op_type", "") != "Conv" or n.input[0] != name or len(n.input) < 2
                       or n.input[1] not in weights or len(users.get(n.input[1], [])) != 1 for n in uses):
        return None
    return uses


def export_int8(model: nn.Module, info: CheckpointInfo, out: str | os.PathLike, options: Int8Options | None = None,
                callback: Callable[[str], None] | None = None) -> Int8Result:
    """Export ``model`` as an INT8 bundle at ``out``, or refuse when INT8 loses more than ``max_drop``.

    Raises:
        ConfigError: not a semantic checkpoint, ``calib_images`` < 1 or a negative ``max_drop``.
        DataError: no dataset (``--data``) or no labelled images in the scoring split.
        Int8Refused: the INT8 headline is more than ``max_drop`` below FP32; nothing is written.
    """
    from seglab.export.api import export_checkpoint
    from seglab.fileio import atomic_path, check_output_path
    from seglab.runtime import load_bundle

    options = options or Int8Options()
    root = _check(info, options)
    out = check_output_path(out)
    say = callback or (lambda text: None)
    pairs = split_pairs(root, options.eval_split)
    if not any(label for _, label in pairs):
        raise DataError(f"{root / 'labels' / options.eval_split}: no labels to score FP32 against INT8 on; "
                        "--int8 is refused without a scored split.")
    calib = [p for p, _ in split_pairs(root, options.calib_split)][: options.calib_images]
    with tempfile.TemporaryDirectory(prefix="seglab-int8-") as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        exported = export_checkpoint(model, info, fp32_path)
        fp32 = load_bundle(fp32_path)
        say(f"calibrating on {len(calib)} image(s) of {options.calib_split}")
        quantize(fp32_path, int8_path, calibration_reader(fp32, calib))
        say(f"scoring FP32 and INT8 on {options.eval_split}")
        n = sum(label is not None for _, label in pairs)
        a = score_bundle(fp32, pairs, len(info.classes), info.ignore_index)
        b = score_bundle(load_bundle(int8_path), pairs, len(info.classes), info.ignore_index)
        if not a - b <= options.max_drop:
            raise Int8Refused(f"INT8 refused: val {HEADLINE} FP32 {a:.4f}, INT8 {b:.4f} (drop {a - b:.4f} > --max-drop "
                              f"{options.max_drop:g}) on {n} image(s) of {options.eval_split}; nothing was written. "
                              f"Ship the FP32 bundle (export without --int8) or see {DOCS} for what loses INT8.")
        note = {"metric": HEADLINE, "split": options.eval_split, "images": n, "fp32": round(a, 6),
                "int8": round(b, 6), "calib_split": options.calib_split, "calib_images": len(calib)}
        with atomic_path(out) as target:
            _write_with_metadata(int8_path, target, fp32.meta, note)
    return Int8Result(out, a, b, HEADLINE, n, len(calib), exported)


def _check(info: CheckpointInfo, options: Int8Options) -> Path:
    if info.task != "semantic":
        raise ConfigError(f"--int8: {info.path} is an {info.task} checkpoint; INT8 bundles are made for semantic "
                          f"models. Export it without --int8; see {DOCS}.")
    if options.calib_images < 1:
        raise ConfigError(f"Expected --calib-images >= 1, but got {options.calib_images}.")
    if not options.max_drop >= 0:
        raise ConfigError(f"Expected --max-drop >= 0 (absolute {HEADLINE}), but got {options.max_drop}.")
    data = options.data or ((info.config or {}).get("data") or {}).get("root")
    if not data or not Path(data).is_dir():
        raise DataError(f"--int8 calibrates and scores on a dataset, but {data or 'none'} is not a folder (the run's "
                        "data.root). Pass --data ROOT.")
    return Path(data)


def _write_with_metadata(src: Path, target: Path, meta: dict[str, Any], note: dict[str, Any]) -> None:
    """The quantized graph with the FP32 bundle's metadata (quantization drops it) and the INT8 scores."""
    import onnx

    proto = onnx.load(str(src))
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    props["seglab.precision"] = "int8 weights (per channel) and uint8 activations, static QDQ; float32 in and out"
    props["seglab.int8"] = json.dumps(note)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(target))
