"""One self-contained HTML file that shows a point cloud and its 3D boxes in any browser, offline.

:func:`write_html_view` embeds the data (base64 float32 / uint8 arrays in a JSON block) and a small WebGL
viewer written for this project (``assets/lidar_viewer.js``): points as ``GL_POINTS`` with a colour each,
boxes as line segments (12 edges plus a heading tick from the centre to the middle of the front face),
box scores as labels, a legend, and a point-size control. The mouse orbits (left drag), pans (right or
shift + left drag) and zooms (wheel); ``r`` resets the view. Nothing is fetched from the network.

Colours: points take ``colors`` when given (``[N, 3]`` floats in ``[0, 1]`` or uint8), else the class
colour of ``point_labels`` (segmentation; labels outside ``[0, num_classes)`` are grey), else a colour
map of their height. Boxes take the class colour of ``box_labels``. Class ``c`` gets the ``c``-th colour
of :func:`largekernel3d.analysis.segmentation_views.class_colors` unless ``class_colors`` is given.
Above ``max_points`` points a random subset is shown, and the legend says so.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..boxes import boxes_to_corners_3d
from ..boxes.corners import CORNER_SIGNS
from .segmentation_views import IGNORE_GREY
from .segmentation_views import class_colors as default_class_colors

#: Pairs of corner indices (in :data:`largekernel3d.boxes.corners.CORNER_SIGNS` order) joined by an edge:
#: corners whose sign patterns differ in exactly one axis.
BOX_EDGES = tuple(
    (i, j)
    for i in range(8)
    for j in range(i + 1, 8)
    if sum(a != b for a, b in zip(CORNER_SIGNS[i], CORNER_SIGNS[j])) == 1
)
#: The corners of the front face (``u = +dx / 2``, the heading side).
FRONT_CORNERS = tuple(k for k in range(8) if CORNER_SIGNS[k][0] > 0)

_BACKGROUND = (0.07, 0.07, 0.09)


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _rgb8(colors: np.ndarray) -> np.ndarray:
    colors = np.asarray(colors)
    if colors.dtype == np.uint8:
        return colors
    return (np.clip(colors.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)


def height_colors(z: np.ndarray) -> np.ndarray:
    """``[N, 3]`` grey levels in ``[0, 1]`` of heights ``z [N]``: ``g = 0.3 + 0.5 t`` with
    ``t = (z - z_1) / (z_99 - z_1)`` clipped to ``[0, 1]`` (``z_q`` the q-th percentile), so that no point
    takes a class colour of the boxes (the BEV picture's convention)."""
    z = np.asarray(z, dtype=np.float64)
    if z.size == 0:
        return np.zeros((0, 3))
    lo, hi = np.percentile(z, [1, 99])
    t = np.clip((z - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return np.repeat((0.3 + 0.5 * t)[:, None], 3, axis=1)


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in rgb[:3])


def box_segments(boxes: np.ndarray) -> np.ndarray:
    """Line segments drawing each box: its 12 edges and a heading tick from the centre to the middle of the
    front face. Returns ``[M, 13, 2, 3]`` end points (float32)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[0] == 0:
        return np.zeros((0, len(BOX_EDGES) + 1, 2, 3), dtype=np.float32)
    corners = boxes_to_corners_3d(np.ascontiguousarray(boxes[:, :7]))  # [M, 8, 3]
    i, j = np.array(BOX_EDGES).T
    edges = np.stack([corners[:, i], corners[:, j]], axis=2)  # [M, 12, 2, 3]
    front = corners[:, list(FRONT_CORNERS)].mean(axis=1)  # [M, 3]
    tick = np.stack([boxes[:, :3], front], axis=1)[:, None]  # [M, 1, 2, 3]
    return np.concatenate([edges, tick], axis=1).astype(np.float32)


def write_html_view(
    path: Union[str, Path],
    points: np.ndarray,
    colors: Optional[np.ndarray] = None,
    point_labels: Optional[np.ndarray] = None,
    boxes: Optional[np.ndarray] = None,
    box_labels: Optional[np.ndarray] = None,
    box_scores: Optional[np.ndarray] = None,
    class_names: Optional[Sequence[str]] = None,
    class_colors: Optional[np.ndarray] = None,
    title: Optional[str] = None,
    max_points: int = 200_000,
    point_size: float = 2.0,
    seed: int = 0,
) -> Path:
    """Write the viewer page described in the module docstring to ``path``.

    Args:
        path: the ``.html`` file to write (parent folders are created).
        points: ``[N, >=3]`` x, y, z (extra columns are ignored).
        colors: optional ``[N, 3]`` per-point colours (floats in ``[0, 1]`` or uint8).
        point_labels: optional ``[N]`` integer class per point (used when ``colors`` is None).
        boxes: optional ``[M, >=7]`` boxes ``[x, y, z, dx, dy, dz, yaw, ...]`` (centre, OpenPCDet convention).
        box_labels: optional ``[M]`` class ids of the boxes (white boxes without them).
        box_scores: optional ``[M]`` scores, written next to each box.
        class_names: names of the classes (legend); default ``class 0``, ``class 1``, ...
        class_colors: optional ``[K, 3]`` class colours in ``[0, 1]``.
        title: page title and heading.
        max_points: above this many points a random subset (``seed``) of this size is shown.
        point_size: initial point size in CSS pixels.

    Returns:
        ``path`` as a :class:`Path`.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3 or pts.dtype.kind not in "iuf":
        raise ValueError(f"points must be a real array of shape [N, >=3], got {pts.dtype} {pts.shape}")
    pts = pts[:, :3].astype(np.float32)
    if not np.isfinite(pts).all():
        raise ValueError("points contain NaN or inf")
    n = pts.shape[0]
    if not isinstance(max_points, (int, np.integer)) or max_points < 1:
        raise ValueError(f"max_points must be a positive int, got {max_points!r}")
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != (n, 3):
            raise ValueError(f"colors must have shape [{n}, 3], got {colors.shape}")
    if point_labels is not None:
        point_labels = np.asarray(point_labels)
        if point_labels.shape != (n,) or (point_labels.size and point_labels.dtype.kind not in "iu"):
            raise ValueError(
                f"point_labels must be integers of shape [{n}], got {point_labels.dtype} {point_labels.shape}"
            )
    box_arr = np.zeros((0, 7)) if boxes is None else np.asarray(boxes, dtype=np.float64)
    if box_arr.ndim != 2 or box_arr.shape[1] < 7:
        raise ValueError(f"boxes must have shape [M, >=7] (x, y, z, dx, dy, dz, yaw, ...), got {box_arr.shape}")
    m = box_arr.shape[0]
    for name, value in (("box_labels", box_labels), ("box_scores", box_scores)):
        if value is not None and np.asarray(value).shape != (m,):
            raise ValueError(f"{name} must have shape [{m}] (one per box), got {np.asarray(value).shape}")
    blabels = None if box_labels is None else np.asarray(box_labels, dtype=np.int64)

    # classes and their colours
    used = np.unique(point_labels).tolist() if colors is None and point_labels is not None else []
    num_classes = max(
        [
            len(class_names) if class_names else 0,
            max(used, default=-1) + 1,
            int(blabels.max()) + 1 if blabels is not None and m else 0,
        ]
    )
    if class_colors is not None:
        palette = np.asarray(class_colors, dtype=np.float64)
        if palette.ndim != 2 or palette.shape[1] != 3 or palette.shape[0] < num_classes:
            raise ValueError(f"class_colors must have shape [>= {num_classes}, 3], got {palette.shape}")
    else:
        palette = default_class_colors(max(num_classes, 1))
    names = list(class_names) if class_names else []
    names += [f"class {k}" for k in range(len(names), num_classes)]

    # points shown
    shown = np.arange(n)
    if n > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(n, int(max_points), replace=False))
    if colors is not None:
        point_rgb = _rgb8(colors[shown])
        coloured_by = "given colours"
    elif point_labels is not None:
        lab = point_labels[shown].astype(np.int64)
        valid = (lab >= 0) & (lab < num_classes)
        rgb = np.tile(IGNORE_GREY, (lab.size, 1))
        rgb[valid] = palette[lab[valid]]
        point_rgb = _rgb8(rgb)
        coloured_by = "class"
    else:
        point_rgb = _rgb8(height_colors(pts[shown, 2]))
        coloured_by = "height (grey: low dark, high light)"

    # boxes: segments, colours and score tags
    segments = box_segments(box_arr)  # [M, 13, 2, 3]
    box_rgb = np.ones((m, 3))
    if blabels is not None and m:
        if blabels.min() < 0:
            raise ValueError("box_labels must be >= 0")
        box_rgb = palette[blabels]
    line_rgb = np.broadcast_to(box_rgb[:, None, None, :], segments.shape)  # [M, 13, 2, 3]
    tags: List[Dict[str, Any]] = []
    if box_scores is not None:
        scores = np.asarray(box_scores, dtype=np.float64)
        for k in range(m):
            top = box_arr[k, :3] + np.array([0.0, 0.0, box_arr[k, 5] / 2])
            text = f"{scores[k]:.2f}" if blabels is None else f"{names[blabels[k]]} {scores[k]:.2f}"
            tags.append(
                {"text": text, "x": float(top[0]), "y": float(top[1]), "z": float(top[2]), "color": _hex(box_rgb[k])}
            )

    data = {
        "points": _b64(pts[shown], "<f4"),
        "colors": _b64(point_rgb, "u1"),
        "lines": _b64(segments.reshape(-1, 3), "<f4"),
        "line_colors": _b64(_rgb8(line_rgb).reshape(-1, 3), "u1"),
        "tags": tags,
        "point_size": float(point_size),
        "background": list(_BACKGROUND),
    }

    # legend
    legend_classes = set()
    if blabels is not None:
        legend_classes |= set(blabels.tolist())
    if colors is None and point_labels is not None:
        legend_classes |= {v for v in used if 0 <= v < num_classes}
    counts = {k: int((blabels == k).sum()) if blabels is not None else 0 for k in legend_classes}
    rows = []
    for k in sorted(legend_classes):
        extra = f" ({counts[k]} box{'es' if counts[k] > 1 else ''})" if counts[k] else ""
        rows.append(
            f'<div><span class="sw" style="background:{_hex(palette[k])}"></span>{html.escape(names[k])}{extra}</div>'
        )
    if m and blabels is None:
        rows.append(f'<div><span class="sw" style="background:#ffffff"></span>{m} boxes</div>')
    note = f"showing {shown.size:,} of {n:,} points (random subsample)" if shown.size < n else f"{n:,} points"
    heading = html.escape(title or "point cloud")
    tag_toggle = '<label><input type="checkbox" id="lk3d-show-tags" checked> scores</label>' if tags else ""
    page = _PAGE.format(
        title=heading,
        legend="\n".join(rows),
        note=html.escape(note),
        coloured_by=html.escape(coloured_by),
        tag_toggle=tag_toggle,
        bg=_hex(_BACKGROUND),
        data=json.dumps(data).replace("</", "<\\/"),
        script=_viewer_script(),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _viewer_script() -> str:
    """The viewer's JavaScript (``assets/lidar_viewer.js``, shipped as package data)."""
    return resources.files(__package__).joinpath("assets", "lidar_viewer.js").read_text(encoding="utf-8")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  html, body {{ margin: 0; height: 100%; overflow: hidden; background: {bg}; color: #ddd;
               font: 13px/1.4 system-ui, sans-serif; }}
  #lk3d-canvas {{ position: absolute; inset: 0; width: 100%; height: 100%; display: block; cursor: grab; }}
  #lk3d-panel {{ position: absolute; top: 8px; left: 8px; padding: 8px 10px; background: rgba(0,0,0,0.6);
                 border-radius: 6px; max-width: 320px; max-height: calc(100% - 32px); overflow: auto; }}
  #lk3d-panel h1 {{ font-size: 14px; margin: 0 0 6px 0; }}
  .sw {{ display: inline-block; width: 11px; height: 11px; margin-right: 6px; vertical-align: -1px;
         border-radius: 2px; }}
  .hint {{ color: #aaa; font-size: 11px; margin-top: 6px; }}
  #lk3d-tags {{ position: absolute; inset: 0; pointer-events: none; overflow: hidden; }}
  .lk3d-tag {{ position: absolute; transform: translate(-50%, -100%); font-size: 11px; white-space: nowrap;
               text-shadow: 0 0 3px #000, 0 0 3px #000; }}
  #lk3d-error {{ display: none; position: absolute; bottom: 8px; left: 8px; color: #f66; }}
</style>
</head>
<body data-status="loading">
<canvas id="lk3d-canvas"></canvas>
<div id="lk3d-tags"></div>
<div id="lk3d-panel">
  <h1>{title}</h1>
  {legend}
  <div class="hint">{note}; points coloured by {coloured_by}</div>
  <div><label>point size <input type="range" id="lk3d-size" min="0.5" max="10" step="0.5"></label> {tag_toggle}</div>
  <div class="hint">drag: orbit &middot; right / shift drag: pan &middot; wheel: zoom &middot; r: reset</div>
</div>
<div id="lk3d-error"></div>
<script id="lk3d-data" type="application/json">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""

__all__ = ["BOX_EDGES", "FRONT_CORNERS", "box_segments", "height_colors", "write_html_view"]
