"""Box corners, BEV bounding rectangles and enlarged boxes.

A box ``[x, y, z, dx, dy, dz, yaw, ...]`` (OpenPCDet's LiDAR convention) is the set

    { c + R(yaw) (u, v, w) :  |u| <= dx / 2,  |v| <= dy / 2,  |w| <= dz / 2 },   c = (x, y, z),

    R(yaw) = [[cos yaw, -sin yaw, 0], [sin yaw, cos yaw, 0], [0, 0, 1]]

(``u`` along the heading, ``v`` to its left, ``w`` up). Corner ``k`` is ``c + R(yaw) (s_k * (dx, dy, dz) / 2)``
with the sign patterns ``s_k`` of :data:`CORNER_SIGNS`.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ._inputs import ArrayLike, back, check_geometry, check_real, to_tensor

#: Signs ``(u, v, w)`` of the eight corners in box coordinates: 0-3 the bottom face (``w = -dz/2``) and
#: 4-7 the top face, each starting front-left and going front-right, back-right, back-left (clockwise seen
#: from above); corner ``k + 4`` lies above corner ``k``. This is OpenPCDet's ``boxes_to_corners_3d`` order.
CORNER_SIGNS = (
    (1, 1, -1),
    (1, -1, -1),
    (-1, -1, -1),
    (-1, 1, -1),
    (1, 1, 1),
    (1, -1, 1),
    (-1, -1, 1),
    (-1, 1, 1),
)

#: Signs ``(u, v)`` of the four BEV corners: front-left, back-left, back-right, front-right, i.e.
#: counter-clockwise seen from above (+z) for positive ``dx, dy``.
BEV_CORNER_SIGNS = ((1, 1), (-1, 1), (-1, -1), (1, -1))


def _signs(table: Sequence[Sequence[int]], like: Tensor) -> Tensor:
    return torch.tensor(table, dtype=like.dtype, device=like.device)


def rotate_bev(local_xy: Tensor, yaw: Tensor) -> Tensor:
    """``R(yaw) p`` for points ``local_xy [..., K, 2]`` and angles ``yaw [...]`` (one per leading index)."""
    cos, sin = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]
    u, v = local_xy[..., 0], local_xy[..., 1]
    return torch.stack((u * cos - v * sin, u * sin + v * cos), dim=-1)


def bev_corners_local(boxes: Tensor) -> Tensor:
    """BEV corners relative to the box centre, ``R(yaw) (s * (dx, dy) / 2)``: ``[N, 4, 2]`` (unchecked)."""
    half = boxes[:, None, 3:5] * 0.5
    return rotate_bev(half * _signs(BEV_CORNER_SIGNS, boxes), boxes[:, 6])


def bev_half_extent(boxes: Tensor) -> Tensor:
    """Half sizes of the BEV axis-aligned bounding rectangle (unchecked): ``[N, 2]``.

    ``hx = (|cos yaw| dx + |sin yaw| dy) / 2``, ``hy = (|sin yaw| dx + |cos yaw| dy) / 2``.
    """
    cos, sin = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
    dx, dy = boxes[:, 3], boxes[:, 4]
    return torch.stack((cos * dx + sin * dy, sin * dx + cos * dy), dim=-1) * 0.5


def boxes_to_corners_3d(boxes: ArrayLike) -> ArrayLike:
    """The eight corners of each box, ``c + R(yaw) (s_k * (dx, dy, dz) / 2)``.

    Args:
        boxes: ``[N, >=7]`` float32/float64, ``[x, y, z, dx, dy, dz, yaw, ...]`` (torch or numpy).

    Returns:
        ``[N, 8, 3]`` in the input's dtype; corner order as in :data:`CORNER_SIGNS` (bottom face 0-3
        front-left, front-right, back-right, back-left; top face 4-7 the same, above them).
    """
    tensor, was_numpy = to_tensor(boxes, "boxes")
    check_geometry(tensor, "boxes", 7)
    local = tensor[:, None, 3:6] * 0.5 * _signs(CORNER_SIGNS, tensor)
    xy = rotate_bev(local[..., :2], tensor[:, 6]) + tensor[:, None, 0:2]
    corners = torch.cat((xy, local[..., 2:] + tensor[:, None, 2:3]), dim=-1)
    return back(corners, was_numpy)


def boxes_to_bev_corners(boxes: ArrayLike) -> ArrayLike:
    """The four BEV corners of each box, ``(x, y) + R(yaw) (s_k * (dx, dy) / 2)``.

    Args:
        boxes: ``[N, >=7]`` float32/float64 (torch or numpy).

    Returns:
        ``[N, 4, 2]`` in the input's dtype, counter-clockwise seen from above: front-left, back-left,
        back-right, front-right (:data:`BEV_CORNER_SIGNS`).
    """
    tensor, was_numpy = to_tensor(boxes, "boxes")
    check_geometry(tensor, "boxes", 7)
    return back(bev_corners_local(tensor) + tensor[:, None, 0:2], was_numpy)


def boxes_bev_aabb(boxes: ArrayLike) -> ArrayLike:
    """The axis-aligned BEV bounding rectangle of each (rotated) box.

    ``(x - hx, y - hy, x + hx, y + hy)`` with ``hx = (|cos yaw| dx + |sin yaw| dy) / 2`` and
    ``hy = (|sin yaw| dx + |cos yaw| dy) / 2``.

    Args:
        boxes: ``[N, >=7]`` float32/float64 (torch or numpy).

    Returns:
        ``[N, 4]`` = ``(x_min, y_min, x_max, y_max)`` in the input's dtype.
    """
    tensor, was_numpy = to_tensor(boxes, "boxes")
    check_geometry(tensor, "boxes", 7)
    half = bev_half_extent(tensor)
    return back(torch.cat((tensor[:, 0:2] - half, tensor[:, 0:2] + half), dim=-1), was_numpy)


def enlarge_boxes(boxes: ArrayLike, margin: Union[float, Sequence[float], ArrayLike]) -> ArrayLike:
    """Boxes grown by ``margin`` in total size: ``(dx, dy, dz) + margin``, clamped at zero.

    Each face moves outwards by ``margin / 2`` (OpenPCDet's ``enlarge_box3d`` convention: ``margin`` is the
    growth of the full size, not of the half size). Centre, yaw and the extra columns are unchanged. A
    negative margin shrinks the boxes.

    Args:
        boxes: ``[N, >=7]`` float32/float64 (torch or numpy).
        margin: a float (the same for the three sizes) or three floats ``(m_dx, m_dy, m_dz)``.

    Returns:
        A new ``[N, C]`` array of the input's dtype.
    """
    tensor, was_numpy = to_tensor(boxes, "boxes")
    check_geometry(tensor, "boxes", 7)
    if isinstance(margin, (Tensor, np.ndarray, list, tuple)):
        values = np.asarray(margin.detach().cpu() if isinstance(margin, Tensor) else margin, dtype=np.float64)
        if values.shape not in ((), (3,)):
            raise ValueError(f"margin must be a float or three floats (m_dx, m_dy, m_dz), got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError(f"margin must be finite, got {values.tolist()}")
        grow = torch.as_tensor(values, dtype=tensor.dtype, device=tensor.device)
    else:
        grow = torch.as_tensor(check_real(margin, "margin"), dtype=tensor.dtype, device=tensor.device)
    out = tensor.clone()
    out[:, 3:6] = (tensor[:, 3:6] + grow).clamp_min(0)
    return back(out, was_numpy)
