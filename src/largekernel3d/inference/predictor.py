"""``Predictor.from_checkpoint(path)``: the right predictor for a checkpoint (segmentation or detection), and
``predict_file`` for a file on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import torch

from .detection import DetectionPredictor, DetPrediction
from .segmentation import SegmentationPredictor, SegPrediction


class Predictor:
    """Entry point of the Python API::

        from largekernel3d.inference import Predictor
        pred = Predictor.from_checkpoint("runs/demo/checkpoints/best.pt", device="cuda")
        labels = pred.predict(xyz, rgb).labels            # segmentation checkpoint: [N] class ids
        boxes = pred.predict(xyz, intensity).boxes         # detection checkpoint: [K, 7] boxes

    ``from_checkpoint`` reads the checkpoint's ``config["task"]`` (``"seg"``, the default, or ``"det"``) and
    returns a :class:`SegmentationPredictor` or a :class:`DetectionPredictor`; ``options`` go to its
    constructor (``tile_size``, ``overlap``, ``tta``, ... for segmentation; ``windows``, ``overlap`` for
    detection).
    """

    @staticmethod
    def from_checkpoint(
        path: Union[str, Path], device: Union[str, torch.device] = "auto", **options
    ) -> Union[SegmentationPredictor, DetectionPredictor]:
        """The predictor for the checkpoint at ``path`` (see the class docstring)."""
        from ..training.checkpoint import load_checkpoint

        payload = load_checkpoint(Path(path))
        task = payload.get("config", {}).get("task", "seg")
        if task == "det":
            return DetectionPredictor.from_checkpoint(path, device, **options)
        if task == "seg":
            return SegmentationPredictor.from_checkpoint(path, device, **options)
        raise ValueError(f"checkpoint {path}: unknown task {task!r} (expected 'seg' or 'det')")


def predict_file(
    predictor: Union[SegmentationPredictor, DetectionPredictor],
    path: Union[str, Path],
    intensity_scale: float = 1.0,
    **read_options,
) -> "tuple":
    """``(LoadedCloud, prediction)`` for one file read with :func:`~largekernel3d.data.pointcloud_files.
    read_point_cloud` (``read_options``: ``format``, ``units``, ``axes``, ``columns``, ``colour_scale``).
    Segmentation uses the file's colours; detection its intensity times ``intensity_scale`` (and any
    other model column the file has, e.g. ``ring``)."""
    from ..data.pointcloud_files import read_point_cloud

    cloud = read_point_cloud(path, **read_options)
    return cloud, predict_cloud(predictor, cloud, intensity_scale)


def detection_features(predictor, cloud, intensity_scale: float = 1.0) -> Tuple[Dict[str, Any], List[str]]:
    """The per-point features a :class:`DetectionPredictor` takes beyond ``x y z``, from ``cloud``, and the names it
    takes that ``cloud`` lacks (those are zeros: see :meth:`DetectionPredictor.point_table`)."""
    features: Dict[str, Any] = {}
    missing: List[str] = []
    for name in predictor.point_features[3:]:
        if name == "intensity" and cloud.intensity is not None:
            features[name] = cloud.intensity.astype("float64") * float(intensity_scale)
        elif name in cloud.extra:
            features[name] = cloud.extra[name]
        else:
            missing.append(name)
    return features, missing


def predict_cloud(predictor, cloud, intensity_scale: float = 1.0) -> Union[SegPrediction, DetPrediction]:
    """Run ``predictor`` on a :class:`~largekernel3d.data.pointcloud_files.LoadedCloud`."""
    if isinstance(predictor, SegmentationPredictor):
        return predictor.predict(cloud.points, cloud.colors)
    if not isinstance(predictor, DetectionPredictor):
        raise TypeError(f"predictor must be a SegmentationPredictor or DetectionPredictor, got {type(predictor)}")
    return predictor.predict(cloud.points, detection_features(predictor, cloud, intensity_scale)[0])


__all__ = ["Predictor", "predict_file", "predict_cloud", "detection_features"]
