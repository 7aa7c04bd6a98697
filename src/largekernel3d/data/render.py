"""Quick looks at a labelled scene: top-down and oblique scatter plots written as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .scannet import SCANNET20_CLASSES, SCANNET20_COLORS
from .scene import IGNORE_INDEX, PointCloudScene

_IGNORE_COLOR = (0.0, 0.0, 0.0)


def label_colors(
    labels: np.ndarray,
    palette: Optional[Sequence[Tuple[int, int, int]]] = None,
    ignore_color: Sequence[float] = _IGNORE_COLOR,
) -> np.ndarray:
    """RGB ``[N, 3]`` in [0, 1] per label (``IGNORE_INDEX`` gets ``ignore_color``, black by default);
    palette entries are 0-255 triples (ScanNet-20 colours by default, a generated palette for labels
    beyond it)."""
    labels = np.asarray(labels, dtype=np.int64)
    pal = np.asarray(palette if palette is not None else SCANNET20_COLORS, dtype=np.float64) / 255.0
    n = max(int(labels.max()) + 1 if labels.size else 0, len(pal))
    if n > len(pal):
        extra = np.random.default_rng(0).uniform(0.2, 0.9, (n - len(pal), 3))
        pal = np.concatenate([pal, extra])
    out = np.zeros((labels.shape[0], 3))
    valid = labels != IGNORE_INDEX
    out[valid] = pal[labels[valid]]
    out[~valid] = ignore_color
    return out


def _oblique(points: np.ndarray, azimuth: float = -50.0, elevation: float = 35.0) -> Tuple[np.ndarray, np.ndarray]:
    """Orthographic view: screen (u, v) and depth of each point for a camera at (azimuth, elevation)."""
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    right = np.array([np.cos(a), np.sin(a), 0.0])
    view = np.array([-np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), -np.sin(e)])  # into the screen
    up = np.cross(right, view)
    p = points - points.mean(axis=0)
    return np.stack([p @ right, p @ up], axis=1), p @ view


def render_scene(
    scene: PointCloudScene,
    path: Union[str, Path],
    labels: Optional[np.ndarray] = None,
    class_names: Sequence[str] = SCANNET20_CLASSES,
    title: Optional[str] = None,
    max_points: int = 60000,
    point_size: float = 0.6,
) -> Path:
    """Write a PNG with the scene seen from above and obliquely, coloured by label and by RGB.

    ``labels`` overrides ``scene.labels`` (e.g. predictions). The top-down panel leaves out the top
    0.3 m of the scene (the ceiling) and draws points in increasing height so that the tops of furniture
    stay visible; the oblique panels draw far points first.
    Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    pts = scene.points
    lab = scene.labels if labels is None else np.asarray(labels)
    if lab is None:
        lab = np.full(len(pts), IGNORE_INDEX, dtype=np.int64)
    if len(lab) != len(pts):
        raise ValueError(f"labels has {len(lab)} entries for {len(pts)} points")
    sel = np.arange(len(pts))
    if len(pts) > max_points:
        sel = np.sort(np.random.default_rng(0).choice(len(pts), max_points, replace=False))
    pts, lab, rgb = pts[sel], lab[sel], scene.colors[sel]
    lc = label_colors(lab)

    fig, axes = plt.subplots(1, 3, figsize=(18, 6.5))
    below = np.nonzero(pts[:, 2] < pts[:, 2].max() - 0.3)[0] if len(pts) else np.zeros(0, dtype=np.int64)
    order = below[np.argsort(pts[below, 2])]
    axes[0].scatter(pts[order, 0], pts[order, 1], c=lc[order], s=point_size, linewidths=0)
    axes[0].set_aspect("equal")
    axes[0].set_title("top-down (labels)")
    axes[0].set_xlabel("x [m]")
    axes[0].set_ylabel("y [m]")
    uv, depth = _oblique(pts)
    order = np.argsort(-depth)
    for ax, colors, name in ((axes[1], lc, "oblique (labels)"), (axes[2], rgb, "oblique (RGB)")):
        ax.scatter(uv[order, 0], uv[order, 1], c=colors[order], s=point_size, linewidths=0)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.axis("off")
    present = sorted(int(v) for v in np.unique(lab) if v != IGNORE_INDEX)
    handles = [
        Patch(color=label_colors(np.array([c]))[0], label=class_names[c] if c < len(class_names) else str(c))
        for c in present
    ]
    if (lab == IGNORE_INDEX).any():
        handles.append(Patch(color=_IGNORE_COLOR, label="ignore"))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 11),
        fontsize=9,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(title or f"{scene.name}: {scene.num_points} points")
    fig.tight_layout(rect=(0, 0.11, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
