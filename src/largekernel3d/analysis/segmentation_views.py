"""Pictures and files of a segmented scene a person can look at.

- :func:`write_labelled_ply`: a binary PLY with ``x, y, z, red, green, blue`` (the class colour of the
  prediction) and the integer properties ``pred`` and ``label`` (ground truth, ``-1`` for ignore).
- :func:`plot_segmentation`: a PNG with two rows (top-down view, oblique 3D view) and three columns
  (ground truth, prediction, errors). The upper ``crop_top`` fraction of the scene's height is cut away
  so that ceilings do not hide the room in the top-down view.

Colours: class ``c`` gets the ``c``-th colour of :func:`largekernel3d.data.label_colors` (ScanNet-20
colours first); ignored / unlabelled points are grey.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

IGNORE_GREY = np.array([0.6, 0.6, 0.6])


def class_colors(num_classes: int) -> np.ndarray:
    """``[num_classes, 3]`` RGB colours in ``[0, 1]``: the data room's palette (ScanNet-20 colours first)."""
    from ..data import label_colors

    return label_colors(np.arange(num_classes))


def colorize(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[N, 3]`` colours of integer ``labels``; values outside ``[0, num_classes)`` (ignore) are grey."""
    from ..data import IGNORE_INDEX, label_colors

    labels = np.asarray(labels, dtype=np.int64)
    valid = (labels >= 0) & (labels < num_classes)
    return label_colors(np.where(valid, labels, IGNORE_INDEX), ignore_color=IGNORE_GREY)


def write_labelled_ply(
    path: Path, points: np.ndarray, pred: np.ndarray, labels: Optional[np.ndarray], num_classes: int
) -> Path:
    """Write a binary PLY of the points coloured by ``pred`` with ``pred``/``label`` properties."""
    from plyfile import PlyData, PlyElement

    points = np.asarray(points, dtype=np.float32)
    pred = np.asarray(pred, dtype=np.int64)
    if points.ndim != 2 or points.shape[1] != 3 or pred.shape != (points.shape[0],):
        raise ValueError(f"points must be [N, 3] and pred [N]; got {points.shape} and {pred.shape}")
    gt = np.full(pred.shape, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    gt = np.where((gt >= 0) & (gt < num_classes), gt, -1)
    rgb = (colorize(pred, num_classes) * 255).round().astype(np.uint8)
    vertex = np.empty(
        points.shape[0],
        dtype=[
            ("x", "f4"),
            ("y", "f4"),
            ("z", "f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
            ("pred", "i4"),
            ("label", "i4"),
        ],
    )
    vertex["x"], vertex["y"], vertex["z"] = points.T
    vertex["red"], vertex["green"], vertex["blue"] = rgb.T
    vertex["pred"], vertex["label"] = pred, gt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(path))
    return path


def plot_segmentation(
    path: Path,
    points: np.ndarray,
    pred: np.ndarray,
    labels: Optional[np.ndarray],
    class_names: Sequence[str],
    title: str = "",
    crop_top: float = 0.25,
    max_points: int = 40000,
    seed: int = 0,
) -> Path:
    """Save the 2 x 3 figure described in the module docstring to ``path`` (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    points = np.asarray(points, dtype=np.float64)
    pred = np.asarray(pred)
    num_classes = len(class_names)
    gt = np.full(pred.shape, -1) if labels is None else np.asarray(labels)
    z = points[:, 2]
    keep = z <= z.min() + (1.0 - crop_top) * (z.max() - z.min()) if z.size else np.zeros(0, bool)
    idx = np.flatnonzero(keep)
    if idx.size > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    p, pr, g = points[idx], pred[idx], gt[idx]
    labelled = (g >= 0) & (g < num_classes)
    err = np.tile(np.array([0.85, 0.85, 0.85]), (len(idx), 1))
    err[labelled & (pr == g)] = (0.2, 0.6, 0.2)
    err[labelled & (pr != g)] = (0.85, 0.1, 0.1)
    panels = [
        ("ground truth", colorize(g, num_classes)),
        ("prediction", colorize(pr, num_classes)),
        ("errors (green ok, red wrong)", err),
    ]
    order = np.argsort(p[:, 2])  # draw low points first: the top-down view shows the highest
    fig = plt.figure(figsize=(16, 10))
    for col, (name, colors) in enumerate(panels):
        ax = fig.add_subplot(2, 3, col + 1)
        ax.scatter(p[order, 0], p[order, 1], c=colors[order], s=1.0, linewidths=0)
        ax.set_aspect("equal")
        ax.set_title(f"{name}: top-down")
        ax.set_xticks([])
        ax.set_yticks([])
        ax3 = fig.add_subplot(2, 3, col + 4, projection="3d")
        ax3.scatter(p[:, 0], p[:, 1], p[:, 2], c=colors, s=0.6, linewidths=0, depthshade=False)
        ax3.view_init(elev=35, azim=-60)
        ax3.set_box_aspect(np.ptp(p, axis=0) + 1e-6 if len(p) else (1, 1, 1))
        ax3.set_axis_off()
        ax3.set_title(f"{name}: oblique")
    present = sorted(set(np.unique(pr[(pr >= 0) & (pr < num_classes)]).tolist()) | set(np.unique(g[labelled]).tolist()))
    palette = class_colors(num_classes)
    handles = [Patch(color=palette[c], label=class_names[c]) for c in present]
    handles.append(Patch(color=IGNORE_GREY, label="ignore / unlabelled"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=9, frameon=False)
    if labelled.any():
        acc = float((pr[labelled] == g[labelled]).mean())
        title = f"{title}  (point accuracy {100 * acc:.1f} % on the shown points)"
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
