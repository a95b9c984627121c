"""`seglab bench`: the timing rule (warm-up excluded, percentiles), its parsers, and one real ONNX row."""

from __future__ import annotations

import pytest

from seglab.deploy.bench import BenchOptions, bench, parse_input, parse_options, timings
from seglab.errors import ConfigError


def test_timings_exclude_warmup_and_take_percentiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls take 100, 1, 2, ..., 10 ms (the first is warm-up): p50 of 1..10 is 5.5 ms, mean 5.5 -> 181.8 img/s."""
    import seglab.deploy.bench as b

    ticks = [100, *range(1, 11)]
    now = [0.0]
    calls = []

    def call() -> None:
        now[0] += ticks[len(calls)] / 1000
        calls.append(1)

    monkeypatch.setattr(b.time, "perf_counter", lambda: now[0])
    row = timings(call, BenchOptions(warmup=1, iters=10, min_iters=10, seconds=1e9))
    assert len(calls) == 11 and row["calls"] == 10
    assert row["p50_ms"] == pytest.approx(5.5) and row["img_s"] == pytest.approx(1000 / 5.5)
    assert row["p95_ms"] == pytest.approx(9.55)  # numpy's linear percentile of 1..10


def test_parsers() -> None:
    assert parse_input("3x512x256") == (3, 512, 256)
    assert parse_options(["base_channels=16", "encoder=resnet18"]) == {"base_channels": 16, "encoder": "resnet18"}
    for bad in ("3x512", "3xAx5", "0x4x4"):
        with pytest.raises(ConfigError, match="--input"):
            parse_input(bad)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["base_channels"])
    with pytest.raises(ConfigError, match="unknown backend"):
        bench("unet", BenchOptions(backends=("tensorrt",)))


def test_onnx_row_of_a_bundle(bundle_file) -> None:
    """``measure`` (what each spawned process runs) on a real bundle; torch rows of a bundle are n/a."""
    from seglab.deploy.bench import measure

    options = BenchOptions(input=(3, 32, 32), threads=1, warmup=1, iters=3, min_iters=3)
    row = measure("onnx-fp32", {"onnx-fp32": str(bundle_file)}, options)
    assert row["backend"] == "onnx-fp32" and row["calls"] == 3 and row["p95_ms"] >= row["p50_ms"] > 0
    assert row["img_s"] > 0 and row["peak_rss_mib"] > 0
    report = bench(str(bundle_file), BenchOptions(input=(3, 32, 32), backends=("torch-fp32", "onnx-int8")))
    assert [r["note"] for r in report.rows] == ["n/a: a bundle holds no torch model",
                                                "n/a: give the run to compare FP32 and INT8"]
    assert report.threads >= 1 and report.cpu


def test_cli_bench_prints_the_table(bundle_file, capsys) -> None:
    from seglab.cli import main

    assert main(["bench", str(bundle_file), "--input", "3x32x32", "--threads", "1", "--iters", "3",
                 "--warmup", "1"]) == 0
    printed = capsys.readouterr().out
    assert "thread(s)" in printed and "CPU" in printed
    rows = {line.split()[0]: line for line in printed.splitlines() if line.split() and line.split()[0] in
            ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")}
    assert set(rows) == {"torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"}
    assert "3 timed calls" in rows["onnx-fp32"] and "n/a" in rows["torch-fp32"]
    assert main(["bench", "unet", "--input", "3x512"]) == 2


def test_rounds_interleave_backends_and_pool_their_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``rounds`` the backends run in turn (A B, A B, A B), each in its own process; a backend's row pools
    every timed call (p50 of the pooled list, img/s from its mean) and keeps the largest peak RSS."""
    import seglab.deploy.bench as b

    order = []
    times = {"onnx-fp32": [[10.0, 12.0], [20.0, 22.0], [30.0, 32.0]], "onnx-int8": [[5.0, 5.0], [6.0, 6.0], [7.0, 9.0]]}

    def fake_run(backend, source, options):
        order.append(backend)
        ms = times[backend][sum(1 for o in order if o == backend) - 1]
        return {"backend": backend, **b.summary(ms), "peak_rss_mib": 100.0 + len(order)}

    monkeypatch.setattr(b, "run_isolated", fake_run)
    monkeypatch.setattr(b, "_prepare", lambda *a: ({}, "semantic", {}))
    report = bench("x.onnx", BenchOptions(backends=("onnx-fp32", "onnx-int8"), rounds=3))
    assert order == ["onnx-fp32", "onnx-int8"] * 3
    fp32, int8 = report.rows
    assert fp32["calls"] == 6 and fp32["rounds"] == 3 and "times" not in fp32
    assert fp32["p50_ms"] == pytest.approx(21.0) and fp32["img_s"] == pytest.approx(1000 / 21.0)
    assert int8["img_s"] == pytest.approx(1000 / 6.333333) and int8["peak_rss_mib"] == 106.0
    assert report.speedup("onnx-int8", "onnx-fp32") == pytest.approx(21.0 / 6.333333)
    with pytest.raises(ConfigError, match="--rounds"):
        bench("x.onnx", BenchOptions(rounds=0))


def test_an_instance_bundle_is_refused(instance_bundle) -> None:
    with pytest.raises(ConfigError, match="times semantic models"):
        bench(str(instance_bundle), BenchOptions(input=(3, 32, 32), backends=("onnx-fp32",)))
