"""The review page in a real browser: headless Chromium from the system's packages, driven by Selenium.

`.ci/run` installs chromium and chromium-driver when they are missing; where neither they nor selenium can be
had, these tests skip and say why. Nothing is downloaded at test time.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.review import review
from seglab.review.rows import Sample
from seglab.review.sources import Source

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no system chromium + chromedriver (apt-get "
                                "install chromium chromium-driver; .ci/run does it)")
WINDOW = (1280, 900)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(semantic_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return review(semantic_run["run"], semantic_run["data"], "val", tmp_path_factory.mktemp("rv") / "review").out


def _order(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#table tbody tr')].map(r => r.dataset.stem)")


def _errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _csv(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "images.csv").read_text())))


def test_page_opens_in_worst_first_order_and_sorts(browser, page: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((page / "index.html").as_uri())
    table = _csv(page)
    assert _order(browser) == [r["image"] for r in table]
    assert not _errors(browser)
    def header():  # the head is redrawn on each sort
        return browser.find_element(By.CSS_SELECTOR, '#table th[data-key="mean_confidence"]')

    header().click()
    by_conf = [r["image"] for r in sorted(table, key=lambda r: float(r["mean confidence"]))]
    assert by_conf != [r["image"] for r in table]  # sorting by it does reorder this table
    assert _order(browser) == by_conf and header().get_attribute("aria-sort") == "ascending"
    header().click()
    assert _order(browser) == by_conf[::-1] and header().get_attribute("aria-sort") == "descending"
    # filtering by a class keeps the images where it is in the truth or the prediction
    record = json.loads((page / "images.json").read_text())
    browser.execute_script("const s = document.getElementById('class-filter'); s.value = '1';"
                           "s.dispatchEvent(new Event('change'));")
    assert set(_order(browser)) == {r["stem"] for r in record["images"] if 1 in r["classes_present"]}


def test_clicking_a_row_opens_its_panel(browser, page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((page / "index.html").as_uri())
    assert not browser.find_element(By.ID, "panel").is_displayed()
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not any("/panels/" in name for name in loaded)  # full panels load only when opened
    stem = _csv(page)[2]["image"]
    browser.find_element(By.CSS_SELECTOR, f'#table tbody tr[data-stem="{stem}"]').click()
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.find_element(By.ID, "panel").is_displayed()
    assert browser.find_element(By.ID, "panel-title").text.startswith(stem)
    figures = browser.find_elements(By.CSS_SELECTOR, "#tiles figure")
    assert [f.get_attribute("data-layer") for f in figures] == ["image", "truth", "prediction", "error map",
                                                                "confidence"]
    browser.execute_script("const s = document.getElementById('opacity'); s.value = 25;"
                           "s.dispatchEvent(new Event('input'));")
    assert {o.value_of_css_property("opacity") for o in browser.find_elements(By.CSS_SELECTOR, "#tiles .over")} \
        == {"0.25", "1"}  # the confidence layer stays opaque
    record = {r["stem"]: r for r in json.loads((page / "images.json").read_text())["images"]}
    strip = browser.find_element(By.CSS_SELECTOR, '#tiles figure[data-layer="truth"] .over')
    assert record[stem]["files"]["layers"] in strip.value_of_css_property("background-image")
    assert browser.execute_script("return [...document.querySelectorAll('#tiles img')].every(i => i.complete && "
                                  "i.naturalWidth > 0)")
    assert not _errors(browser)
    # the screenshot's structure: the five tiles side by side at the top, the same size, and drawn
    shot = tmp_path / "shot.png"
    browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] == WINDOW[0] and pixels.std() > 10
    rects = [f.rect for f in figures]
    assert len({round(r["y"]) for r in rects}) == 1 and all(r["width"] > 100 for r in rects)
    assert [r["x"] for r in rects] == sorted(r["x"] for r in rects)
    y0, x0 = int(rects[0]["y"] + 10), int(rects[0]["x"] + 10)
    tile = pixels[y0:y0 + 60, x0:x0 + 60]
    assert tile.std() > 0 or tile.mean() != 255  # the photo is drawn where its tile is (not page background)
    legend = browser.find_element(By.ID, "legend").text
    assert all(name in legend for name in ("background", "square", "bar", "ignore"))


def test_a_thousand_images_load_only_thumbnails(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from seglab.review.api import finish_review, image_row
    from seglab.review.render import Painter
    from seglab.review.stats import DatasetStats

    rng = np.random.default_rng(0)
    palette = np.array([[0, 0, 0], [200, 0, 0], [0, 200, 0]], np.uint8)
    out = tmp_path / "review"
    painter, stats, rows = Painter(out, palette, 255), DatasetStats(3), []
    for i in range(1000):  # the page is what is tested: one image's pictures serve every row
        truth = rng.integers(0, 3, (8, 8))
        pred = np.where(rng.random((8, 8)) < 0.3, rng.integers(0, 3, (8, 8)), truth)
        metrics = {"mean_iou": rng.random(), "pixel_accuracy": rng.random(), "boundary_iou": rng.random(),
                   "per_class_iou": rng.random(3).tolist()}  # made up: the page is what is tested
        sample = Sample(f"im{i:04d}", rng.integers(0, 255, (8, 8, 3)).astype(np.uint8), truth, pred,
                        rng.random((8, 8)).astype(np.float32), metrics)
        files = painter.write(0, sample) if i == 0 else rows[0]["files"]
        if i == 0:
            stats.add(truth, pred, sample.confidence)
        rows.append(image_row(i, sample, files, 255, 3))
    painter.close()
    source = Source("semantic", ["a", "b", "c"], palette, 255, "synthetic", tmp_path, "val", 1000, lambda: iter(()))
    finish_review(source, out, rows, stats)
    browser.get((out / "index.html").as_uri())
    assert len(browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == 1000
    assert browser.execute_script("return [...document.querySelectorAll('#table img')].every(i => i.loading === "
                                  "'lazy')")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not any("/panels/" in name for name in loaded) and len(loaded) < 1000
    assert _order(browser) == [r["image"] for r in _csv(out)]
    assert not _errors(browser)
