"""`seglab serve` under load on 127.0.0.1: N clients for M seconds (default 8 x 30) of valid, oversize, corrupt and
non-image uploads; the full version of tests/deploy/test_serve.py's short run.

A tiny random-weight U-Net bundle (``base_channels=8``) is exported, served with ``--workers 2 --max-bytes 100000``
and driven by :func:`seglab.deploy.loadtest.run_load`. Reported: wrong answers, 5xx, 503, p50/p95 of the valid
requests, throughput, and the server's RSS after the warm-up and after the run (target: within 10 %).

Usage: python benchmarks/serve_load.py [--clients 8] [--seconds 30] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from _common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    from PIL import Image

    from seglab.checkpoint import CheckpointInfo
    from seglab.deploy.loadtest import run_load, standard_cases
    from seglab.deploy.server import encode_png
    from seglab.export import export_checkpoint
    from seglab.models import build_model
    from seglab.runtime import load_bundle, predict_image

    tmp = Path(tempfile.mkdtemp(prefix="seglab-serve-load-"))
    model = build_model("unet", 3, base_channels=8).eval()
    info = CheckpointInfo.from_dict({"task": "semantic", "model": {"name": "unet", "num_classes": 3, "options": {}},
                                     "classes": ["a", "b", "c"], "mean": [0.5] * 3, "std": [0.25] * 3})
    export_checkpoint(model, info, tmp / "model.onnx")
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    bundle = load_bundle(tmp / "model.onnx")
    expected = encode_png(predict_image(bundle, image), bundle.palette)
    max_bytes = max(100_000, 2 * len(buf.getvalue()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "seglab", "serve", str(tmp / "model.onnx"), "--port", str(port),
                             "--workers", "2", "--threads", "1", "--max-bytes", str(max_bytes)])
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        report = run_load("127.0.0.1", port, standard_cases(buf.getvalue(), expected, max_bytes),
                          clients=args.clients, seconds=args.seconds, server_pid=proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    record = report.summary()
    record.pop("failures")
    by_case = record.pop("by_case")
    row = {**record, **{f"n_{k}": v for k, v in by_case.items()}, "image": f"{args.size}x{args.size} RGB PNG",
           "rss_growth": None if report.rss_growth is None else round(report.rss_growth, 4)}
    print(row)
    write_result("serve_load", f"seglab serve: {args.clients} clients x {args.seconds:g} s on 127.0.0.1", [row],
                 notes="Mix per client: half valid images (answer must equal the runtime's class map byte for byte), "
                       "the rest oversize (413), truncated (400) and non-image (400) uploads. Targets: wrong = 0, "
                       "server_errors = 0, RSS after within 10 % of after the warm-up. `make bench` runs it.")


if __name__ == "__main__":
    main()
