"""Coloured PLY and prediction-vs-ground-truth PNG of a segmented scene."""

import matplotlib.image as plt_image
import numpy as np
import pytest
from plyfile import PlyData

from largekernel3d.analysis.segmentation_views import class_colors, colorize, plot_segmentation, write_labelled_ply

IGNORE = -100


def _scene(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    pts = (rng.random((n, 3)) * [5.0, 4.0, 2.5]).astype(np.float32)
    gt = np.minimum((pts[:, 2] / 2.5 * 4).astype(np.int64), 3)
    gt[rng.random(n) < 0.1] = IGNORE
    pred = np.where(rng.random(n) < 0.8, np.maximum(gt, 0), 5)
    return pts, pred, gt


def test_colorize_uses_one_colour_per_class_and_grey_for_ignore():
    labels = np.array([0, 1, 19, IGNORE, 25, -1])
    c = colorize(labels, 20)
    np.testing.assert_allclose(c[:3], class_colors(20)[[0, 1, 19]])
    np.testing.assert_allclose(c[3:], np.tile([0.6, 0.6, 0.6], (3, 1)))
    assert len({tuple(x) for x in class_colors(20)}) == 20


def test_ply_holds_points_colours_prediction_and_truth(tmp_path):
    pts, pred, gt = _scene()
    path = write_labelled_ply(tmp_path / "s.ply", pts, pred, gt, 20)
    v = PlyData.read(str(path))["vertex"]
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), pts)
    np.testing.assert_array_equal(v["pred"], pred)
    np.testing.assert_array_equal(v["label"], np.where(gt == IGNORE, -1, gt))
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1)
    np.testing.assert_array_equal(rgb, (colorize(pred, 20) * 255).round().astype(np.uint8))


def test_ply_rejects_mismatched_arrays(tmp_path):
    pts, pred, gt = _scene()
    with pytest.raises(ValueError, match="points must be"):
        write_labelled_ply(tmp_path / "s.ply", pts, pred[:-1], gt, 20)


def test_png_is_written(tmp_path):
    pts, pred, gt = _scene()
    names = [f"class{i}" for i in range(20)]
    path = plot_segmentation(tmp_path / "s.png", pts, pred, gt, names, title="scene")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    path2 = plot_segmentation(tmp_path / "u.png", pts, pred, None, names)  # unlabelled scene
    assert path2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # without labels the ground-truth and error panels (top row, first and last third) are grey only
    labelled, unlabelled = (plt_image.imread(str(q))[..., :3] for q in (path, path2))
    assert labelled.shape == unlabelled.shape

    def colourful(img):
        h, w = img.shape[0] // 2, img.shape[1] // 3
        sat = img.max(-1) - img.min(-1)
        return [(sat[:h, :w] > 0.25).mean(), (sat[:h, 2 * w :] > 0.25).mean()]

    assert min(colourful(labelled)) > 0.002 and max(colourful(unlabelled)) == 0.0
