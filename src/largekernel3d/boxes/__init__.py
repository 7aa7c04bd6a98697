"""3D box operations for LiDAR detection (OpenPCDet's box convention), pure torch on any device.

A box is ``[x, y, z, dx, dy, dz, yaw, (vx, vy, ...)]`` in the LiDAR frame: ``(x, y, z)`` the box centre,
``dx`` the length along the heading, ``dy`` the width, ``dz`` the height, ``yaw`` the heading angle from
+x towards +y about +z. Columns after index 6 are carried along where boxes are returned.

Every function takes torch tensors (CPU or CUDA) or numpy arrays (and then returns numpy), float32 or
float64; geometry comes back in the input dtype, indices as int64, masks as bool. Zero boxes are fine.

- :mod:`.angles`: :func:`wrap_angle`.
- :mod:`.corners`: :func:`boxes_to_corners_3d`, :func:`boxes_to_bev_corners`, :func:`boxes_bev_aabb`,
  :func:`enlarge_boxes`.
- :mod:`.iou`: :func:`bev_iou`, :func:`bev_iou_aligned`, :func:`iou_3d`, :func:`iou_3d_aligned`.
- :mod:`.nms`: :func:`nms_bev`, :func:`circle_nms`.
- :mod:`.points`: :func:`points_in_boxes`, :func:`points_in_boxes_index`.
- :mod:`.coding`: :func:`encode_center_boxes`, :func:`decode_center_boxes` (CenterPoint's targets).
"""

from .angles import wrap_angle
from .coding import decode_center_boxes, encode_center_boxes
from .corners import (
    BEV_CORNER_SIGNS,
    CORNER_SIGNS,
    boxes_bev_aabb,
    boxes_to_bev_corners,
    boxes_to_corners_3d,
    enlarge_boxes,
)
from .iou import bev_iou, bev_iou_aligned, iou_3d, iou_3d_aligned
from .nms import circle_nms, nms_bev
from .points import points_in_boxes, points_in_boxes_index

__all__ = [
    "BEV_CORNER_SIGNS",
    "CORNER_SIGNS",
    "bev_iou",
    "bev_iou_aligned",
    "boxes_bev_aabb",
    "boxes_to_bev_corners",
    "boxes_to_corners_3d",
    "circle_nms",
    "decode_center_boxes",
    "encode_center_boxes",
    "enlarge_boxes",
    "iou_3d",
    "iou_3d_aligned",
    "nms_bev",
    "points_in_boxes",
    "points_in_boxes_index",
    "wrap_angle",
]
