"""`seglab serve` on 127.0.0.1: right answers, a 4xx with a message for every bad upload, 503 when the queue is
full, a load and fault test (short: 8 clients x 3 s), and SIGTERM finishing the request in flight."""

from __future__ import annotations

import http.client
import io
import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.errors import ConfigError

pytest.importorskip("onnxruntime")


def post(port: int, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/predict", body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def png(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def gradient(h: int, w: int) -> np.ndarray:
    """A smooth RGB image: many pixels, few PNG bytes."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // max(1, w - 1)), (y * 255 // max(1, h - 1)), (x + y) % 256], -1).astype(np.uint8)


def expected_png(bundle_file: Path, image: np.ndarray) -> bytes:
    """What the runtime predicts for ``image`` as the server's palette PNG (the server must send exactly this)."""
    from seglab.deploy.server import encode_png
    from seglab.runtime import load_bundle, predict_image

    bundle = load_bundle(bundle_file)
    return encode_png(predict_image(bundle, image), bundle.palette)


def test_predict_health_info_and_every_bad_upload(bundle_file: Path, semantic_run: dict, start_server,
                                                  get_json) -> None:
    _, port = start_server(bundle_file, "--max-bytes", "200000", "--max-pixels", "4000000")
    assert get_json(port, "/health") == (200, {"status": "ok", "in_flight": 0})
    status, info = get_json(port, "/info")
    assert status == 200 and info["classes"] == semantic_run["classes"] and info["backend"] == "onnxruntime"
    assert info["model"] == "unet" and info["input_size"] == [48, 48] and info["version"]

    image = np.asarray(Image.open(semantic_run["data"] / "images" / "val" / "s0.png"))
    status, body = post(port, png(image))
    assert status == 200 and body == expected_png(bundle_file, image)
    labels = np.asarray(Image.open(io.BytesIO(body)))
    assert labels.shape == image.shape[:2]
    boundary = b"XyZ"
    form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s0.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png(image) + b"\r\n--XyZ--\r\n")
    assert post(port, form, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}) == (200, body)

    cases = {
        "not an image": (b"hello, I am text" * 10, 400),
        "truncated": (png(image)[:200], 400),
        "upload of": (png(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)), 413),
        "pixels": (png(gradient(2100, 2100)), 413),
        "CMYK": (_cmyk_jpeg(), 422),
        "empty upload": (b"", 400),
    }
    for words, (payload, code) in cases.items():
        status, body = post(port, payload)
        message = json.loads(body)["error"]
        assert status == code and words in message, (words, status, message)
        assert "Traceback" not in message
    assert get_json(port, "/health")[1]["in_flight"] == 0


def _cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 50, 100, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def test_load_and_faults_short(bundle_file: Path, semantic_run: dict, start_server) -> None:
    """CI's short version of `make bench`'s run: 8 clients x 3 s of valid, oversize, corrupt and non-image
    uploads; no wrong answer, no 5xx, no 503 (queue 16 > 8 clients), RSS within 10 % of after the warm-up."""
    from seglab.deploy.loadtest import run_load, standard_cases

    proc, port = start_server(bundle_file, "--max-bytes", "100000", "--workers", "2")
    image = np.asarray(Image.open(semantic_run["data"] / "images" / "val" / "s2.png"))
    cases = standard_cases(png(image), expected_png(bundle_file, image), 100_000)
    report = run_load("127.0.0.1", port, cases, clients=8, seconds=3.0, server_pid=proc.pid)
    print(json.dumps(report.summary()))
    assert report.requests > 8 and report.by_case["valid"] > 0 and report.by_case["corrupt"] > 0
    assert report.wrong == 0 and report.server_errors == 0 and report.busy == 0, report.failures
    assert report.p95_ms >= report.p50_ms > 0
    assert report.rss_growth is not None and abs(report.rss_growth) <= 0.10


def test_full_queue_answers_503(bundle_file: Path, start_server, get_json) -> None:
    """One worker, no queue: while a big image is predicted, a second request is turned away with 503."""
    _, port = start_server(bundle_file, "--workers", "1", "--queue", "0")
    slow = png(gradient(1400, 1400))
    results: list[int] = []
    t = threading.Thread(target=lambda: results.append(post(port, slow)[0]))
    t.start()
    _wait_in_flight(port, get_json)
    status, body = post(port, png(gradient(20, 20)))
    t.join(timeout=60)
    assert status == 503 and "busy" in json.loads(body)["error"] and results == [200]


def test_sigterm_finishes_the_request_in_flight(bundle_file: Path, start_server, get_json) -> None:
    proc, port = start_server(bundle_file)
    slow = gradient(1400, 1400)
    results: list[tuple[int, bytes]] = []
    t = threading.Thread(target=lambda: results.append(post(port, png(slow))))
    t.start()
    _wait_in_flight(port, get_json)
    proc.send_signal(signal.SIGTERM)
    t.join(timeout=60)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its drain
    status, body = results[0]
    assert status == 200 and np.asarray(Image.open(io.BytesIO(body))).shape == (1400, 1400)
    with pytest.raises(OSError):
        get_json(port, "/health")  # gone: no new connections after SIGTERM


