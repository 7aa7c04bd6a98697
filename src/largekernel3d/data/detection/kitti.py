"""KITTI 3D object detection: ``velodyne/*.bin``, ``label_2/*.txt`` and ``calib/*.txt`` as :class:`LidarFrame`.

Layout: ``root/<split>/{velodyne,label_2,calib}/<id>.{bin,txt}`` (``image_2/<id>.png`` optional), the
official object-benchmark folders. ``velodyne`` is float32 ``[N, 4]`` (x, y, z, reflectance 0-1) in the
Velodyne frame (x forward, y left, z up).

Frames (``calib``): ``Tr_velo_to_cam`` (``V``, 3×4) maps Velodyne points into camera 0, ``R0_rect``
(``R0``, 3×3) rectifies them, ``P2`` (3×4) projects rectified points into image 2::

    p_rect = R0 (V [p; 1]),        (u, v) = (P2 [p_rect; 1])[:2] / (P2 [p_rect; 1])[2]

Labels (15 fields a line; a 16th is a detection score): ``type truncated occluded alpha left top right
bottom h w l x y z rotation_y`` with ``(x, y, z)`` the **bottom** centre in rectified camera coordinates
(x right, y down, z forward) and ``rotation_y`` the heading about the camera's y axis. To the LiDAR box
of :mod:`.frame` (OpenPCDet's convention)::

    centre = V⁻¹ R0⁻¹ (x, y - h/2, z),   (dx, dy, dz) = (l, w, h),   yaw = wrap(-rotation_y - pi/2)

(the yaw relation takes the camera's y axis as the LiDAR's -z axis, which the calibration satisfies to
about half a degree; OpenPCDet and mmdet3d make the same approximation). The inverse is
:func:`lidar_boxes_to_camera`; ``alpha = wrap(rotation_y - atan2(x, z))`` is the observation angle.

Difficulty (the KITTI benchmark's levels, from the 2D box height ``bottom - top`` in pixels, the
``occluded`` level and the ``truncated`` fraction): easy = height >= 40, occluded <= 0, truncated <= 0.15;
moderate = height >= 25, occluded <= 1, truncated <= 0.30; hard = height >= 25, occluded <= 2,
truncated <= 0.50; an object gets the easiest level it qualifies for (0, 1, 2) and -1 when none.

Field of view (``fov_only=True``, what OpenPCDet trains on): only points with positive depth whose
projection falls inside image 2 are kept. The image size is read from ``image_2/<id>.png``'s header when
that file exists, else it is ``image_size`` (default :data:`KITTI_IMAGE_SIZE` = 1242 × 375, the size of
most object-benchmark images; the others are 1224-1241 wide and 370-376 high, so the fallback crop may keep
a few columns more than the true image).

Classes: objects whose type is in ``classes`` become boxes; ``class_map`` can fold other types into one
(e.g. ``{"Van": "Car", "Person_sitting": "Pedestrian"}``). Every other non-``DontCare`` object is
*ignored*: it is not a box but is kept in ``metadata["ignored"]`` (its label and LiDAR box), and the
``DontCare`` regions in ``metadata["dontcare_bbox2d"]``, both for the metric (the KITTI evaluation does not
count detections on them as false positives).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ...boxes import boxes_to_corners_3d, wrap_angle
from ..io import load_bin, require_dir
from .classes import KITTI_CLASSES, KITTI_TYPES, check_class_map, check_classes
from .frame import DetectionDataset, LidarFrame

PathLike = Union[str, Path]

KITTI_IMAGE_SIZE: Tuple[int, int] = (1242, 375)
"""(width, height) used for the field-of-view crop when a frame's image is absent."""

KITTI_POINT_FEATURES: Tuple[str, ...] = ("x", "y", "z", "intensity")

#: (min 2D box height in pixels, max occluded level, max truncated fraction) of easy, moderate, hard.
DIFFICULTY_THRESHOLDS: Tuple[Tuple[float, int, float], ...] = ((40.0, 0, 0.15), (25.0, 1, 0.30), (25.0, 2, 0.50))


