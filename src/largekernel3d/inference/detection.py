"""3D object detection on raw points with a trained CenterPoint: the model's own voxelisation, range and
decoding; optionally in windows along a scan larger than the model's range.

The detector sees points ``[N, C]`` with the columns of its ``point_features`` (``x y z`` first, then e.g.
``intensity``, ``time_lag``): given columns are used, missing ones are zero. Points outside the model's
``point_cloud_range`` are not seen in a single pass.

Windows (``windows=True``): the x-y extent of the scan is covered by windows of the range's size with stride
``size - overlap``; points of a window are moved so the window sits where the range is (x and y only), boxes
are moved back, and a box is kept by the window whose *core* holds its centre (the cores split the plane:
each overlap is cut in the middle). Objects up to ``overlap / 2`` from a core's edge are fully inside the
window that keeps them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Union, cast

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ..models.detection.centerpoint import CenterPoint


@dataclass
class DetPrediction:
    """Boxes found in one cloud.

    Attributes:
        boxes: float64 ``[K, 7 | 9]`` ``x y z dx dy dz yaw (vx vy)``, box centre, in the input's frame.
        scores: float32 ``[K]``.
        labels: int64 ``[K]`` ids into ``class_names``.
        class_names: the detector's classes.
        points_in_range: input points the network saw (inside the range / a window).
        num_voxels: voxels of the pass(es), summed over windows.
        num_windows: passes run.
        seconds: wall time of :meth:`DetectionPredictor.predict`.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: List[str]
    points_in_range: int = 0
    num_voxels: int = 0
    num_windows: int = 1
    seconds: float = 0.0

    def counts(self, score_threshold: float = 0.0) -> dict:
        """``{class name: boxes with score >= score_threshold}`` for the classes found."""
        keep = self.scores >= score_threshold
        counts = np.bincount(self.labels[keep], minlength=len(self.class_names))
        return {self.class_names[k]: int(counts[k]) for k in np.argsort(-counts, kind="stable") if counts[k]}


