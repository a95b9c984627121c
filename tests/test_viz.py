"""Palettes, overlays, panels and plots: colors against the published VOC map, files with real sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.errors import DataError
from seglab.viz import (
    IGNORE_COLOR,
    colorize,
    default_palette,
    error_map,
    load_palette,
    overlay,
    plot_confusion,
    plot_curves,
    save_panels,
    to_uint8_image,
)

# Colors of the PASCAL VOC 2012 devkit color map (background, aeroplane, bicycle, bird, boat, person,
# tvmonitor), written out by hand from the devkit's documentation.
VOC = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
       15: (192, 128, 128), 20: (0, 64, 128)}


def test_default_palette_matches_voc_and_marks_ignore() -> None:
    # classes 0-19 get the perceptually distinct colours (tests/viz/test_palette_distance.py), class 0 black
    # as in VOC; from class 20 on the VOC map
    pal = default_palette(256)
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    for i, rgb in VOC.items():
        assert tuple(pal[i]) == rgb or (i < 20 and i > 0)
    assert tuple(pal[0]) == (0, 0, 0) and tuple(pal[20]) == VOC[20]
    assert tuple(pal[255]) == IGNORE_COLOR
    assert len({tuple(c) for c in pal[:255]}) == 255  # every class its own color


def test_ignore_color_is_no_class_color() -> None:
    """Class 0 (black in VOC, Sky in CamVid) and ignore must never look alike: magenta, far from every class."""
    pal = default_palette(256, ignore_index=None).astype(int)
    assert IGNORE_COLOR not in {tuple(c) for c in pal}
    assert np.sqrt(((pal - np.array(IGNORE_COLOR)) ** 2).sum(1)).min() > 60
    assert default_palette(3).shape == (3, 3)


def test_load_palette_both_line_forms(tmp_path) -> None:
    p = tmp_path / "palette.txt"
    p.write_text("# comment\nbackground 0 0 0\n255 10 20\n\nroad surface 1,2,3\n")
    pal = load_palette(p)
    assert pal.tolist() == [[0, 0, 0], [255, 10, 20], [1, 2, 3]]


@pytest.mark.parametrize("text", ["cat 1 2\n", "cat 1 2 300\n", "cat r g b\n", "\n# only comments\n"])
def test_load_palette_bad_lines_name_the_file(tmp_path, text) -> None:
    p = tmp_path / "palette.txt"
    p.write_text(text)
    with pytest.raises(DataError, match="palette.txt"):
        load_palette(p)


def test_colorize_ignore_and_out_of_range() -> None:
    pal = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    mask = np.array([[0, 1], [255, 7]])
    out = colorize(mask, pal)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [40, 50, 60]
    assert out[1, 0].tolist() == list(IGNORE_COLOR)  # ignore, not black like class 0
    assert out[1, 1].tolist() == [255, 255, 255]  # id the palette lacks
    assert colorize(torch.tensor(mask), pal, ignore_color=(255, 255, 255))[1, 0].tolist() == [255, 255, 255]


def test_overlay_blends_by_alpha_and_keeps_ignored_pixels() -> None:
    img = np.full((2, 3, 3), 100, dtype=np.uint8)
    pal = np.array([[0, 0, 0], [200, 0, 250]], dtype=np.uint8)
    mask = np.array([[1, 1, 0], [255, 1, 0]])
    out = overlay(img, mask, pal, alpha=0.25)
    # hand-computed: 0.75 * 100 + 0.25 * c
    assert out[0, 0].tolist() == [125, 75, 138]  # 137.5 rounds half to even -> 138
    assert out[0, 2].tolist() == [75, 75, 75]
    assert out[1, 0].tolist() == [100, 100, 100]
    with pytest.raises(DataError, match="resize the mask"):
        overlay(img, np.zeros((3, 3), dtype=int), pal)


def test_error_map_colors() -> None:
    truth = np.array([[0, 1, 255]])
    pred = np.array([[0, 0, 1]])
    err = error_map(truth, pred)
    assert err[0, 0].tolist() == [0, 0, 0]
    assert err[0, 1].tolist() == [255, 40, 40]
    assert err[0, 2].tolist() == list(IGNORE_COLOR)


def test_to_uint8_image_undoes_normalization() -> None:
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.1, 0.25]
    raw = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1).expand(3, 2, 2)
    norm = (raw - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    out = to_uint8_image(norm, mean, std)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 128, 255]
    gray = to_uint8_image(np.full((4, 5), 7, dtype=np.uint8))
    assert gray.shape == (4, 5, 3) and int(gray.max()) == 7


def test_save_panels_sizes_and_missing_truth(tmp_path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    truth = rng.integers(0, 3, (32, 48))
    pred = truth.copy()
    pred[:4] = 0
    pal = default_palette(3)
    out = save_panels(tmp_path / "p.png", [(img, truth, pred), (torch.rand(3, 32, 48), None, pred)], pal,
                      class_names=["bg", "a", "b"], titles=["one", "two"])
    with Image.open(out) as im:
        w, h = im.size
    # 4 columns x 3 in, 2 rows x 3 in + 0.6 in for a one-line legend, at 100 dpi
    assert (w, h) == (1200, 660)
    out2 = save_panels(tmp_path / "q.png", [(img, None, pred)], pal, with_error=True)
    with Image.open(out2) as im:
        assert im.size == (600, 300)  # input | prediction only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "q.png"]  # no temp files left


def test_plot_curves_accepts_csv_strings_and_missing_values(tmp_path) -> None:
    rows = [{"epoch": "0", "train_loss": "1.2", "val_loss": "", "mean_iou": "0.1", "lr": "0.01"},
            {"epoch": "1", "train_loss": "0.8", "mean_iou": "0.3", "lr": "0.005"}]
    out = plot_curves(rows, tmp_path / "curves.png")
    with Image.open(out) as im:
        assert im.size == (1300, 360)
    out = plot_curves(rows, tmp_path / "marked.png", monitor="mean_iou", warmup_epochs=0.5)
    with Image.open(out) as im:
        assert im.size == (1300, 360)


def test_plot_confusion_normalized_and_checks_names(tmp_path) -> None:
    cm = torch.tensor([[5, 1], [0, 0]])
    out = plot_confusion(cm, ["bg", "fg"], tmp_path / "cm.png")
    assert out.stat().st_size > 0
    with pytest.raises(DataError, match="class names"):
        plot_confusion(cm, ["only one"], tmp_path / "bad.png")
    with pytest.raises(DataError, match="square"):
        plot_confusion(np.zeros((2, 3)), None, tmp_path / "bad.png")


def test_instance_ids_follow_scores_and_drop_hidden_instances() -> None:
    from seglab.viz import instance_ids

    masks = np.zeros((4, 3, 4), bool)
    masks[0, 0, :2] = True                     # low score, partly under instance 1
    masks[1, 0, 1:3] = True                    # best score
    masks[2, 2, :] = True                      # middle score
    masks[3, 2, 1] = True                      # lowest score, entirely under instance 2: dropped
    ids, kept = instance_ids(masks, np.array([0.3, 0.9, 0.5, 0.1]))
    expected = np.array([[3, 1, 1, 0],
                         [0, 0, 0, 0],
                         [2, 2, 2, 2]])
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(kept, [1, 2, 0])
    ids, kept = instance_ids(masks[:0])
    assert ids.shape == (3, 4) and not ids.any() and len(kept) == 0
