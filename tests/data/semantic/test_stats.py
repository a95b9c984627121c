"""Dataset statistics against numbers computed by hand (`seglab data stats`: tests/cli/test_data_cmd.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.semantic.stats import class_weights, compute_stats
from seglab.errors import DataError

# Two 2x3 train images. Label A: class 0 x3, 1 x1, 2 x1, ignore x1. Label B: 0 x1, 1 x4, ignore x1.
LABEL_A = [[0, 0, 1], [0, 255, 2]]
LABEL_B = [[1, 1, 1], [0, 1, 255]]


def _write(root: Path, stem: str, rgb: tuple[int, int, int], label: list[list[int]], split: str = "train") -> None:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((2, 3, 3), rgb, np.uint8)).save(root / "images" / split / f"{stem}.png")
    Image.fromarray(np.array(label, np.uint8)).save(root / "labels" / split / f"{stem}.png")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    _write(tmp_path, "a", (255, 0, 51), LABEL_A)
    _write(tmp_path, "b", (0, 0, 153), LABEL_B)
    (tmp_path / "classes.txt").write_text("road\ncar\nsign\nbike\n")  # class 3 never appears
    return tmp_path


def test_stats_match_hand_counts(tiny: Path) -> None:
    s = compute_stats(tiny)
    assert s["num_images"] == 2 and s["num_classes"] == 4
    assert s["classes"] == ["road", "car", "sign", "bike"]
    assert s["pixel_counts"] == [4, 5, 1, 0]  # A: 3,1,1  B: 1,4,0
    assert s["ignored_pixels"] == 2
    assert s["images_per_class"] == [2, 2, 1, 0]
    assert s["frequencies"] == pytest.approx([0.4, 0.5, 0.1, 0.0])
    # inverse: N / (K' * n_c) with N = 10 labelled pixels, K' = 3 present classes
    assert s["weights_inverse"] == pytest.approx([10 / 12, 10 / 15, 10 / 3, 0.0])
    # median frequency: freq_c = n_c / T_c; T_0 = T_1 = 10 (both images), T_2 = 5 (image A only)
    # freq = 0.4, 0.5, 0.2 -> median 0.4 -> weights 1.0, 0.8, 2.0
    assert s["weights_median"] == pytest.approx([1.0, 0.8, 2.0, 0.0])
    assert s["absent_classes"] == ["bike"]
    # R: six pixels of 1.0 and six of 0.0; G: all 0; B: six of 0.2 and six of 0.6
    assert s["mean"] == pytest.approx([0.5, 0.0, 0.4])
    assert s["std"] == pytest.approx([0.5, 0.0, 0.2])


def test_pixel_weighted_mean_of_inverse_weights_is_one(tiny: Path) -> None:
    s = compute_stats(tiny, images=False)
    assert "mean" not in s
    assert float(np.dot(s["frequencies"], s["weights_inverse"])) == pytest.approx(1.0)


def test_num_classes_inferred_without_classes_txt(tiny: Path) -> None:
    (tiny / "classes.txt").unlink()
    s = compute_stats(tiny)
    assert s["num_classes"] == 3 and s["absent_classes"] == []
    assert s["classes"] == ["class_0", "class_1", "class_2"]


def test_class_weights_methods(tiny: Path) -> None:
    assert class_weights(tiny, "train", 4, method="median") == pytest.approx([1.0, 0.8, 2.0, 0.0])
    assert class_weights(tiny, "train", 4) == pytest.approx([10 / 12, 10 / 15, 10 / 3, 0.0])
    with pytest.raises(Exception, match="inverse' or 'median"):
        class_weights(tiny, "train", 4, method="mean")


def test_label_out_of_range_names_the_file(tiny: Path) -> None:
    (tiny / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"a\.png.*outside 0\.\.1"):
        compute_stats(tiny, num_classes=2)


def test_unpaired_stems_are_reported(tiny: Path) -> None:
    (tiny / "labels" / "train" / "b.png").unlink()
    with pytest.raises(DataError, match="no partner"):
        compute_stats(tiny)


def test_grayscale_images_give_one_channel(tmp_path: Path) -> None:
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.fromarray(np.array([[0, 255], [255, 255]], np.uint8)).save(tmp_path / "images" / "train" / "g.png")
    Image.fromarray(np.array([[0, 1], [1, 1]], np.uint8)).save(tmp_path / "labels" / "train" / "g.png")
    s = compute_stats(tmp_path)
    assert s["mean"] == pytest.approx([0.75]) and s["std"] == pytest.approx([np.sqrt(0.75 * 0.25)])
    rgb = compute_stats(tmp_path, channels=3)  # gray promoted to RGB, as a 3-channel model reads it
    assert rgb["mean"] == pytest.approx([0.75] * 3)


def test_stats_on_camvid(shared_datasets: Path) -> None:
    s = compute_stats(shared_datasets / "camvid")
    for key in ("weights_inverse", "weights_median"):
        assert len(s[key]) == 11 and all(w > 0 for w in s[key]), key
    median = s["weights_median"]
    # Rare classes (Pole 2, Pedestrian 9, Bicyclist 10) outweigh the big ones (Sky 0, Building 1, Road 3).
    assert min(median[2], median[9], median[10]) > 4 * max(median[0], median[1], median[3])


def test_progress_callback_counts_images(tiny: Path) -> None:
    calls: list[tuple[int, int]] = []
    compute_stats(tiny, callback=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def _large(root: Path, h: int = 1200, w: int = 900) -> int:
    """One smooth RGB image and its label (PNG-friendly), returns the decoded image's bytes."""
    yy, xx = np.mgrid[:h, :w]
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)).save(
        root / "images" / "train" / "a.png")
    Image.fromarray(((xx // 100 + yy // 100) % 3).astype(np.uint8)).save(root / "labels" / "train" / "a.png")
    return h * w * 3


def test_stats_stream_in_small_dtypes(tmp_path: Path, monkeypatch) -> None:
    """Issue 26 reliability 4: float64/int64 copies held ~47 bytes per pixel (3.5 GB for one 8000x8000 image)."""
    import tracemalloc

    import seglab.data.label_geometry as G
    import seglab.data.semantic.stats as S
    from seglab.data.label_geometry import label_geometry

    for module in (G, S):  # bands of 64 K pixels: their fixed temporaries small beside this test's 1 M pixels
        monkeypatch.setattr(module, "BAND", 1 << 16)
    image_bytes = _large(tmp_path)
    tracemalloc.start()
    s = compute_stats(tmp_path)
    stats_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    label_geometry([tmp_path / "labels" / "train" / "a.png"], 3)
    geometry_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stats_peak < 2.5 * image_bytes, stats_peak  # the decoded image, its label, bounded row bands
    assert geometry_peak < 12 * image_bytes / 3, geometry_peak  # int32 component ids + masks per label pixel
    # the moments from 256-bin histograms equal float64 arithmetic on the pixels (independent reference)
    yy, xx = np.mgrid[:1200, :900]
    ref = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).reshape(-1, 3) / 255.0
    assert s["mean"] == pytest.approx(ref.mean(0).tolist(), abs=1e-9)
    assert s["std"] == pytest.approx(ref.std(0).tolist(), abs=1e-9)


def test_mixed_channels_are_read_from_every_header(tmp_path: Path) -> None:
    """Issue 26 reliability 3: the first image decided; a colour dataset whose first image is gray read as gray."""
    from seglab.data.semantic.stats import image_headers, majority_channels

    _write(tmp_path, "a", (10, 10, 10), LABEL_A)
    Image.open(tmp_path / "images" / "train" / "a.png").convert("L").save(tmp_path / "images" / "train" / "a.png")
    for stem in ("b", "c"):
        _write(tmp_path, stem, (200, 0, 51), LABEL_B)
    paths = sorted((tmp_path / "images" / "train").iterdir())
    assert image_headers(paths) == [(3, 2, 1), (3, 2, 3), (3, 2, 3)]
    assert majority_channels(image_headers(paths)) == 3 and majority_channels([(1, 1, 1), (1, 1, 3)]) == 3
    assert len(compute_stats(tmp_path)["mean"]) == 3  # the majority, not the first file
