"""labels.png: class pixel shares and object sizes, counted on hand-made labels; the picture's size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seglab.viz import connected_regions, dataset_stats, plot_label_stats
from seglab.viz.stats import semantic_stats


def _same_partition(ids: np.ndarray, expected: np.ndarray) -> bool:
    pairs = set(zip(ids.ravel().tolist(), expected.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(ids)) == len(np.unique(expected))


def test_connected_regions_are_4_connected_runs_of_one_value() -> None:
    mask = np.array([[1, 1, 0, 2],
                     [0, 1, 0, 2],
                     [1, 0, 0, 0],
                     [1, 0, 2, 2]])
    expected = np.array([[0, 0, 1, 2],
                         [3, 0, 1, 2],
                         [4, 1, 1, 1],
                         [4, 1, 5, 5]])  # the diagonal 1s do not touch (4-connectivity)
    assert _same_partition(connected_regions(mask), expected)


def test_connected_regions_follow_a_long_spiral() -> None:
    """A one-pixel-wide spiral is one region however long its path (propagation must not stop early)."""
    m = np.zeros((41, 41), int)
    y, x, (dy, dx), length = 20, 20, (0, 1), 1
    m[y, x] = 1
    while length < 40:
        for _ in range(2):
            for _ in range(length):
                y, x = y + dy, x + dx
                if 0 <= y < 41 and 0 <= x < 41:
                    m[y, x] = 1
            dy, dx = dx, -dy
        length += 2  # rings two pixels apart, so they never touch
    ids = connected_regions(m)
    assert len(np.unique(ids[m == 1])) == 1


def test_semantic_stats_count_pixels_objects_and_ignore() -> None:
    lab = np.zeros((10, 10), np.uint8)
    lab[1:3, 1:3] = 1   # object of 4 px
    lab[6:9, 6:9] = 1   # object of 9 px
    lab[0, 5:] = 255    # 5 ignore pixels
    stats = semantic_stats([lab, np.full((10, 10), 2, np.uint8)], num_classes=3, ignore_index=255)
    assert stats.labels == 2 and stats.ignored == 5
    assert stats.pixels.tolist() == [100 - 13 - 5, 13, 100]
    assert sorted(stats.objects[1]) == [0.04, 0.09] and stats.objects[2] == [1.0]
    assert len(stats.objects[0]) == 1  # the background is one region around the squares


def test_dataset_stats_reads_at_most_limit_labels(tiny_data, tmp_path) -> None:
    from seglab.data.semantic.dataset import SegmentationFolder

    folder = SegmentationFolder(tiny_data, "train")
    stats = dataset_stats(folder, 3, 255, limit=5)
    assert (stats.labels, stats.total) == (5, 16)
    assert all(len(stats.objects[c]) >= 5 for c in (1, 2))  # a square and a disc in every label
    out = plot_label_stats(stats, folder.classes, tmp_path / "labels.png")
    with Image.open(out) as im:
        assert im.size == (1300, 320)  # 13 in wide, the 3.2 in floor for four rows (3 classes + ignore)


@pytest.mark.parametrize("n", [60, 150])
def test_label_picture_grows_with_the_classes(n: int, tmp_path) -> None:
    lab = np.arange(n * 4).reshape(4, n) % n
    stats = semantic_stats([lab], n, 255)
    out = plot_label_stats(stats, [f"c{i}" for i in range(n)], tmp_path / "labels.png")
    with Image.open(out) as im:
        assert im.size == (1300, round(100 * min(0.24 * (n + 1) + 1.6, 40.0)))


def test_instance_stats_count_instances(mask_root, instance_spec) -> None:
    from seglab.data.instance.coco import open_instance_split

    stats = dataset_stats(open_instance_split(mask_root, "train"), 4, None)
    area = instance_spec.H * instance_spec.W
    sizes = {c: sorted(round(s * area) for s in stats.objects[c]) for c in (1, 2, 3)}
    assert sizes == {1: [100, 100], 2: [100, 320], 3: [288]}
    assert stats.pixels[0] == 3 * area - 908 and stats.ignore_index is None
