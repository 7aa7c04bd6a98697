"""A bird's-eye-view picture of a LiDAR frame with its ground-truth and predicted boxes.

:func:`render_bev` draws, seen from above (x to the right, y up, metres, equal aspect):

- the points as small grey-scale markers coloured by height (or intensity), high points on top;
- ground-truth boxes as solid outlines and predictions as dashed outlines, each in its class colour (class
  ``c`` gets the ``c``-th colour of :func:`largekernel3d.analysis.segmentation_views.class_colors`, the
  palette the segmentation views use), with a heading tick from the box centre to the middle of its front
  edge; predictions below ``score_threshold`` are left out and the others carry their score;
- a legend (classes present, solid = ground truth, dashed = prediction) and a colour bar of the points.

The figure is ``figsize`` inches at ``dpi`` dots per inch, so the PNG is exactly
``round(figsize * dpi)`` pixels; the dark background makes the class colours stand out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..boxes import boxes_to_bev_corners
from .segmentation_views import class_colors

#: Face colour of the axes (the background the points and boxes are drawn on).
BEV_BACKGROUND = (0.08, 0.08, 0.1)


def _point_cmap():
    """Grey levels 0.3 (low) to 1.0 (high): every point stays visible on the dark background and no point
    takes a class colour."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("bev_grey", [(0.3, 0.3, 0.3), (1.0, 1.0, 1.0)])


def _auto_figsize(extent: np.ndarray) -> Tuple[float, float]:
    """``(width, height)`` inches for an area ``[x0, y0, z0, x1, y1, z1]`` or points ``[N, >=2]``."""
    extent = np.asarray(extent, dtype=np.float64)
    if extent.ndim == 1:
        width, height = extent[3] - extent[0], extent[4] - extent[1]
    elif extent.shape[0]:
        width, height = np.ptp(extent[:, 0]), np.ptp(extent[:, 1])
    else:
        width = height = 1.0
    axes_height = 7.0
    return float(np.clip(axes_height * width / max(height, 1e-6) + 2.0, 6.0, 16.0)), axes_height + 2.0


def _check_boxes(
    boxes: Optional[np.ndarray], labels: Optional[np.ndarray], name: str, num_classes: int
) -> Tuple[np.ndarray, np.ndarray]:
    if boxes is None:
        if labels is not None:
            raise ValueError(f"{name}_labels given without {name}_boxes")
        return np.zeros((0, 7)), np.zeros(0, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"{name}_boxes must have shape [M, >=7] (x, y, z, dx, dy, dz, yaw, ...), got {boxes.shape}")
    if labels is None:
        labels = np.zeros(boxes.shape[0], dtype=np.int64)
    labels = np.asarray(labels)
    if labels.shape != (boxes.shape[0],) or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(
            f"{name}_labels must be integers of shape [{boxes.shape[0]}], got {labels.dtype} {labels.shape}"
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name}_labels must lie in [0, {num_classes}) (one per class name), got "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    return boxes, labels