# ----------------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class KittiCalib:
    """The calibration of one frame: ``P2 [3, 4]``, ``R0 [3, 3]`` (``R0_rect``), ``V2C [3, 4]`` (``Tr_velo_to_cam``).

    ``lidar_to_rect``: ``p_rect = R0 (V2C [p; 1])``; ``rect_to_lidar`` its inverse; ``rect_to_image``:
    ``(u, v) = (P2 [p; 1])[:2] / (P2 [p; 1])[2]`` with the depth ``(P2 [p; 1])[2]``.
    """

    P2: np.ndarray
    R0: np.ndarray
    V2C: np.ndarray

    def __post_init__(self) -> None:
        for name, shape in (("P2", (3, 4)), ("R0", (3, 3)), ("V2C", (3, 4))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"KittiCalib.{name} must be a finite {shape} matrix, got shape {value.shape}")
            object.__setattr__(self, name, value)

    @classmethod
    def from_file(cls, path: PathLike) -> "KittiCalib":
        """Parse a ``calib/<id>.txt`` (lines ``KEY: v1 v2 ...``; needs ``P2``, ``R0_rect``, ``Tr_velo_to_cam``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"KITTI calibration {str(path)!r} does not exist")
        values: Dict[str, np.ndarray] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, rest = line.partition(":")
            if not sep:
                raise ValueError(f"{str(path)!r} line {lineno}: expected 'KEY: numbers', got {line[:60]!r}")
            try:
                values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"{str(path)!r} line {lineno} ({key.strip()}): not a list of numbers ({exc})") from exc
        mats = {}
        for key, shape in (("P2", (3, 4)), ("R0_rect", (3, 3)), ("Tr_velo_to_cam", (3, 4))):
            if key not in values:
                raise ValueError(
                    f"{str(path)!r} has no {key!r} line (a KITTI object calibration needs P2, "
                    f"R0_rect and Tr_velo_to_cam)"
                )
            if values[key].size != shape[0] * shape[1] or not np.isfinite(values[key]).all():
                raise ValueError(
                    f"{str(path)!r}: {key} must hold {shape[0] * shape[1]} finite numbers, got {values[key].size}"
                )
            mats[key] = values[key].reshape(shape)
        return cls(P2=mats["P2"], R0=mats["R0_rect"], V2C=mats["Tr_velo_to_cam"])

    def lidar_to_rect(self, xyz: np.ndarray) -> np.ndarray:
        """``R0 (V2C [p; 1])`` for ``xyz [N, 3]`` → float64 ``[N, 3]``."""
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        return (xyz @ self.V2C[:, :3].T + self.V2C[:, 3]) @ self.R0.T

    def rect_to_lidar(self, xyz_rect: np.ndarray) -> np.ndarray:
        """``V2C⁻¹ R0⁻¹ p`` (the inverse of :meth:`lidar_to_rect`) for ``xyz_rect [N, 3]`` → ``[N, 3]``."""
        xyz_rect = np.asarray(xyz_rect, dtype=np.float64).reshape(-1, 3)
        cam = np.linalg.solve(self.R0, xyz_rect.T).T
        return np.linalg.solve(self.V2C[:, :3], (cam - self.V2C[:, 3]).T).T

    def rect_to_image(self, xyz_rect: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates ``[N, 2]`` and depth ``[N]`` (the projective denominator) in image 2."""
        xyz_rect = np.asarray(xyz_rect, dtype=np.float64).reshape(-1, 3)
        proj = xyz_rect @ self.P2[:, :3].T + self.P2[:, 3]
        depth = proj[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = proj[:, :2] / depth[:, None]
        return uv, depth

    def lidar_to_image(self, xyz: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`rect_to_image` of :meth:`lidar_to_rect`: ``uv [N, 2]``, ``depth [N]``."""
        return self.rect_to_image(self.lidar_to_rect(xyz))


# ---------------------------------------------------------------------------------------------------- labels
@dataclass
class KittiLabels:
    """The objects of one label file, one entry per line (``M`` lines).

    Attributes: ``names`` (list of ``M`` types), ``truncated [M]`` float, ``occluded [M]`` int64,
    ``alpha [M]``, ``bbox2d [M, 4]`` (left, top, right, bottom), ``dims_hwl [M, 3]`` (h, w, l),
    ``location [M, 3]`` (bottom centre, rectified camera), ``rotation_y [M]`` and ``score [M]`` (``None``
    unless the file has a 16th column). Floats are float64.
    """

    names: List[str]
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox2d: np.ndarray
    dims_hwl: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.names)

    def select(self, mask: np.ndarray) -> "KittiLabels":
        """The entries where the boolean ``mask [M]`` is true."""
        mask = np.asarray(mask, dtype=bool)
        return KittiLabels(
            names=[n for n, keep in zip(self.names, mask, strict=False) if keep],
            truncated=self.truncated[mask],
            occluded=self.occluded[mask],
            alpha=self.alpha[mask],
            bbox2d=self.bbox2d[mask],
            dims_hwl=self.dims_hwl[mask],
            location=self.location[mask],
            rotation_y=self.rotation_y[mask],
            score=None if self.score is None else self.score[mask],
        )


def read_kitti_labels(path: PathLike) -> KittiLabels:
    """Parse a KITTI label (or result) file: 15 fields a line, or 16 with a score (all lines alike).

    ``ValueError`` naming the file and line for a line with another field count, an unknown ``type``
    (not in :data:`KITTI_TYPES`), a non-numeric or non-finite field, or a non-positive size of an object
    that is not ``DontCare``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI label file {str(path)!r} does not exist")
    names: List[str] = []
    rows: List[List[float]] = []
    ncols: Optional[int] = None
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{str(path)!r} line {lineno}"
        if len(fields) not in (15, 16):
            raise ValueError(
                f"{where}: a KITTI label line has 15 fields (16 with a score), got {len(fields)}: {line[:80]!r}"
            )
        if ncols is not None and len(fields) != ncols:
            raise ValueError(f"{where}: has {len(fields)} fields but earlier lines have {ncols}")
        ncols = len(fields)
        if fields[0] not in KITTI_TYPES:
            raise ValueError(f"{where}: unknown object type {fields[0]!r}; KITTI types are {KITTI_TYPES}")
        try:
            numbers = [float(v) for v in fields[1:]]
        except ValueError as exc:
            raise ValueError(f"{where}: fields 2-{len(fields)} must be numbers ({exc})") from exc
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"{where}: non-finite value in {line[:80]!r}")
        if fields[0] != "DontCare" and min(numbers[7:10]) <= 0:
            raise ValueError(f"{where}: the size h, w, l must be positive, got {numbers[7:10]}")
        names.append(fields[0])
        rows.append(numbers)
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, (ncols or 15) - 1)
    return KittiLabels(
        names=names,
        truncated=arr[:, 0],
        occluded=arr[:, 1].astype(np.int64),
        alpha=arr[:, 2],
        bbox2d=arr[:, 3:7],
        dims_hwl=arr[:, 7:10],
        location=arr[:, 10:13],
        rotation_y=arr[:, 13],
        score=arr[:, 14] if ncols == 16 else None,
    )


