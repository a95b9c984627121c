"""`seglab review` after inference: seconds per 100 CamVid-size (960x720, 11 classes) images, by stage.

Run: ``python benchmarks/review_render.py [--images 100] [--out /tmp/review_bench]``. The truth and the photo
are CamVid's (scaled x2; made-up regions without ../shared), the prediction and confidence are made up, so
only the review's own work is timed, in the order ``write_review`` does it per image:

- ``metrics``: the per-image numbers (``SegMetrics`` + ``BoundaryMetrics`` on the image, as ``evaluate``);
- ``stats``: the dataset sections (confusion, distance to boundary, component sizes, calibration);
- ``render``: the pictures (thumbnail, photo, and one strip of the truth, prediction, error and confidence
  layers) and, once,
  ``images.json`` / ``images.csv`` / ``index.html``.

Metrics and stats are timed on 10 distinct images (scaled to 100); rendering on every image, the last
files in flight and the page files included. The target (issue 27) is rendering <= 2 s per 100 images; the
table gives every stage so the whole cost after inference is visible too. The page is then opened in headless
Chromium when it is installed (time to the table drawn).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import write_result
from seglab.review.api import finish_review, image_row
from seglab.review.render import Painter
from seglab.review.rows import Sample, semantic_metrics
from seglab.review.stats import DatasetStats
from seglab.viz.colors import default_palette

H, W, K = 720, 960, 11


CAMVID = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"


def make_sample(i: int, rng: np.random.Generator) -> Sample:
    """A CamVid-size sample: a CamVid val image and its label scaled x2 to 960x720 when ../shared has them
    (else Voronoi regions over a smooth picture), a prediction with one class taken for another and edges
    shifted by 2 px, and a smooth confidence map (low near the class edges, as a model's is)."""
    from seglab.review.stats import boundary_distance

    images = sorted((CAMVID / "images" / "val").glob("*.png"))
    if images:
        path = images[(7 * i) % len(images)]
        small = np.asarray(Image.open(path).convert("RGB"))
        label = np.asarray(Image.open(CAMVID / "labels" / "val" / path.name)).astype(np.int64)
        image = np.repeat(np.repeat(small, 2, 0), 2, 1)[:H, :W]
        truth = np.repeat(np.repeat(label, 2, 0), 2, 1)[:H, :W]
    else:
        seeds, classes = rng.integers(0, (H, W), (40, 2)), rng.integers(0, K, 40)
        yy, xx = np.mgrid[0:H:8, 0:W:8]
        nearest = ((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2).argmin(-1)
        truth = np.kron(classes[nearest], np.ones((8, 8), np.int64))
        image = (np.asarray(default_palette(K, None))[np.minimum(truth, K - 1)] * 0.8).astype(np.uint8)
    pred = np.roll(truth, 2, axis=1)
    pred[pred == 1] = 2
    pred[pred == 255] = 0
    conf = np.clip(0.5 + 0.08 * boundary_distance(truth), 0, 0.99).astype(np.float32)
    return Sample(f"im{i:04d}", image, truth, pred, conf, {})


def run(n: int, out: Path) -> dict:
    rng = np.random.default_rng(0)
    samples = [make_sample(i, rng) for i in range(min(n, 10))]  # 10 distinct images, cycled
    palette = default_palette(K, ignore_index=None)
    painter = Painter(out, palette, 255)
    stats = DatasetStats(K, 255)
    times = {"metrics": [], "stats": [], "render": []}
    for s in samples:  # the per-image numbers and counts: timed once per distinct image
        t0 = time.perf_counter()
        s.metrics = semantic_metrics(s.pred, s.truth, K, 255)
        t1 = time.perf_counter()
        stats.add(s.truth, s.pred, s.confidence)
        times["metrics"].append(t1 - t0)
        times["stats"].append(time.perf_counter() - t1)
    rows = []
    cpu = time.process_time()  # CPU seconds of every thread: what the rendering costs, whatever else runs
    for i in range(n):  # the rendering: every image
        s = samples[i % len(samples)]
        t = time.perf_counter()
        rows.append(image_row(i, s, painter.write(i, s), 255, K))
        times["render"].append(time.perf_counter() - t)
    from seglab.review.sources import Source

    source = Source("semantic", [f"class_{c}" for c in range(K)], palette, 255, "benchmark", out, "val", n,
                    lambda: iter(()))
    t = time.perf_counter()
    painter.close()  # the last pictures in flight
    result = finish_review(source, out, rows, stats)
    page_s = time.perf_counter() - t
    render_cpu = time.process_time() - cpu
    per100 = {k: 100 * statistics.mean(v) for k, v in times.items()}
    per100["render"] = 100 * (sum(times["render"]) + page_s) / n
    return {"per100": per100, "render_cpu_per100": 100 * render_cpu / n,
            "median_ms": {k: 1000 * statistics.median(v) for k, v in times.items()},
            "page": result.page, "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}


def open_in_browser(page: Path) -> float | None:
    """Seconds from navigation to the table drawn in headless Chromium (None without it)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.binary_location = chromium
    d = webdriver.Chrome(service=Service(driver), options=options)
    try:
        t = time.perf_counter()
        d.get(page.as_uri())
        d.execute_script("return document.querySelectorAll('#table tbody tr').length")
        return time.perf_counter() - t
    finally:
        d.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="review_bench_"))
    r = run(args.images, out / "review")
    load = open_in_browser(r["page"])
    rows = [{"stage": f"{stage} (wall)", "s per 100 images": round(v, 3),
             "median ms / image": round(r["median_ms"][stage], 1)} for stage, v in r["per100"].items()]
    rows.append({"stage": "render, CPU time (all threads)", "s per 100 images": round(r["render_cpu_per100"], 3),
                 "median ms / image": ""})
    rows.append({"stage": "total after inference", "s per 100 images": round(sum(r["per100"].values()), 3),
                 "median ms / image": ""})
    notes = (f"{args.images} images of 960x720, 11 classes; page folder {r['bytes'] / 1e6:.1f} MB. Render = "
             "3 files per image (thumbnail, photo, one PNG strip of the 4 label layers; long side capped at 640 px, "
             "encoded on up to 4 threads) + the page files. "
             + (f"Headless Chromium draws the {args.images}-row table in {load:.2f} s. " if load else "")
             + f"Load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared "
             "machine: absolute times are inflated by that much).")
    write_result("review_render", "seglab review: seconds per 100 CamVid-size images after inference", rows, notes)
    for row in rows:
        print(row)
    print(notes)


if __name__ == "__main__":
    main()
