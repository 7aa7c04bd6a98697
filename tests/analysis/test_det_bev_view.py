"""The bird's-eye-view PNG: its size, and the class colour found where each box's outline and heading tick
project (box corners computed here from the box parameters), nothing drawn for filtered predictions."""

from __future__ import annotations

import io

import numpy as np
import pytest

from largekernel3d.analysis.bev_view import render_bev
from largekernel3d.analysis.segmentation_views import class_colors

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist", "Truck")


def scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.uniform([-20, -15, -2], [20, 15, 1], (20000, 3)), rng.uniform(0, 1, (20000, 1))], 1)
    gt = np.array(
        [
            [-10.0, 6.0, -0.5, 6.0, 3.0, 1.6, 0.5],
            [5.0, -6.0, -0.4, 4.0, 4.0, 1.8, -2.0],
            [10.0, 7.0, -0.6, 5.0, 2.5, 1.7, 2.8],
        ]
    )
    gt[:, :2] += rng.uniform(-1, 1, (3, 2))
    gt_labels = np.array([0, 1, 2])
    pred = np.array(
        [
            [-10.0, -7.0, -0.5, 5.0, 2.5, 1.5, -0.7],  # away from the ground truth, so that
            [-1.0, 7.0, -0.5, 4.0, 4.0, 1.5, 1.2],  # no outline crosses another
            [14.0, -5.0, -0.5, 5.0, 2.5, 1.5, -2.5],
            [-2.0, -10.0, -0.5, 5.0, 3.0, 1.5, 1.0],
        ]
    )  # the last one scores too low
    pred_labels = np.array([0, 1, 2, 3])
    scores = np.array([0.9, 0.6, 0.4, 0.1])
    return points, gt, gt_labels, pred, pred_labels, scores


def bev_corners(box: np.ndarray) -> np.ndarray:
    """Own corners: ``(x, y) + R(yaw) (+-dx / 2, +-dy / 2)`` going round the box."""
    c, s = np.cos(box[6]), np.sin(box[6])
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * box[3:5] / 2
    return box[:2] + local @ np.array([[c, s], [-s, c]])


def best_distance(image: np.ndarray, xy_pixel: np.ndarray, color: np.ndarray, radius: int = 2) -> float:
    """The smallest max-channel difference to ``color`` among the pixels within ``radius`` of a point."""
    col, row = int(round(xy_pixel[0])), int(round(xy_pixel[1]))
    patch = image[row - radius : row + radius + 1, col - radius : col + radius + 1, :3]
    return float(np.abs(patch - color).max(-1).min())


def render_both(tmp_path, **kwargs):
    """The PNG written by ``render_bev(path=...)`` and the figure of the same call (for its transform)."""
    import matplotlib.image as mpimg

    path = render_bev(path=tmp_path / "bev.png", **kwargs)
    image = mpimg.imread(path)
    fig = render_bev(**kwargs)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=fig.dpi, format="png")  # lays the figure out as the file was
    buffer.seek(0)
    assert np.array_equal(mpimg.imread(buffer, format="png"), image)
    ax = fig.axes[0]
    height = image.shape[0]

    def to_pixel(xy: np.ndarray) -> np.ndarray:
        p = ax.transData.transform(np.atleast_2d(xy))
        return np.stack([p[:, 0], height - p[:, 1]], 1)

    return path, image, to_pixel


def test_png_exists_with_the_asked_size(tmp_path):
    import matplotlib.image as mpimg

    points, gt, gt_labels, pred, pred_labels, scores = scene()
    path = render_bev(
        points,
        gt,
        gt_labels,
        pred,
        pred_labels,
        scores,
        class_names=CLASS_NAMES,
        path=tmp_path / "sub" / "bev.png",
        figsize=(8, 6),
        dpi=80,
        title="synthetic",
    )
    assert path.is_file() and path.suffix == ".png"
    assert mpimg.imread(path).shape[:2] == (480, 640)
    auto = render_bev(points[:, :3], gt, gt_labels, class_names=CLASS_NAMES, path=tmp_path / "auto.png", dpi=50)
    assert mpimg.imread(auto).shape[0] == 450  # 9 inches high by default


@pytest.mark.parametrize("color_by", ["height", "intensity"])
def test_outlines_and_heading_ticks_carry_the_class_colour(tmp_path, color_by):
    points, gt, gt_labels, pred, pred_labels, scores = scene(1)
    palette = class_colors(len(CLASS_NAMES))
    _, image, to_pixel = render_both(
        tmp_path,
        points=points,
        gt_boxes=gt,
        gt_labels=gt_labels,
        pred_boxes=pred,
        pred_labels=pred_labels,
        pred_scores=scores,
        class_names=CLASS_NAMES,
        point_cloud_range=[-20, -15, -3, 20, 15, 2],
        figsize=(9, 7),
        dpi=100,
        score_threshold=0.3,
        color_by=color_by,
    )
    for box, label in zip(gt, gt_labels):
        corners = bev_corners(box)
        along = [corners[k] + t * (corners[(k + 1) % 4] - corners[k]) for k in range(4) for t in (0.3, 0.5, 0.7)]
        for xy in to_pixel(np.array(along)):
            assert best_distance(image, xy, palette[label]) < 0.06, (label, xy)
        heading = np.array([np.cos(box[6]), np.sin(box[6])])
        ahead = to_pixel(box[:2] + 0.7 * box[3] / 2 * heading)[0]
        behind = to_pixel(box[:2] - 0.7 * box[3] / 2 * heading)[0]
        assert best_distance(image, ahead, palette[label], radius=1) < 0.06
        assert best_distance(image, behind, palette[label], radius=1) > 0.2  # the tick points forwards only
    for box, label in zip(pred[:3], pred_labels[:3]):  # dashed: most sample points hit a dash
        corners = bev_corners(box)
        along = [
            corners[k] + t * (corners[(k + 1) % 4] - corners[k]) for k in range(4) for t in np.linspace(0.1, 0.9, 9)
        ]
        hits = [best_distance(image, xy, palette[label], radius=1) < 0.06 for xy in to_pixel(np.array(along))]
        assert 0.4 < np.mean(hits) < 1.0, np.mean(hits)
    # the prediction under the score threshold is not drawn: its class colour appears nowhere
    assert np.abs(image[..., :3] - palette[3]).max(-1).min() > 0.1


def test_bad_input_is_named():
    points, gt, gt_labels, *_ = scene()
    with pytest.raises(ValueError, match="gt_labels"):
        render_bev(points, gt, np.array([0, 1, 7]), class_names=CLASS_NAMES)
    with pytest.raises(ValueError, match="points"):
        render_bev(points[:, :2])
    with pytest.raises(ValueError, match="intensity"):
        render_bev(points[:, :3], color_by="intensity")
    with pytest.raises(ValueError, match="pred_scores"):
        render_bev(points, pred_boxes=gt, pred_labels=gt_labels, pred_scores=np.ones(2), class_names=CLASS_NAMES)