def kitti_difficulty(bbox2d: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """KITTI difficulty per object: 0 easy, 1 moderate, 2 hard, -1 none (thresholds in the module docstring).

    Args: ``bbox2d [M, 4]`` (left, top, right, bottom), ``occluded [M]``, ``truncated [M]``.
    Returns: int64 ``[M]``.
    """
    height = np.asarray(bbox2d, dtype=np.float64).reshape(-1, 4)
    height = height[:, 3] - height[:, 1]
    occluded = np.asarray(occluded).reshape(-1)
    truncated = np.asarray(truncated, dtype=np.float64).reshape(-1)
    out = np.full(height.shape, -1, dtype=np.int64)
    for level in range(len(DIFFICULTY_THRESHOLDS) - 1, -1, -1):  # hardest first, easier levels overwrite
        min_h, max_occ, max_trunc = DIFFICULTY_THRESHOLDS[level]
        out[(height >= min_h) & (occluded <= max_occ) & (truncated <= max_trunc)] = level
    return out


# ------------------------------------------------------------------------------------------- conversions
def camera_boxes_to_lidar(
    location: np.ndarray, dims_hwl: np.ndarray, rotation_y: np.ndarray, calib: KittiCalib
) -> np.ndarray:
    """KITTI camera boxes → LiDAR boxes ``[M, 7]`` float64 (formula in the module docstring).

    Args: ``location [M, 3]`` bottom centres (rectified camera), ``dims_hwl [M, 3]``, ``rotation_y [M]``.
    """
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    dims = np.asarray(dims_hwl, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    centre_rect = location - np.stack([np.zeros_like(ry), dims[:, 0] / 2, np.zeros_like(ry)], axis=1)
    centre = calib.rect_to_lidar(centre_rect)
    yaw = wrap_angle(-ry - np.pi / 2)
    return np.concatenate([centre, dims[:, [2, 1, 0]], yaw[:, None]], axis=1)


def lidar_boxes_to_camera(boxes: np.ndarray, calib: KittiCalib) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LiDAR boxes ``[M, >=7]`` → KITTI camera boxes: ``location [M, 3]`` (bottom centre, rectified camera),
    ``dims_hwl [M, 3]`` and ``rotation_y [M]`` (``wrap(-yaw - pi/2)``); the inverse of
    :func:`camera_boxes_to_lidar`."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"boxes must have shape [M, >=7] (x, y, z, dx, dy, dz, yaw), got {boxes.shape}")
    centre_rect = calib.lidar_to_rect(boxes[:, :3])
    dims_hwl = boxes[:, [5, 4, 3]]
    location = centre_rect + np.stack([np.zeros(len(boxes)), dims_hwl[:, 0] / 2, np.zeros(len(boxes))], axis=1)
    rotation_y = wrap_angle(-boxes[:, 6] - np.pi / 2)
    return location, dims_hwl, rotation_y


def observation_angle(location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI's ``alpha = wrap(rotation_y - atan2(x, z))`` from camera locations ``[M, 3]`` and ``rotation_y [M]``."""
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    return wrap_angle(np.asarray(rotation_y, dtype=np.float64) - np.arctan2(location[:, 0], location[:, 2]))


def project_boxes_to_image(
    boxes: np.ndarray, calib: KittiCalib, image_size: Optional[Tuple[int, int]] = None
) -> np.ndarray:
    """2D boxes ``[M, 4]`` (left, top, right, bottom): the pixel bounding rectangle of each LiDAR box's 8
    projected corners, clipped to ``[0, width - 1] × [0, height - 1]`` when ``image_size = (width, height)``.

    Corners are projected as they are (as OpenPCDet does), so a box reaching behind the camera gets an
    unreliable rectangle.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if len(boxes) == 0:
        return np.zeros((0, 4))
    corners = np.asarray(boxes_to_corners_3d(boxes[:, :7]))  # [M, 8, 3]
    uv, _ = calib.lidar_to_image(corners.reshape(-1, 3))
    uv = uv.reshape(-1, 8, 2)
    out = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    if image_size is not None:
        width, height = image_size
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width - 1)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height - 1)
    return out


def fov_mask(xyz: np.ndarray, calib: KittiCalib, image_size: Tuple[int, int]) -> np.ndarray:
    """``bool [N]``: depth > 0 and the projection inside ``[0, width) × [0, height)`` of image 2."""
    uv, depth = calib.lidar_to_image(xyz)
    width, height = image_size
    with np.errstate(invalid="ignore"):
        return (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)


def png_size(path: PathLike) -> Tuple[int, int]:
    """(width, height) from a PNG file's IHDR header (no image decoding)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{str(path)!r} is not a PNG file (no PNG signature / IHDR header)")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def write_kitti_labels(
    path: PathLike,
    boxes_lidar: np.ndarray,
    scores: Optional[np.ndarray],
    names: Sequence[str],
    calib: KittiCalib,
    image_size: Optional[Tuple[int, int]] = KITTI_IMAGE_SIZE,
) -> None:
    """Write LiDAR boxes as a KITTI label / result file (one line per box; an empty file for none).

    Each line is ``name -1 -1 alpha left top right bottom h w l x y z rotation_y [score]`` with the camera
    box from :func:`lidar_boxes_to_camera`, ``alpha`` from :func:`observation_angle` and the 2D box from
    :func:`project_boxes_to_image` (clipped to ``image_size``; ``None`` leaves it unclipped). Numbers have
    4 decimals. ``scores=None`` writes 15-field (label) lines, otherwise 16-field (result) lines.

    Args:
        path: output file (its folder must exist).
        boxes_lidar: ``[M, >=7]`` LiDAR boxes.
        scores: ``[M]`` or ``None``.
        names: ``M`` KITTI type names.
        calib: the frame's calibration.
    """
    boxes = np.asarray(boxes_lidar, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"boxes_lidar must have shape [M, >=7], got {boxes.shape}")
    m = len(boxes)
    if len(names) != m:
        raise ValueError(f"names must have {m} entries (one per box), got {len(names)}")
    bad = [n for n in names if n not in KITTI_TYPES or n == "DontCare"]
    if bad:
        raise ValueError(f"names {bad[:5]} are not KITTI object types {KITTI_TYPES[:-1]}")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape != (m,):
            raise ValueError(f"scores must have shape [{m}], got {scores.shape}")
    if not np.isfinite(boxes[:, :7]).all():
        raise ValueError("boxes_lidar contain NaN or inf")
    location, dims, ry = lidar_boxes_to_camera(boxes, calib)
    alpha = observation_angle(location, ry)
    bbox2d = project_boxes_to_image(boxes, calib, image_size)
    lines = []
    for i in range(m):
        numbers = [alpha[i], *bbox2d[i], *dims[i], *location[i], ry[i]]
        if scores is not None:
            numbers.append(scores[i])
        lines.append(f"{names[i]} -1 -1 " + " ".join(f"{v:.4f}" for v in numbers))
    Path(path).write_text("".join(line + "\n" for line in lines))


# --------------------------------------------------------------------------------------------------- dataset
class KittiDetection(DetectionDataset):
    """KITTI object frames as :class:`LidarFrame` (boxes ``[M, 7]`` in the LiDAR frame, see the module docstring).

    Args:
        root: the KITTI object folder holding ``<split>/``.
        split: ``"training"`` or ``"testing"`` (any sub-folder name); a split without ``label_2/`` gives
            frames without boxes.
        frame_ids: frame ids (``"000123"`` or ``123``); ``None``: every ``velodyne/*.bin``, sorted.
        classes: the detection classes (KITTI types other than ``DontCare``), in label order.
        fov_only: keep only the points inside image 2's field of view.
        class_map: optional ``{KITTI type: class or None}`` (e.g. ``{"Van": "Car"}``); applied before the
            class filter; ``None`` ignores that type.
        image_size: (width, height) for frames without ``image_2/<id>.png``.
        velodyne_dir: the point folder (``"velodyne_reduced"`` for pre-cropped points).

    Frame ``metadata``: ``calib`` (:class:`KittiCalib`), ``image_size`` and ``image_size_source``
    (``"image"`` or ``"default"``), ``label`` (the :class:`KittiLabels` of the boxes, original type names,
    2D boxes, truncation, occlusion, alpha), ``ignored`` (``{"label": KittiLabels, "boxes": [K, 7]}``),
    ``dontcare_bbox2d [D, 4]``, ``has_labels``.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "training",
        frame_ids: Optional[Sequence[Union[str, int]]] = None,
        classes: Sequence[str] = KITTI_CLASSES,
        fov_only: bool = True,
        class_map: Optional[Mapping[str, Optional[str]]] = None,
        image_size: Tuple[int, int] = KITTI_IMAGE_SIZE,
        velodyne_dir: str = "velodyne",
    ) -> None:
        self.split_dir = require_dir(Path(root) / split, f"KITTI split folder (root={str(root)!r}, split={split!r})")
        self.velodyne_dir = require_dir(self.split_dir / velodyne_dir, "KITTI point folder")
        self.class_names = check_classes(classes, KITTI_TYPES[:-1], "KittiDetection")
        self.class_map = check_class_map(class_map, KITTI_TYPES[:-1], self.class_names, "KittiDetection")
        if not (
            isinstance(image_size, (tuple, list))
            and len(image_size) == 2
            and all(isinstance(v, (int, np.integer)) and v > 0 for v in image_size)
        ):
            raise ValueError(f"image_size must be (width, height) in positive pixels, got {image_size!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.fov_only = bool(fov_only)
        self.has_labels = (self.split_dir / "label_2").is_dir()
        if frame_ids is None:
            self.frame_names = sorted(p.stem for p in self.velodyne_dir.glob("*.bin"))
            if not self.frame_names:
                raise FileNotFoundError(f"no *.bin files in {str(self.velodyne_dir)!r}")
        else:
            if isinstance(frame_ids, (str, int)):
                raise TypeError(f"frame_ids must be a sequence of ids, got {frame_ids!r}")
            self.frame_names = [f"{f:06d}" if isinstance(f, (int, np.integer)) else str(f) for f in frame_ids]

    def _source(self, index: int) -> str:
        return str(self.velodyne_dir / f"{self.frame_names[index]}.bin")

    def _target(self, name: str) -> Optional[str]:
        """The class a KITTI type becomes (``None``: ignored)."""
        if name in self.class_map:
            return self.class_map[name]
        return name if name in self.class_names else None

    def _load(self, index: int) -> LidarFrame:
        fid = self.frame_names[index]
        bin_path = self.velodyne_dir / f"{fid}.bin"
        points = load_bin(bin_path, np.float32, 4)
        if not np.isfinite(points).all():
            raise ValueError(f"{str(bin_path)!r} contains NaN or inf point values")
        calib = KittiCalib.from_file(self.split_dir / "calib" / f"{fid}.txt")
        image_path = self.split_dir / "image_2" / f"{fid}.png"
        if image_path.is_file():
            image_size, size_source = png_size(image_path), "image"
        else:
            image_size, size_source = self.image_size, "default"
        if self.fov_only:
            points = points[fov_mask(points[:, :3], calib, image_size)]

        if self.has_labels:
            labels = read_kitti_labels(self.split_dir / "label_2" / f"{fid}.txt")
        else:
            labels = _empty_labels()
        dontcare = np.array([n == "DontCare" for n in labels.names], dtype=bool)
        targets = [None if dc else self._target(n) for n, dc in zip(labels.names, dontcare, strict=False)]
        keep = np.array([t is not None for t in targets], dtype=bool)
        ignored = ~keep & ~dontcare
        kept = labels.select(keep)
        boxes = camera_boxes_to_lidar(kept.location, kept.dims_hwl, kept.rotation_y, calib)
        ign = labels.select(ignored)
        metadata: Dict[str, Any] = {
            "calib": calib,
            "image_size": image_size,
            "image_size_source": size_source,
            "label": kept,
            "ignored": {
                "label": ign,
                "boxes": camera_boxes_to_lidar(ign.location, ign.dims_hwl, ign.rotation_y, calib),
            },
            "dontcare_bbox2d": labels.bbox2d[dontcare],
            "has_labels": self.has_labels,
        }
        return LidarFrame(
            name=fid,
            points=points,
            point_features=KITTI_POINT_FEATURES,
            boxes=boxes,
            labels=np.array([self.class_names.index(t) for t in targets if t is not None], dtype=np.int64),
            difficulty=kitti_difficulty(kept.bbox2d, kept.occluded, kept.truncated),
            metadata=metadata,
        )


def _empty_labels() -> KittiLabels:
    """A :class:`KittiLabels` with no objects (frames of a split without labels)."""
    return KittiLabels(
        names=[],
        truncated=np.zeros(0),
        occluded=np.zeros(0, dtype=np.int64),
        alpha=np.zeros(0),
        bbox2d=np.zeros((0, 4)),
        dims_hwl=np.zeros((0, 3)),
        location=np.zeros((0, 3)),
        rotation_y=np.zeros(0),
    )


__all__ = [
    "KITTI_IMAGE_SIZE",
    "KITTI_POINT_FEATURES",
    "DIFFICULTY_THRESHOLDS",
    "KittiCalib",
    "KittiLabels",
    "read_kitti_labels",
    "kitti_difficulty",
    "camera_boxes_to_lidar",
    "lidar_boxes_to_camera",
    "observation_angle",
    "project_boxes_to_image",
    "fov_mask",
    "png_size",
    "write_kitti_labels",
    "KittiDetection",
]