def render_bev(
    points: np.ndarray,
    gt_boxes: Optional[np.ndarray] = None,
    gt_labels: Optional[np.ndarray] = None,
    pred_boxes: Optional[np.ndarray] = None,
    pred_labels: Optional[np.ndarray] = None,
    pred_scores: Optional[np.ndarray] = None,
    class_names: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    point_cloud_range: Optional[Sequence[float]] = None,
    path: Optional[Union[str, Path]] = None,
    title: Optional[str] = None,
    score_threshold: float = 0.3,
    color_by: str = "height",
    max_points: int = 150_000,
    figsize: Optional[Tuple[float, float]] = None,
    dpi: int = 100,
    seed: int = 0,
):
    """Draw the bird's-eye view described in the module docstring.

    Args:
        points: ``[N, >=3]`` x, y, z (, intensity, ...) in the LiDAR frame.
        gt_boxes, pred_boxes: ``[M, >=7]`` boxes ``[x, y, z, dx, dy, dz, yaw, ...]`` (OpenPCDet convention).
        gt_labels, pred_labels: ``[M]`` class ids into ``class_names`` (class 0 when omitted).
        pred_scores: ``[M]`` prediction scores; predictions scoring below ``score_threshold`` are not drawn.
        class_names: the names of the classes (legend and colours).
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]``: the axes show ``[x0, x1] x [y0, y1]`` and only the
            points in it; default: everything drawn.
        path: where to write the PNG; ``None`` returns the open matplotlib figure instead.
        title: the figure title (default: counts of points and boxes).
        color_by: ``"height"`` (z) or ``"intensity"`` (the 4th point column).
        max_points: above this many points a random subset (``seed``) is drawn.
        figsize, dpi: the figure size in inches (default: 9 inches high, as wide as the shown area's aspect
            asks, within 6-16 inches) and its resolution.

    Returns:
        ``path`` as a :class:`Path`, or the :class:`matplotlib.figure.Figure` when ``path`` is None (made
        without pyplot, so nothing needs closing).
    """
    from matplotlib import patheffects
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3 or pts.dtype.kind not in "iuf":
        raise ValueError(f"points must be a real array of shape [N, >=3], got {pts.dtype} {pts.shape}")
    if color_by not in ("height", "intensity"):
        raise ValueError(f"color_by must be 'height' or 'intensity', got {color_by!r}")
    if color_by == "intensity" and pts.shape[1] < 4:
        raise ValueError("color_by='intensity' needs points with a 4th column (x, y, z, intensity)")
    num_classes = len(class_names)
    if num_classes == 0:
        raise ValueError("class_names must name at least one class")
    gt, gt_lab = _check_boxes(gt_boxes, gt_labels, "gt", num_classes)
    pred, pred_lab = _check_boxes(pred_boxes, pred_labels, "pred", num_classes)
    scores = np.ones(pred.shape[0]) if pred_scores is None else np.asarray(pred_scores, dtype=np.float64)
    if scores.shape != (pred.shape[0],):
        raise ValueError(f"pred_scores must have shape [{pred.shape[0]}], got {scores.shape}")
    keep = scores >= score_threshold
    pred, pred_lab, scores = pred[keep], pred_lab[keep], scores[keep]
    palette = class_colors(num_classes)

    pts = pts.astype(np.float64)
    if point_cloud_range is not None:
        r = np.asarray(point_cloud_range, dtype=np.float64)
        if r.shape != (6,) or not (r[3:] > r[:3]).all():
            raise ValueError(
                f"point_cloud_range must be [x0, y0, z0, x1, y1, z1] with max > min, got {point_cloud_range}"
            )
        pts = pts[((pts[:, :3] >= r[:3]) & (pts[:, :3] <= r[3:])).all(axis=1)]
        # boxes centred outside the drawn area cannot be shown (an untrained head can place them anywhere)
        inside = lambda b: ((b[:, :2] >= r[:2]) & (b[:, :2] <= r[3:5])).all(axis=1)  # noqa: E731
        gt_in, pred_in = inside(gt), inside(pred)
        gt, gt_lab = gt[gt_in], gt_lab[gt_in]
        pred, pred_lab, scores = pred[pred_in], pred_lab[pred_in], scores[pred_in]
    if pts.shape[0] > max_points:
        pts = pts[np.sort(np.random.default_rng(seed).choice(pts.shape[0], max_points, replace=False))]
    value = pts[:, 2] if color_by == "height" else pts[:, 3]
    order = np.argsort(value, kind="stable")
    lo, hi = np.percentile(value, [1, 99]) if value.size else (0.0, 1.0)

    if figsize is None:
        figsize = _auto_figsize(r if point_cloud_range is not None else pts)
    fig = Figure(figsize=figsize, dpi=dpi)  # no pyplot: no global figure registry, no backend switch
    ax = fig.add_subplot()
    ax.set_facecolor(BEV_BACKGROUND)
    scatter = ax.scatter(
        pts[order, 0],
        pts[order, 1],
        c=value[order],
        cmap=_point_cmap(),
        vmin=lo,
        vmax=max(hi, lo + 1e-6),
        s=1.0,
        linewidths=0,
        rasterized=True,
        zorder=1,
    )
    cbar = fig.colorbar(scatter, cax=ax.inset_axes((1.02, 0.0, 0.025, 1.0)))  # as high as the map
    cbar.set_label("height z [m]" if color_by == "height" else "intensity")

    # a light rim under every outline keeps dark class colours visible on the dark background
    halo = [patheffects.Stroke(linewidth=2.8, foreground=(1.0, 1.0, 1.0, 0.3)), patheffects.Normal()]

    def draw(boxes: np.ndarray, labels: np.ndarray, style: str, width: float, zorder: int) -> None:
        if boxes.shape[0] == 0:
            return
        corners = boxes_to_bev_corners(np.ascontiguousarray(boxes[:, :7]))  # [M, 4, 2], ccw
        front = 0.5 * (corners[:, 0] + corners[:, 3])  # front-left, front-right
        for k in range(boxes.shape[0]):
            color = palette[labels[k]]
            ring = np.concatenate([corners[k], corners[k, :1]])
            ax.plot(
                ring[:, 0], ring[:, 1], linestyle=style, color=color, linewidth=width, zorder=zorder, path_effects=halo
            )
            ax.plot(
                [boxes[k, 0], front[k, 0]],
                [boxes[k, 1], front[k, 1]],
                linestyle="-",
                color=color,
                linewidth=width,
                zorder=zorder,
                path_effects=halo,
            )

    draw(gt, gt_lab, "-", 1.6, 3)
    draw(pred, pred_lab, "--", 1.3, 4)
    if pred.shape[0]:
        corners = boxes_to_bev_corners(np.ascontiguousarray(pred[:, :7]))
        for k in range(pred.shape[0]):
            x, y = corners[k, :, 0].max(), corners[k, :, 1].max()
            ax.text(
                x,
                y,
                f"{scores[k]:.2f}",
                color=palette[pred_lab[k]],
                fontsize=7,
                zorder=5,
                ha="left",
                va="bottom",
                clip_on=True,
            )

    if point_cloud_range is not None:
        ax.set_xlim(r[0], r[3])
        ax.set_ylim(r[1], r[4])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    present = sorted(set(gt_lab.tolist()) | set(pred_lab.tolist()))
    handles = [Patch(color=palette[c], label=class_names[c]) for c in present]
    if gt_boxes is not None:
        handles.append(Line2D([], [], color="0.3", linestyle="-", label="ground truth"))
    if pred_boxes is not None:
        handles.append(Line2D([], [], color="0.3", linestyle="--", label=f"prediction (score >= {score_threshold:g})"))
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.07),
            ncol=min(len(handles), 6),
            fontsize=8,
            frameon=False,
        )
    if title is None:
        title = f"{len(points)} points, {gt.shape[0]} ground-truth boxes, {pred.shape[0]} predictions"
    ax.set_title(title)
    fig.tight_layout()
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


__all__ = ["BEV_BACKGROUND", "render_bev"]
