"""Independent references for the box tests: per-box python/numpy loops and shapely polygons, written
without any code of :mod:`largekernel3d.boxes` (importable as ``boxes_reference``: pytest puts this folder
on ``sys.path``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def random_boxes(rng: np.random.Generator, count: int, spread: float = 4.0, extra: int = 0) -> np.ndarray:
    """``[count, 7 + extra]`` float64 boxes: centres in ``[-spread, spread]^2 x [-1, 1]``, sizes 0.3-3 m,
    yaw in ``[-2 pi, 2 pi]`` (wrapped and unwrapped angles both occur), extra columns random."""
    boxes = np.empty((count, 7 + extra))
    boxes[:, 0:2] = rng.uniform(-spread, spread, (count, 2))
    boxes[:, 2] = rng.uniform(-1, 1, count)
    boxes[:, 3:6] = rng.uniform(0.3, 3.0, (count, 3))
    boxes[:, 6] = rng.uniform(-2 * math.pi, 2 * math.pi, count)
    boxes[:, 7:] = rng.normal(size=(count, extra))
    return boxes


def corners_by_loop(box: Sequence[float]) -> List[List[float]]:
    """The 8 corners of one box by an explicit rotation matrix, in OpenPCDet's documented order
    (bottom: front-left, front-right, back-right, back-left; then the top face)."""
    x, y, z, dx, dy, dz, yaw = (float(v) for v in box[:7])
    rot = np.array([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    out = []
    for sz in (-1, 1):
        for su, sv in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
            local = np.array([su * dx / 2, sv * dy / 2, sz * dz / 2])
            out.append(list(rot @ local + np.array([x, y, z])))
    return out


def bev_polygon(box: Sequence[float]):
    """The box's BEV rectangle as a shapely polygon."""
    from shapely.geometry import Polygon

    bottom = corners_by_loop(box)[:4]
    return Polygon([(c[0], c[1]) for c in bottom])


def bev_inter_union_shapely(a: np.ndarray, b: np.ndarray):
    """``(intersection [N, M], union [N, M])`` BEV areas from shapely."""
    polys_a = [bev_polygon(box) for box in a]
    polys_b = [bev_polygon(box) for box in b]
    inter = np.zeros((len(a), len(b)))
    union = np.zeros((len(a), len(b)))
    for i, pa in enumerate(polys_a):
        for j, pb in enumerate(polys_b):
            inter[i, j] = pa.intersection(pb).area
            union[i, j] = pa.area + pb.area - inter[i, j]
    return inter, union


def bev_iou_shapely(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter, union = bev_inter_union_shapely(a, b)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou_3d_shapely(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3D IoU from shapely BEV intersection times the height-interval overlap."""
    inter, _ = bev_inter_union_shapely(a, b)
    out = np.zeros_like(inter)
    for i, ba in enumerate(a):
        for j, bb in enumerate(b):
            top = min(ba[2] + ba[5] / 2, bb[2] + bb[5] / 2)
            bottom = max(ba[2] - ba[5] / 2, bb[2] - bb[5] / 2)
            inter3 = inter[i, j] * max(0.0, top - bottom)
            union3 = ba[3] * ba[4] * ba[5] + bb[3] * bb[4] * bb[5] - inter3
            out[i, j] = inter3 / union3 if union3 > 0 else 0.0
    return out


def box_frame(points: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Points ``[P, 3]`` in the frame of ``box`` (rotation by ``-yaw`` about the centre), float64."""
    x, y, z, _, _, _, yaw = (float(v) for v in box[:7])
    rel = np.asarray(points, dtype=np.float64)[:, :3] - np.array([x, y, z])
    c, s = math.cos(yaw), math.sin(yaw)
    inverse = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return rel @ inverse.T


def inside_box(points: np.ndarray, box: Sequence[float], slack: float = 0.0) -> np.ndarray:
    """bool ``[P]``: ``|local| <= size / 2 + slack`` on all three axes."""
    local = box_frame(points, box)
    half = np.asarray(box[3:6], dtype=np.float64) / 2 + slack
    return (np.abs(local) <= half).all(axis=1)


def greedy_nms(conflict: np.ndarray, scores: np.ndarray) -> List[int]:
    """Textbook greedy NMS: visit boxes by (score descending, index ascending); keep a box unless a kept
    box conflicts with it (``conflict[i, j]`` symmetric)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: List[int] = []
    for i in order:
        if not any(conflict[k, i] for k in keep):
            keep.append(i)
    return keep


def kitti_lidar_boxes(label_path: Path, calib_path: Path) -> np.ndarray:
    """Non-DontCare KITTI labels as LiDAR boxes ``[K, 7]`` (README section 3 of shared/data):
    centre = inv(Tr_velo_to_cam) inv(R0_rect) (x, y - h/2, z), dims (l, w, h), yaw = -ry - pi/2."""
    calib = {}
    for line in calib_path.read_text().splitlines():
        if ":" in line:
            key, values = line.split(":", 1)
            calib[key.strip()] = np.array(values.split(), dtype=np.float64)
    rect = calib["R0_rect"].reshape(3, 3)
    velo_to_cam = np.vstack((calib["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]))
    cam_to_velo = np.linalg.inv(velo_to_cam)
    boxes = []
    for line in label_path.read_text().splitlines():
        fields = line.split()
        if not fields or fields[0] == "DontCare":
            continue
        h, w, length, x, y, z, ry = (float(v) for v in fields[8:15])
        centre_rect = np.array([x, y - h / 2, z])
        centre_cam = np.linalg.solve(rect, centre_rect)
        centre_velo = (cam_to_velo @ np.append(centre_cam, 1.0))[:3]
        boxes.append([*centre_velo, length, w, h, -ry - math.pi / 2])
    return np.array(boxes, dtype=np.float64).reshape(-1, 7)