def _wait_in_flight(port: int, get_json) -> None:
    deadline = time.monotonic() + 30
    while get_json(port, "/health")[1]["in_flight"] < 1:
        assert time.monotonic() < deadline, "the slow request never started"
        time.sleep(0.01)


def test_serve_refuses_bad_limits_and_panoptic(bundle_file: Path) -> None:
    from seglab.cli import main

    assert main(["serve", str(bundle_file), "--workers", "0"]) == 2
    assert main(["serve", str(bundle_file), "--queue", "-1"]) == 2
    assert main(["serve", str(bundle_file.with_name("missing.onnx")), "--port", "1"]) == 2


def test_run_predictors_semantic_and_instance(semantic_run: dict, instance_run: dict, bundle_file: Path) -> None:
    """A run is served through torch: its class map equals the bundle's; an instance run answers JSON detections
    whose RLE masks decode (pycocotools) to the masks the model predicted."""
    from pycocotools import mask as coco_mask

    from seglab.deploy.predictors import load_predictor

    image = np.asarray(Image.open(semantic_run["data"] / "images" / "val" / "s1.png"))
    run, bundle = load_predictor(semantic_run["run"]), load_predictor(bundle_file)
    assert run.backend == "torch" and bundle.backend == "onnxruntime"
    assert np.array_equal(run.predict(image), bundle.predict(image))
    detector = load_predictor(instance_run["ckpt"], score_threshold=0.0)  # random weights: keep every detection
    shapes = np.asarray(Image.open(next((instance_run["data"] / "images" / "val").iterdir())).convert("RGB"))
    out = json.loads(json.dumps(detector.predict(shapes)))  # JSON-ready
    assert len(out["masks"]) > 0
    assert len(out["classes"]) == len(out["scores"]) == len(out["boxes"]) == len(out["masks"])
    assert set(out["classes"]) <= set(instance_run["classes"][1:])
    assert out["scores"] == sorted(out["scores"], reverse=True)
    for rle in out["masks"]:
        assert coco_mask.decode({**rle, "counts": rle["counts"].encode()}).shape == shapes.shape[:2]


def test_instance_bundle_answers_the_runs_detections(instance_run: dict, instance_bundle: Path) -> None:
    """An instance bundle is served without torch and answers what its run answers (same classes, order and masks;
    scores and boxes to float rounding)."""
    from seglab.deploy.predictors import load_predictor

    run = load_predictor(instance_run["ckpt"], score_threshold=0.0)
    bundle = load_predictor(instance_bundle, score_threshold=0.0)
    assert bundle.backend == "onnxruntime" and bundle.task == "instance" and bundle.info()["task"] == "instance"
    shapes = np.asarray(Image.open(next((instance_run["data"] / "images" / "val").iterdir())).convert("RGB"))
    picture = np.asarray(Image.fromarray(shapes).resize((83, 61), Image.BILINEAR))  # not the detector's size
    a, b = run.predict(picture), bundle.predict(picture)
    assert len(a["masks"]) > 0 and (a["height"], a["width"]) == (b["height"], b["width"]) == (61, 83)
    assert a["classes"] == b["classes"] and a["masks"] == b["masks"]
    np.testing.assert_allclose(a["scores"], b["scores"], atol=2e-4)
    np.testing.assert_allclose(a["boxes"], b["boxes"], atol=2e-2)
    with pytest.raises(ConfigError, match="--score-threshold"):
        load_predictor(instance_bundle, score_threshold=1.5)  # at start-up, not as a 500 on every request


def test_a_served_run_predicts_at_its_training_scale(semantic_run: dict, monkeypatch) -> None:
    """A run trained with ``data.resize`` is served at that scale, as ``seglab predict RUN`` predicts it."""
    import dataclasses

    import seglab.checkpoint
    import seglab.inference
    from seglab.deploy.predictors import load_predictor

    model, info = seglab.checkpoint.load_checkpoint(semantic_run["run"])
    scaled = dataclasses.replace(info, resize=32)
    monkeypatch.setattr(seglab.checkpoint, "load_checkpoint", lambda path: (model, scaled))
    seen, predict_tiled = [], seglab.inference.predict_tiled

    def spy(*args, **kw):
        seen.append(kw.get("resize"))
        return predict_tiled(*args, **kw)

    monkeypatch.setattr(seglab.inference, "predict_tiled", spy)
    image = np.asarray(Image.open(semantic_run["data"] / "images" / "val" / "s1.png"))
    want = predict_tiled(model.eval(), image, seglab.inference.TileOptions(), mean=info.mean, std=info.std,
                         resize=32).numpy()
    got = load_predictor(semantic_run["run"]).predict(image)
    assert seen == [32] and got.shape == image.shape[:2] and np.array_equal(got, want)
