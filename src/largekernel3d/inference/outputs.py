"""Files written per input cloud by ``lk3d predict seg|det --input`` (and usable from Python).

Segmentation, for an input ``<stem>``:

* ``<stem>_pred.ply``: binary PLY, ``x y z`` (float64, the input's metres), ``red green blue`` (class colour of
  the prediction), ``label`` (int32 class id);
* ``<stem>_labels.npy``: int32 class id per row of the input file (its order; -1 for rows dropped for non-finite
  coordinates);
* ``<stem>_classes.txt``: ``id name points`` per class;
* unless ``views`` is off: ``<stem>.png`` (top-down + oblique) and ``<stem>.html`` (3D viewer).

Detection:

* ``<stem>.json``: boxes ``x y z dx dy dz yaw (vx vy)`` (centre, input frame), scores, class names;
* ``<stem>_kitti.txt``: KITTI result lines ``name -1 -1 alpha l t r b h w l x y z ry score``. With a KITTI
  calibration (``calib/<stem>.txt`` beside a ``velodyne/`` folder) in KITTI's rectified camera frame with
  projected 2D boxes, for the boxes that KITTI's format describes: in front of the camera and in the image (a box
  whose clipped 2D box is empty, or whose centre is behind the camera, is left out: the JSON keeps it); otherwise
  the camera frame is the input frame with KITTI's axes (x right = -y, y down = -z, z forward = x), the 2D boxes
  are ``-1`` and every box is written;
* unless ``views`` is off: ``<stem>.png`` (bird's-eye view) and ``<stem>.html``.

Views use points recentred on their minimum (so geo-referenced coordinates stay exact in float32).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from .detection import DetPrediction
from .segmentation import SegPrediction


def write_seg_outputs(
    out: Path,
    stem: str,
    points: np.ndarray,
    prediction: SegPrediction,
    views: bool = True,
    title: Optional[str] = None,
    kept_rows: Optional[np.ndarray] = None,
) -> List[Path]:
    """Write the segmentation files of the module docstring; returns their paths. With ``kept_rows`` (which rows of
    the file became the points, :attr:`~largekernel3d.data.pointcloud_files.LoadedCloud.kept_rows`)
    ``<stem>_labels.npy`` has one label per row of the file, -1 for the others."""
    from plyfile import PlyData, PlyElement

    from ..analysis.segmentation_views import class_colors, colorize

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    labels = prediction.labels
    num_classes = len(prediction.class_names)
    rgb = (colorize(labels, num_classes) * 255).round().astype(np.uint8)
    vertex = np.empty(
        pts.shape[0],
        dtype=[("x", "f8"), ("y", "f8"), ("z", "f8"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("label", "i4")],
    )
    vertex["x"], vertex["y"], vertex["z"] = pts.T
    vertex["red"], vertex["green"], vertex["blue"] = rgb.T
    vertex["label"] = labels
    written = [out / f"{stem}_pred.ply", out / f"{stem}_labels.npy", out / f"{stem}_classes.txt"]
    PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(written[0]))
    per_row = labels.astype(np.int32)
    if kept_rows is not None:
        per_row = np.full(len(kept_rows), -1, np.int32)
        per_row[kept_rows] = labels
    np.save(written[1], per_row)
    counts = np.bincount(labels, minlength=num_classes)
    written[2].write_text("".join(f"{k} {name} {int(counts[k])}\n" for k, name in enumerate(prediction.class_names)))
    if views:
        from ..analysis.html_view import write_html_view
        from ..analysis.segmentation_views import plot_segmentation

        local = pts - pts.min(axis=0)
        written.append(
            plot_segmentation(out / f"{stem}.png", local, labels, None, prediction.class_names, title=title or stem)
        )
        written.append(
            write_html_view(
                out / f"{stem}.html",
                local,
                point_labels=labels,
                class_names=prediction.class_names,
                class_colors=class_colors(num_classes),
                title=title or stem,
            )
        )
    return written


def nominal_calibration():
    """A KITTI calibration whose camera frame is the LiDAR frame with KITTI's camera axes (x right = -y,
    y down = -z, z forward = x), ``R0 = I`` and KITTI-like intrinsics: for writing KITTI text without one."""
    from ..data.detection.kitti import KittiCalib

    v2c = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    p2 = np.array([[721.5, 0.0, 609.6, 0.0], [0.0, 721.5, 172.9, 0.0], [0.0, 0.0, 1.0, 0.0]])
    return KittiCalib(P2=p2, R0=np.eye(3), V2C=v2c)


def find_kitti_calibration(path: Path):
    """``calib/<stem>.txt`` of a KITTI ``velodyne/<stem>.bin`` (a :class:`KittiCalib`), or ``None``."""
    from ..data.detection.kitti import KittiCalib

    path = Path(path)
    if path.parent.name not in ("velodyne", "velodyne_reduced"):
        return None
    candidate = path.parent.parent / "calib" / f"{path.name.split('.')[0]}.txt"
    return KittiCalib.from_file(candidate) if candidate.is_file() else None


def kitti_lines(boxes: np.ndarray, scores: np.ndarray, names: Sequence[str], calib=None) -> List[str]:
    """KITTI result lines (module docstring) for LiDAR boxes ``[K, >=7]``; ``calib`` ``None``: nominal (every box),
    else the boxes in front of the camera whose 2D box lies (partly) in the image."""
    from ..data.detection.kitti import (
        KITTI_IMAGE_SIZE,
        lidar_boxes_to_camera,
        observation_angle,
        project_boxes_to_image,
    )

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, max(7, np.asarray(boxes).shape[-1]))
    if len(boxes) == 0:
        return []
    location, dims, ry = lidar_boxes_to_camera(boxes, calib or nominal_calibration())
    alpha = observation_angle(location, ry)
    if calib is not None:
        bbox = project_boxes_to_image(boxes, calib, KITTI_IMAGE_SIZE)
        shown = (location[:, 2] > 0) & (bbox[:, 2] > bbox[:, 0]) & (bbox[:, 3] > bbox[:, 1])
    else:
        bbox = np.full((len(boxes), 4), -1.0)
        shown = np.ones(len(boxes), dtype=bool)
    lines = []
    for i in np.flatnonzero(shown).tolist():
        numbers = [alpha[i], *bbox[i], *dims[i], *location[i], ry[i], float(scores[i])]
        lines.append(f"{str(names[i]).replace(' ', '_')} -1 -1 " + " ".join(f"{v:.4f}" for v in numbers))
    return lines


def write_det_outputs(
    out: Path,
    stem: str,
    points: np.ndarray,
    prediction: DetPrediction,
    score_threshold: float = 0.3,
    views: bool = True,
    calib=None,
    source: str = "",
    point_cloud_range: Optional[Sequence[float]] = None,
) -> List[Path]:
    """Write the detection files of the module docstring (boxes with ``score >= score_threshold``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keep = prediction.scores >= score_threshold
    boxes, scores, labels = prediction.boxes[keep], prediction.scores[keep], prediction.labels[keep]
    names = [prediction.class_names[int(k)] for k in labels]
    record = {
        "source": source,
        "box_format": "x y z dx dy dz yaw (vx vy): box centre, input frame, metres",
        "score_threshold": score_threshold,
        "boxes": np.round(boxes, 4).tolist(),
        "scores": np.round(scores.astype(np.float64), 4).tolist(),
        "classes": names,
        "points_in_range": prediction.points_in_range,
        "windows": prediction.num_windows,
        "kitti_frame": "kitti calibration" if calib is not None else "nominal (lidar axes)",
    }
    lines = kitti_lines(boxes, scores, names, calib)
    record["kitti_boxes_outside_image"] = len(boxes) - len(lines)
    written = [out / f"{stem}.json", out / f"{stem}_kitti.txt"]
    written[0].write_text(json.dumps(record, indent=1))
    written[1].write_text("".join(line + "\n" for line in lines))
    if views:
        from ..analysis.bev_view import render_bev
        from ..analysis.html_view import write_html_view

        pts = np.asarray(points, dtype=np.float64)[:, :3]
        written.append(out / f"{stem}.png")
        render_bev(
            pts.astype(np.float32),
            pred_boxes=boxes,
            pred_labels=labels,
            pred_scores=scores,
            class_names=prediction.class_names,
            point_cloud_range=point_cloud_range,
            path=written[-1],
            title=f"{stem}: detections with score >= {score_threshold}",
            score_threshold=score_threshold,
        )
        written.append(
            write_html_view(
                out / f"{stem}.html",
                pts.astype(np.float32),
                boxes=boxes,
                box_labels=labels,
                box_scores=scores,
                class_names=prediction.class_names,
                title=f"{stem}: detections with score >= {score_threshold}",
            )
        )
    return written


__all__ = ["write_seg_outputs", "write_det_outputs", "kitti_lines", "nominal_calibration", "find_kitti_calibration"]
