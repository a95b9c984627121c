"""`seglab models`: the listing from model_facts.json (fast: no timm), the facts checked against the registry,
fresh counts and their sources, and the per-model detail with its options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from seglab.cli import main
from seglab.models import build_model, list_models
from seglab.models.summary import count_gflops, count_parameters, default_classes, model_facts

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "stale: run `python benchmarks/model_facts.py` and commit src/seglab/models/model_facts.json"


@pytest.fixture(scope="module")
def facts() -> dict:
    return model_facts()


def test_models_table(capsys, monkeypatch, facts) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for entry in list_models():
        assert entry.name in out
    unet = f"{count_parameters('unet', 21) / 1e6:.2f} M"  # a fresh count; CPU img/s from benchmarks/models.py
    assert f" unet semantic {unet} 386 @512 0.18 ISBI mIoU 0.799, CamVid mIoU 0.281 " in out
    assert " lraspp_mobilenet_v3 semantic 3.22 M 3.95 @512 11 - " in out
    assert " maskrcnn_resnet18_fpn instance 18.23 M 32.4 @320 - Penn-Fudan mask AP 0.232 " in out
    assert "start here" in out
    for hint in facts["start_here"]:
        model = f"{hint['model']} {hint['options']}".strip()
        assert f"{model} {hint['use']}: {hint['why']}" in out
    assert "maskrcnn_resnet18_fpn" in {h["model"] for h in facts["start_here"]}
    assert "base_channels=64" not in out and "seglab models NAME" in out  # options live in the detail view


def test_model_detail_shows_options_and_sources(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models", "unet"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "base_channels=64" in out and "upsample=transpose" in out and "pretrained=None" in out
    assert "386 for one 512x512 image" in out and "31.04 M (21 classes)" in out
    assert "mIoU 0.799 on val (5 images)" in out and "docs/results.md" in out
    assert "start here small data, CPU" in out and "--model unet" in out
    assert main(["models", "unett"]) == 2
    assert "Did you mean 'unet'?" in capsys.readouterr().err


def test_facts_match_the_registry(facts) -> None:
    """Every registered model is listed with its current task, input and options (and nothing else is)."""
    assert sorted(facts["models"]) == [e.name for e in list_models()], REGENERATE
    for entry in list_models():
        row = facts["models"][entry.name]
        assert row["task"] == entry.task and row["default_input"] == entry.default_input, REGENERATE
        assert row["options"] == json.loads(json.dumps(entry.options())), f"{entry.name}: {REGENERATE}"
        assert row["classes"] == default_classes(entry) and row["gflops_input"] == entry.default_input


@pytest.mark.parametrize("name", ["unet", "lraspp_mobilenet_v3", "fcn32s", "maskrcnn_resnet18_fpn"])
def test_facts_match_a_fresh_count(facts, name) -> None:
    row = facts["models"][name]
    assert row["params"] == count_parameters(name, row["classes"]), REGENERATE
    if row["task"] == "semantic":  # meta device: instant; instance models run for real (seconds)
        assert row["gflops"] == pytest.approx(count_gflops(name, row["classes"], row["gflops_input"]), abs=0.01)


def _reference_gflops(model: nn.Module, x: torch.Tensor) -> float:
    """2 * multiply-adds of every convolution and linear layer, from their shapes (forward hooks)."""
    total = []

    def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if isinstance(m, nn.Linear):
            total.append(2 * out.numel() * m.in_features)
        elif isinstance(m, nn.ConvTranspose2d):  # every input pixel meets every kernel weight once
            k = m.kernel_size[0] * m.kernel_size[1]
            total.append(2 * inputs[0].numel() * m.out_channels * k // m.groups)
        else:
            k = m.kernel_size[0] * m.kernel_size[1]
            total.append(2 * out.numel() * m.in_channels * k // m.groups)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    return sum(total) / 1e9


@pytest.mark.parametrize("name, options", [("unet", {"base_channels": 8}), ("fcn32s", {"base_channels": 4,
                                                                                       "fc_channels": 16})])
def test_gflops_count_two_per_multiply_add(name, options) -> None:
    """Against an independent count from layer shapes: a multiply and an add are two operations."""
    model = build_model(name, 3, **options).eval()
    expected = _reference_gflops(model, torch.rand(1, 3, 64, 64))
    assert count_gflops(name, 3, 64, **options) == pytest.approx(expected, rel=1e-6)


def test_speed_and_quality_come_from_their_sources(facts) -> None:
    bench = json.loads((ROOT / "benchmarks" / "results" / "models.json").read_text())
    measured = {r["model"]: r["fp32_img_s"] for r in bench["rows"] if "fp32_img_s" in r}
    for name, row in facts["models"].items():
        assert row["cpu_img_s"] == measured.get(name), f"{name}: {REGENERATE}"
    assert facts["speed"]["date"] == bench["date"] and facts["speed"]["machine"] == bench["machine"]
    results = (ROOT / "docs" / "results.md").read_text()
    recorded = [(name, q) for name, row in facts["models"].items() for q in row["quality"]]
    assert {name for name, _ in recorded} == {"unet", "maskrcnn_resnet18_fpn", "panoptic_fpn_resnet18"}
    for _, q in recorded:
        assert str(q["value"]) in results and q["source"].startswith("docs/results.md#")


def test_listing_imports_neither_timm_nor_torchvision() -> None:
    """The listing reads model_facts.json; building the zoo (timm, torchvision) took seconds before."""
    code = ("import json, sys; from seglab.cli import main; rc = main(['models']); "
            "print(json.dumps([rc] + [m for m in ('timm', 'torchvision', 'torch', 'seglab.models') "
            "if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "120", "PATH": "", "PYTHONPATH": str(ROOT / "src")})
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0], done.stderr


def test_meta_count_equals_real_count() -> None:
    model = build_model("unet", 21, base_channels=8, encoder="resnet18")
    assert sum(p.numel() for p in model.parameters()) == count_parameters("unet", 21, base_channels=8,
                                                                          encoder="resnet18")


def _headline(text: str, pattern: str) -> float:
    found = re.search(pattern, text)
    assert found, f"docs/results.md no longer has {pattern!r}: update QUALITY in benchmarks/model_facts.py"
    return float(found.group(1))


def test_quality_is_the_newest_headline_of_results_md(facts) -> None:
    """`seglab models` cites the numbers docs/results.md leads with now (they were older runs' numbers)."""
    text = (ROOT / "docs" / "results.md").read_text()
    plan_row = next(line for line in text.splitlines() if line.startswith("| **seglab plan** |")).split("|")
    want = {
        ("unet", "ISBI"): _headline(plan_row[2], r"^\s*([\d.]+) mIoU"),
        ("unet", "CamVid"): _headline(plan_row[3], r"^\s*([\d.]+) mIoU"),
        ("maskrcnn_resnet18_fpn", "Penn-Fudan"): _headline(plan_row[4], r"mask AP \**([\d.]+)"),
        ("panoptic_fpn_resnet18", "demo"): _headline(text, r"fresh clone of the final commit gives PQ ([\d.]+)"),
        ("panoptic_fpn_resnet18", "CamVid"): _headline(text, r"\| all \(11 classes\) \| ([\d.]+) \|"),
    }
    got = {(name, q["short"]): q["value"] for name, row in facts["models"].items() for q in row["quality"]}
    assert got == want, REGENERATE
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
             for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for name, row in facts["models"].items():
        for q in row["quality"]:
            assert q["source"].split("#", 1)[1] in slugs, f"{name}: {q['source']} names no heading"