class DetectionPredictor:
    """Run a CenterPoint detector (:class:`~largekernel3d.models.detection.CenterPoint`) on point clouds.

    Args:
        model: the detector.
        device: where it runs.
        windows: cover a scan larger than the range with overlapping windows (module docstring).
        overlap: window overlap in metres (default 10).
    """

    task = "det"

    def __init__(
        self, model: nn.Module, device: Union[str, torch.device] = "cpu", windows: bool = False, overlap: float = 10.0
    ) -> None:
        from ..training.distributed import resolve_device

        if not hasattr(model, "predict_points") or not hasattr(model, "grid"):
            raise TypeError(f"model must be a CenterPoint detector, got {type(model).__name__}")
        if not (isinstance(overlap, (int, float)) and np.isfinite(overlap) and overlap >= 0):
            raise ValueError(f"overlap must be non-negative metres, got {overlap!r}")
        self.device = device if isinstance(device, torch.device) else resolve_device(str(device), argument="device")
        self.model = cast("CenterPoint", model.to(self.device).eval())
        self.class_names = [str(c) for c in self.model.class_names]
        self.point_features = tuple(self.model.point_features)
        self.range = np.asarray(self.model.grid.point_cloud_range, dtype=np.float64).reshape(6)
        self.windows = bool(windows)
        self.overlap = float(overlap)
        size = self.range[3:5] - self.range[:2]
        if self.windows and (size <= self.overlap).any():
            raise ValueError(f"overlap {overlap} m must be smaller than the range's size {size.tolist()} m")
        self.checkpoint: Optional[Path] = None

    @classmethod
    def from_checkpoint(
        cls, path: Union[str, Path], device: Union[str, torch.device] = "auto", **options
    ) -> "DetectionPredictor":
        """Rebuild the detector of a ``lk3d train det`` checkpoint; ``options`` as the constructor's."""
        from ..training.det_trainer import load_trained_detector
        from ..training.distributed import resolve_device

        dev = device if isinstance(device, torch.device) else resolve_device(str(device), argument="device")
        model, _ = load_trained_detector(Path(path), None, dev)
        out = cls(model, dev, **options)
        out.checkpoint = Path(path)
        return out

    def point_table(self, points: np.ndarray, features: Optional[Union[np.ndarray, dict]] = None) -> np.ndarray:
        """float64 ``[N, C]`` in the model's column order from ``points [N, 3]`` and ``features``: ``[N, C - 3]``
        (the model's extra columns in order) or ``{column name: [N]}``; missing columns are 0."""
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] < 3 or pts.dtype.kind not in "iuf":
            raise ValueError(f"points must be a real array [N, >=3], got {pts.dtype} {pts.shape}")
        n, c = pts.shape[0], len(self.point_features)
        table = np.zeros((n, c), dtype=np.float64)
        table[:, :3] = pts[:, :3]
        if features is None and pts.shape[1] == c:
            table[:, 3:] = pts[:, 3:]
        elif isinstance(features, dict):
            unknown = sorted(set(features) - set(self.point_features[3:]))
            if unknown:
                raise ValueError(f"features {unknown} are not columns of this model {list(self.point_features)}")
            for name, value in features.items():
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if value.shape != (n,):
                    raise ValueError(f"features[{name!r}] must have {n} values, got {value.shape}")
                table[:, self.point_features.index(name)] = value
        elif features is not None:
            f = np.asarray(features, dtype=np.float64)
            if f.ndim == 1:
                f = f[:, None]
            if f.shape != (n, c - 3):
                raise ValueError(
                    f"features must be [N, {c - 3}] (columns {list(self.point_features[3:])}), got {f.shape}"
                )
            table[:, 3:] = f
        if not np.isfinite(table).all():
            raise ValueError("points / features contain NaN or inf; drop those rows first")
        return table

    @torch.no_grad()
    def _run(self, table: np.ndarray):
        lo, hi = self.range[:3], self.range[3:]
        inside = np.all((table[:, :3] >= lo) & (table[:, :3] < hi), axis=1)
        pts = torch.from_numpy(table[inside].astype(np.float32))
        (det,) = self.model.predict_points([pts.to(self.device)])
        from ..sparse.point_to_voxel import points_to_voxels

        vox = points_to_voxels(pts, self.model.grid, self.model.max_points_per_voxel, self.model.max_voxels["test"])
        return (
            det.boxes.double().cpu().numpy(),
            det.scores.float().cpu().numpy(),
            det.labels.long().cpu().numpy(),
            int(inside.sum()),
            int(vox.coords.shape[0]),
        )

    def predict(self, points: np.ndarray, features: Optional[Union[np.ndarray, dict]] = None) -> DetPrediction:
        """Boxes in one cloud (``points`` / ``features`` as :meth:`point_table`)."""
        start = time.perf_counter()
        table = self.point_table(points, features)
        if table.shape[0] == 0:
            raise ValueError("points is empty: nothing to detect")
        if not self.windows:
            boxes, scores, labels, seen, voxels = self._run(table)
            return DetPrediction(
                boxes, scores, labels, list(self.class_names), seen, voxels, 1, time.perf_counter() - start
            )
        size = self.range[3:5] - self.range[:2]
        stride = size - self.overlap
        centre = (self.range[:2] + self.range[3:5]) / 2
        lo, hi = table[:, :2].min(axis=0), table[:, :2].max(axis=0)
        counts = np.maximum(1, np.ceil((hi - lo - self.overlap) / stride - 1e-9).astype(int))
        out_b, out_s, out_l, seen, voxels, runs = [], [], [], 0, 0, 0
        for i in range(counts[0]):
            for j in range(counts[1]):
                w_lo = lo + np.array([i, j]) * stride
                w_centre = w_lo + size / 2
                core_lo = np.where([i == 0, j == 0], -np.inf, w_lo + self.overlap / 2)
                core_hi = np.where([i == counts[0] - 1, j == counts[1] - 1], np.inf, w_lo + size - self.overlap / 2)
                moved = table.copy()
                moved[:, :2] += centre - w_centre
                boxes, scores, labels, n_in, n_vox = self._run(moved)
                runs += 1
                seen += n_in
                voxels += n_vox
                boxes[:, :2] -= centre - w_centre
                keep = np.all((boxes[:, :2] >= core_lo) & (boxes[:, :2] < core_hi), axis=1)
                out_b.append(boxes[keep])
                out_s.append(scores[keep])
                out_l.append(labels[keep])
        width = out_b[0].shape[1] if out_b else 7
        boxes = np.concatenate(out_b) if out_b else np.zeros((0, width))
        scores = np.concatenate(out_s) if out_s else np.zeros(0, np.float32)
        labels = np.concatenate(out_l) if out_l else np.zeros(0, np.int64)
        order = np.argsort(-scores, kind="stable")
        return DetPrediction(
            boxes[order],
            scores[order],
            labels[order],
            list(self.class_names),
            seen,
            voxels,
            runs,
            time.perf_counter() - start,
        )


__all__ = ["DetPrediction", "DetectionPredictor"]
