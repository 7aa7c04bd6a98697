"""What :func:`largekernel3d.analysis.erf.effective_receptive_field` analyses: networks (random init or from a
checkpoint) and the input sparse tensors of scenes, for segmentation networks and detection backbones.

* Segmentation (``build_model`` names of :data:`~largekernel3d.models.SEGMENTATION_NAMES`): the whole network,
  on voxelised scenes of a segmentation dataset (features: voxel colour minus 0.5; indices ``(b, x, y, z)``).
* Detection (:data:`~largekernel3d.models.DETECTOR_NAMES`): the sparse 3D backbone ``detector.backbone_3d``, on
  the voxel features of the detector's own voxel feature encoder (indices ``(b, z, y, x)`` on its grid); its
  stages are ``conv1`` … ``conv4``, ``conv_out`` (= ``"output"``, the encoded sparse tensor).

Everything comes from a run configuration (:mod:`largekernel3d.training.config`), so the data side (dataset,
folder, voxel size, split) is the one training used; the analysed scenes are the configuration's held-out ones
(validation split; the training split when there is none).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

SEG_DATASETS = ("generated", "scannet", "s3dis", "semantickitti")
DET_DATASETS = ("synthetic", "kitti", "nuscenes", "pandaset")
# model keys that only the large-kernel detector takes
_DET_LK_KEYS = ("backbone_preset", "backbone")


@dataclass
class ERFSubject:
    """One network to analyse.

    Attributes:
        label: display name (model name and ``random init`` / ``trained``).
        network: the module fed with the input sparse tensors (a segmentation network or a detector's
            ``backbone_3d``).
        config: the run configuration it was built from.
        model_name: its ``build_model`` name.
    """

    label: str
    network: nn.Module
    config: Dict[str, Any]
    model_name: str


def task_of(model_name: str) -> str:
    """``"seg"`` or ``"det"`` for a ``build_model`` name (``ValueError`` naming the choices otherwise)."""
    from ..models.registry import DETECTOR_NAMES, SEGMENTATION_NAMES

    if model_name in SEGMENTATION_NAMES:
        return "seg"
    if model_name in DETECTOR_NAMES:
        return "det"
    raise ValueError(
        f"--model / --compare {model_name!r} is not a model name; choose one of "
        f"{list(SEGMENTATION_NAMES) + list(DETECTOR_NAMES)}"
    )


def model_section(model: Mapping[str, Any], name: str) -> Dict[str, Any]:
    """The ``model`` section for ``name`` derived from another one: unchanged for the same name; for another
    detector the neck, head and tasks are kept (only the backbone keys of the large-kernel detector dropped);
    for another segmentation network only the name is kept (its own defaults, as ``--set model.name=``)."""
    if model.get("name") == name:
        return copy.deepcopy(dict(model))
    if task_of(name) == "det":
        out = {k: copy.deepcopy(v) for k, v in model.items() if k not in _DET_LK_KEYS}
        out["name"] = name
        return out
    return {"name": name}


def with_overrides(cfg: Mapping[str, Any], task: str, overrides: Sequence[str]) -> Dict[str, Any]:
    """``cfg`` with ``section.key=value`` overrides, validated against the task's schema."""
    from ..training import config as C
    from ..training.det_config import DET_SCHEMA

    return C.build_config(cfg, overrides, source="--set", schema=DET_SCHEMA if task == "det" else C.SEG_SCHEMA)


def load_split(cfg: Mapping[str, Any], task: str):
    """``(split, class names)``: the datasets of ``cfg`` (scenes or frames, train and held-out)."""
    if task == "seg":
        from ..training import setup

        split = setup.build_scene_split(cfg)
        return split, list(split.class_names)
    from ..training import det_setup

    split = det_setup.build_frame_split(cfg)
    return split, list(split.class_names)


def build_subject(
    cfg: Mapping[str, Any], task: str, checkpoint: Optional[str], seed: int, class_names: Sequence[str]
) -> ERFSubject:
    """A network of ``cfg["model"]``: with fresh weights (``torch.manual_seed(seed)`` first) or the weights of
    ``checkpoint`` (whose own configuration then decides the architecture)."""
    name = str(cfg["model"]["name"])
    if checkpoint is not None:
        if task == "seg":
            from ..training.trainer import load_trained_model

            model, payload = load_trained_model(Path(checkpoint))
        else:
            from ..training.det_trainer import load_trained_detector

            model, payload = load_trained_detector(Path(checkpoint))
        name = str(payload["config"]["model"]["name"])
        network = model if task == "seg" else model.backbone_3d
        return ERFSubject(f"{name}, trained", network, dict(payload["config"]), name)
    torch.manual_seed(int(seed))
    if task == "seg":
        from ..training import setup

        model = setup.build_network(cfg, len(class_names))
    else:
        from ..training import det_setup

        model = det_setup.build_network(cfg, class_names)
    network = model if task == "seg" else model.backbone_3d
    return ERFSubject(f"{name}, random init", network, dict(cfg), name)


def scene_inputs(
    cfg: Mapping[str, Any], task: str, split, count: int
) -> Tuple[List, Tuple[float, float, float], Tuple[str, str, str], List[str]]:
    """``(inputs, voxel_size per index axis, axis names, scene names)``: the first ``count`` held-out scenes of
    ``split`` as sparse tensors of batch size 1."""
    scenes = split.val if split.val is not None and len(split.val) else split.train
    count = min(int(count), len(scenes))
    if task == "seg":
        from .. import data as D
        from ..training import setup

        view = setup.voxelize(scenes, cfg, train=False)
        inputs, names = [], []
        for i in range(count):
            batch = D.collate_segmentation([view[i]])
            inputs.append(batch.to_sparse_tensor())
            names.append(batch.names[0])
        v = float(cfg["data"]["voxel_size"])
        return inputs, (v, v, v), ("x", "y", "z"), names
    from ..data.detection import collate_detection
    from ..training import det_setup

    detector = det_setup.build_network(cfg, split.class_names).eval()
    inputs, names = [], []
    with torch.no_grad():
        for i in range(count):
            sample = detector.voxelize(scenes[i], training=False)
            batch = collate_detection([sample])
            feats = detector.vfe(batch.voxels, batch.num_points)
            inputs.append(
                detector.backbone_3d.tensor_type(
                    feats, batch.coords.to(torch.int32), list(detector.grid.sparse_shape), 1
                )
            )
            names.append(batch.names[0])
    vx, vy, vz = (float(v) for v in cfg["data"]["voxel_size"])
    return inputs, (vz, vy, vx), ("z", "y", "x"), names


def check_same_inputs(a: Mapping[str, Any], b: Mapping[str, Any], task: str) -> None:
    """Raise ``ValueError`` when two configurations voxelise differently (the compared networks must see the
    same input tensors)."""
    keys = ("voxel_size",) if task == "seg" else ("voxel_size", "point_cloud_range", "point_features")
    for key in keys:
        va, vb = a["data"][key], b["data"][key]
        if (list(va) if isinstance(va, (list, tuple)) else va) != (list(vb) if isinstance(vb, (list, tuple)) else vb):
            raise ValueError(
                f"the two networks were trained with data.{key} = {va!r} and {vb!r}; the ERF compares "
                f"them on the same inputs: give --set data.{key}=... or checkpoints of one setting"
            )


__all__ = [
    "ERFSubject",
    "SEG_DATASETS",
    "DET_DATASETS",
    "task_of",
    "model_section",
    "load_split",
    "with_overrides",
    "build_subject",
    "scene_inputs",
    "check_same_inputs",
]
