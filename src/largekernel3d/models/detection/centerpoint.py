"""CenterPoint with a sparse 3D backbone, from points to boxes, and the named detectors built from a config.

Data flow (shapes for a batch of ``B`` frames; ``s`` = the head's output stride)::

    points [N_b, C]  --hard voxelisation on the VoxelGrid-->  voxels [M, P, C], coords (b, z, y, x)  (data.detection)
    vfe                MeanVFE                   [M, C]
                       SparseConvTensor(features, coords, grid.sparse_shape, B)
    backbone_3d        sparse 3D backbone        sparse [B, 128, D', n_y / 8, n_x / 8]
    map_to_bev_module  HeightCompression         [B, 128 D', n_y / 8, n_x / 8]
    backbone_2d        BEVNeck                   [B, F, n_y / s, n_x / s]
    dense_head         CenterHead                per task heatmaps and box maps -> loss (training) | Detections

The submodule names are OpenPCDet's (``Detector3DTemplate``'s topology), and the parts below them keep
OpenPCDet's keys, so an OpenPCDet CenterPoint ``model_state`` lines up with :meth:`CenterPoint.state_dict`
(including the ``global_step`` buffer OpenPCDet's detectors carry; nothing here reads it). One difference of
meaning: the head's ``rot`` channel order (see ``center_head.rot_channels_from_openpcdet``).

:func:`build_detector` builds one of :data:`DETECTOR_NAMES` from a plain mapping (YAML-friendly); the
functions :func:`nuscenes_detector_config` and :func:`kitti_detector_config` return the official settings.
"""

from __future__ import annotations

import copy
import dataclasses
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ...data.detection.batch import DetectionBatch, DetectionSample, collate_detection, voxelize_frame
from ...data.detection.classes import KITTI_CLASSES, NUSCENES_CLASSES
from ...data.detection.frame import LidarFrame
from .._config_checks import check_config_keys, config_positive_int
from ...sparse.point_to_voxel import VoxelGrid, points_to_voxels
from .backbone3d import (
    LARGEKERNEL3D_BACKBONE_PRESETS,
    DetectionBackbone3d,
    VoxelBackBone8x,
    VoxelResBackBone8x,
    build_largekernel3d_backbone,
)
from .bev import BEVNeck, HeightCompression
from .center_decode import CenterDecodeConfig, Detections
from .center_head import CenterHead
from .center_losses import CenterLossConfig
from .center_targets import CenterTargetConfig
from .vfe import MeanVFE

MaxVoxels = Union[int, Sequence[int], Mapping[str, int]]


def _max_voxels(value: MaxVoxels) -> Dict[str, int]:
    """``{"train": n, "test": m}`` from an int (both), a pair ``[train, test]`` or a mapping with those keys."""
    if isinstance(value, Mapping):
        if set(value) != {"train", "test"}:
            raise ValueError(f"max_voxels as a mapping needs exactly the keys 'train' and 'test', got {sorted(value)}")
        pair: Tuple[object, object] = (value["train"], value["test"])
    elif isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"max_voxels as a sequence must be [train, test], got {list(value)}")
        pair = (value[0], value[1])
    else:
        pair = (value, value)
    return {
        "train": config_positive_int(pair[0], "max_voxels['train']"),
        "test": config_positive_int(pair[1], "max_voxels['test']"),
    }


class CenterPoint(nn.Module):
    """The CenterPoint detector (see the module docstring for the data flow and the state-dict layout).

    Args:
        grid: the voxel grid (range and voxel size) the backbone and the head were built for.
        point_features: names of the ``C`` point columns the network reads, starting with ``x, y, z``.
        backbone_3d: a stride-8 sparse backbone (:class:`~.backbone3d.DetectionBackbone3d`) built with
            ``in_channels = C`` and ``sparse_shape = grid.sparse_shape``.
        backbone_2d: the BEV neck, ``in_channels = backbone_3d.out_channels * D'``.
        dense_head: the :class:`~.center_head.CenterHead`, ``in_channels = backbone_2d.out_channels``, on
            ``grid`` with ``out_stride = backbone_3d.stride * backbone_2d.stride``.
        max_points_per_voxel: ``P`` for :meth:`voxelize` / :meth:`predict_points`.
        max_voxels: voxel caps for training and inference: an int (both), ``[train, test]`` or
            ``{"train": .., "test": ..}``.
        config: the configuration it was built from (kept as :attr:`config` for checkpoints), if any.

    Raises ``ValueError`` naming the part when the parts do not fit together.
    """

    global_step: Tensor  # OpenPCDet's step counter buffer (kept for state-dict compatibility)

    def __init__(
        self,
        grid: VoxelGrid,
        point_features: Sequence[str],
        backbone_3d: DetectionBackbone3d,
        backbone_2d: BEVNeck,
        dense_head: CenterHead,
        max_points_per_voxel: int = 10,
        max_voxels: MaxVoxels = (120_000, 160_000),
        config: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        if not isinstance(grid, VoxelGrid):
            raise TypeError(f"grid must be a VoxelGrid, got {type(grid).__name__}")
        names = (point_features,) if isinstance(point_features, str) else tuple(point_features)
        if names[:3] != ("x", "y", "z") or len(set(names)) != len(names):
            raise ValueError(f"point_features must be distinct names starting with 'x', 'y', 'z', got {list(names)}")
        if list(getattr(backbone_3d, "sparse_shape", [])) != list(grid.sparse_shape):
            raise ValueError(
                f"backbone_3d was built for sparse_shape {getattr(backbone_3d, 'sparse_shape', None)} but "
                f"the grid's is {grid.sparse_shape}"
            )
        if backbone_3d.in_channels != len(names):
            raise ValueError(
                f"backbone_3d takes {backbone_3d.in_channels} voxel features but point_features has "
                f"{len(names)}: {list(names)}"
            )
        depth, height, width = backbone_3d.output_spatial_shape()
        num_bev = backbone_3d.out_channels * depth
        if backbone_2d.in_channels != num_bev:
            raise ValueError(
                f"backbone_2d takes {backbone_2d.in_channels} channels but the BEV map has "
                f"{backbone_3d.out_channels} x {depth} = {num_bev}; build BEVNeck({num_bev}, ...)"
            )
        if dense_head.in_channels != backbone_2d.out_channels:
            raise ValueError(
                f"dense_head takes {dense_head.in_channels} channels but backbone_2d gives {backbone_2d.out_channels}"
            )
        total_stride = backbone_3d.stride * backbone_2d.stride
        bev = (height * backbone_3d.stride / total_stride, width * backbone_3d.stride / total_stride)
        if dense_head.out_stride != total_stride or dense_head.grid != grid or bev != tuple(dense_head.bev_shape):
            raise ValueError(
                f"the head expects a {dense_head.bev_shape} map at stride {dense_head.out_stride} on "
                f"{dense_head.grid}, but the backbone and neck give {bev} at stride {total_stride:g} on "
                f"{grid}; use a grid whose n_x and n_y are multiples of {backbone_3d.stride} and "
                f"out_stride = backbone stride x neck stride"
            )
        self.grid = grid
        self.point_features = names
        self.max_points_per_voxel = config_positive_int(max_points_per_voxel, "max_points_per_voxel")
        self.max_voxels = _max_voxels(max_voxels)
        self.config: Dict[str, Any] = copy.deepcopy(dict(config)) if config is not None else {}
        self.vfe = MeanVFE(len(names))
        self.backbone_3d = backbone_3d
        self.map_to_bev_module = HeightCompression(num_bev)
        self.backbone_2d = backbone_2d
        self.dense_head = dense_head
        self.register_buffer("global_step", torch.zeros(1, dtype=torch.long))

    @property
    def class_names(self) -> Tuple[str, ...]:
        return self.dense_head.class_names

    # -- voxelisation with the model's own settings ------------------------------------------------
    def voxelize(self, frame: LidarFrame, training: Optional[bool] = None) -> DetectionSample:
        """One frame as a :class:`DetectionSample` with this model's grid, point columns, ``P`` and voxel cap
        (``training`` picks the cap and drops boxes centred outside the range, as OpenPCDet's training does;
        default: the module's mode)."""
        training = self.training if training is None else bool(training)
        return voxelize_frame(
            frame,
            self.grid,
            self.point_features,
            self.max_points_per_voxel,
            self.max_voxels["train" if training else "test"],
            remove_outside_boxes=training,
        )

    # -- forward -----------------------------------------------------------------------------------------
    def _check_batch(self, batch: DetectionBatch) -> None:
        if not isinstance(batch, DetectionBatch):
            raise TypeError(
                f"CenterPoint takes a DetectionBatch (data.detection.collate_detection), got "
                f"{type(batch).__name__}; for raw points use predict_points"
            )
        if tuple(batch.point_features) != self.point_features:
            raise ValueError(
                f"the batch has point columns {list(batch.point_features)} but the model reads "
                f"{list(self.point_features)}; voxelise the frames with model.voxelize"
            )
        if batch.coords.dim() != 2 or batch.coords.shape[1] != 4:
            raise ValueError(f"batch.coords must be [M, 4] (batch, z, y, x), got {tuple(batch.coords.shape)}")

    def head_outputs(self, batch: DetectionBatch) -> List[Dict[str, Tensor]]:
        """The head's raw per-task maps for ``batch`` (``CenterHead.forward``'s output)."""
        self._check_batch(batch)
        features = self.vfe(batch.voxels, batch.num_points)
        sparse = self.backbone_3d.tensor_type(
            features, batch.coords.to(torch.int32), list(self.grid.sparse_shape), batch.batch_size
        )
        bev = self.map_to_bev_module(self.backbone_3d(sparse))
        return self.dense_head(self.backbone_2d(bev))

    def forward(self, batch: DetectionBatch) -> Union[Tuple[Tensor, Dict[str, float]], List[Detections]]:
        """Training mode: ``(loss, parts)`` against ``batch.gt_boxes`` / ``gt_labels`` (``CenterHead.loss``).
        Eval mode: one :class:`Detections` per frame (boxes ``[K, 7 | 9]``, scores, labels into
        :attr:`class_names`)."""
        preds = self.head_outputs(batch)
        if self.training:
            return self.dense_head.loss(preds, batch.gt_boxes, batch.gt_labels)
        return self.dense_head.predict(preds)

    @torch.no_grad()
    def predict_points(self, points_list: Sequence[Tensor]) -> List[Detections]:
        """Detections for raw point clouds: each ``[N_b, C]`` (columns :attr:`point_features`, in that order;
        torch or numpy) is voxelised with the model's grid, ``P`` and test voxel cap, on the model's device.
        Needs eval mode (``model.eval()``)."""
        if self.training:
            raise RuntimeError("predict_points runs the network for inference; call model.eval() first")
        if isinstance(points_list, Tensor) or not isinstance(points_list, Sequence) or not len(points_list):
            raise TypeError("points_list must be a non-empty list of [N, C] point tensors (one per frame)")
        device = self.global_step.device
        samples = []
        for b, points in enumerate(points_list):
            pts = torch.as_tensor(points, dtype=torch.float32, device=device)
            if pts.dim() != 2 or pts.shape[1] != len(self.point_features):
                raise ValueError(
                    f"points_list[{b}] must be [N, {len(self.point_features)}] with columns "
                    f"{list(self.point_features)}, got {tuple(pts.shape)}"
                )
            vox = points_to_voxels(pts, self.grid, self.max_points_per_voxel, self.max_voxels["test"])
            empty = torch.zeros((0, 7), device=device)
            samples.append(
                DetectionSample(
                    name=str(b),
                    voxels=vox.voxels,
                    coords=vox.coords,
                    num_points=vox.num_points,
                    gt_boxes=empty,
                    gt_labels=torch.zeros(0, dtype=torch.long, device=device),
                    point_features=self.point_features,
                )
            )
        return self(collate_detection(samples))


# -- the named detectors ---------------------------------------------------------------------------------
CENTERPOINT_VOXEL = "centerpoint_voxel"
CENTERPOINT_VOXELRES = "centerpoint_voxelres"
CENTERPOINT_LARGEKERNEL3D = "centerpoint_largekernel3d"
DETECTOR_NAMES: Tuple[str, ...] = (CENTERPOINT_VOXEL, CENTERPOINT_VOXELRES, CENTERPOINT_LARGEKERNEL3D)

STANDARD_POINT_FEATURES: Tuple[str, ...] = ("x", "y", "z", "intensity", "time_lag")
_REQUIRED_KEYS = ("name", "class_names", "point_cloud_range", "voxel_size")
_OPTIONAL_KEYS = (
    "tasks",
    "point_features",
    "in_channels",
    "max_points_per_voxel",
    "max_voxels",
    "with_velocity",
    "neck",
    "head",
)
_LK_KEYS = ("backbone_preset", "backbone")
NECK_KEYS: Tuple[str, ...] = ("layer_nums", "layer_strides", "num_filters", "upsample_strides", "num_upsample_filters")
HEAD_KEYS: Tuple[str, ...] = (
    "shared_channels",
    "head_channels",
    "num_head_convs",
    "init_bias",
    "use_bias_before_norm",
    "loss",
    "target",
    "decode",
)
LK_BACKBONE_KEYS: Tuple[str, ...] = ("kernel_sizes", "conv_types", "down_kernel_size", "position_encoding", "partition")
_HEAD_SUBCONFIGS = MappingProxyType(
    {"loss": CenterLossConfig, "target": CenterTargetConfig, "decode": CenterDecodeConfig}
)


def allowed_detector_keys(name: str) -> Tuple[str, ...]:
    """The top-level config keys :func:`build_detector` accepts for detector ``name``."""
    return _REQUIRED_KEYS + _OPTIONAL_KEYS + (_LK_KEYS if name == CENTERPOINT_LARGEKERNEL3D else ())


def _section(config: Mapping[str, Any], key: str, allowed: Sequence[str], prefix: str = "") -> Dict[str, Any]:
    value = config.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"detector config key {prefix + key!r} must be a mapping, got {type(value).__name__}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ValueError(
            f"unknown detector config key(s) {[f'{prefix}{key}.{k}' for k in unknown]}; allowed keys "
            f"in {prefix + key!r}: {list(allowed)}"
        )
    return dict(value)


def _point_features(config: Mapping[str, Any]) -> Tuple[str, ...]:
    names = config.get("point_features")
    channels = config.get("in_channels")
    if names is None:
        if channels is None:
            return STANDARD_POINT_FEATURES[:4]
        if isinstance(channels, bool) or not isinstance(channels, int) or not 3 <= channels <= 5:
            raise ValueError(
                f"in_channels without point_features must be 3, 4 or 5 (the first of "
                f"{list(STANDARD_POINT_FEATURES)}), got {channels!r}; give point_features by name"
            )
        return STANDARD_POINT_FEATURES[:channels]
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"point_features must be a list of column names, got {names!r}")
    names = tuple(names)
    if channels is not None and channels != len(names):
        raise ValueError(
            f"in_channels={channels!r} disagrees with point_features {list(names)} ({len(names)} "
            f"columns); give one of them"
        )
    return names


def _build_backbone(
    name: str, in_channels: int, sparse_shape: Sequence[int], config: Mapping[str, Any], backend: Optional[ModuleType]
) -> DetectionBackbone3d:
    if name == CENTERPOINT_VOXEL:
        return VoxelBackBone8x(in_channels, sparse_shape, backend=backend)
    if name == CENTERPOINT_VOXELRES:
        return VoxelResBackBone8x(in_channels, sparse_shape, backend=backend)
    preset = config.get("backbone_preset", "nuscenes")
    if preset not in LARGEKERNEL3D_BACKBONE_PRESETS:
        raise ValueError(
            f"detector config key 'backbone_preset' must be one of "
            f"{sorted(LARGEKERNEL3D_BACKBONE_PRESETS)}, got {preset!r}"
        )
    overrides = _section(config, "backbone", LK_BACKBONE_KEYS)
    return build_largekernel3d_backbone(in_channels, sparse_shape, preset=preset, backend=backend, **overrides)


def build_detector(config: Mapping[str, Any], backend: Optional[ModuleType] = None) -> CenterPoint:
    """The CenterPoint detector described by ``config``.

    Keys (``*`` required):

    - ``name``\\*: one of :data:`DETECTOR_NAMES` (the sparse backbone: ``centerpoint_voxel`` =
      ``VoxelBackBone8x``, ``centerpoint_voxelres`` = ``VoxelResBackBone8x``, ``centerpoint_largekernel3d`` =
      the LargeKernel3D backbone).
    - ``class_names``\\*: the classes (labels are ids into it); ``tasks``: a partition of them into head tasks
      (default: one task of all classes).
    - ``point_cloud_range``\\* ``[x_min, y_min, z_min, x_max, y_max, z_max]``, ``voxel_size``\\* ``[v_x, v_y, v_z]``.
    - ``point_features`` (column names, default ``[x, y, z, intensity]``) or ``in_channels`` (3-5: the first of
      ``x, y, z, intensity, time_lag``).
    - ``max_points_per_voxel`` (default 10), ``max_voxels`` (int, ``[train, test]`` or
      ``{train: .., test: ..}``; default 120000 / 160000).
    - ``with_velocity`` (default false): regress ``vx, vy`` (nuScenes).
    - ``neck``: :class:`~.bev.BEVNeck` options (:data:`NECK_KEYS`; default the nuScenes CenterPoint neck).
    - ``head``: :class:`~.center_head.CenterHead` options (:data:`HEAD_KEYS`), with ``loss``, ``target`` and
      ``decode`` mappings of :class:`CenterLossConfig`, :class:`CenterTargetConfig`, :class:`CenterDecodeConfig`
      fields. The head's output stride is the backbone's (8) times the neck's.
    - ``centerpoint_largekernel3d`` only: ``backbone_preset`` (a name of ``LARGEKERNEL3D_BACKBONE_PRESETS``,
      default ``"nuscenes"``) and ``backbone`` (overrides: :data:`LK_BACKBONE_KEYS`).

    ``backend``: the sparse-conv module of the 3D backbone (default ours; ``spconv.pytorch`` for plain convs).
    Unknown or missing keys raise ``ValueError`` naming them.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"build_detector expects a mapping (dict) config, got {type(config).__name__}")
    name = config.get("name")
    if name not in DETECTOR_NAMES:
        raise ValueError(f"detector config key 'name' must be one of {list(DETECTOR_NAMES)}, got {name!r}")
    check_config_keys(config, name, allowed_detector_keys(name), _REQUIRED_KEYS, "detector")
    grid = VoxelGrid(config["point_cloud_range"], config["voxel_size"])
    point_features = _point_features(config)
    class_names = config["class_names"]
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of names, got the string {class_names!r}")
    tasks = config.get("tasks") or [list(class_names)]
    with_velocity = config.get("with_velocity", False)
    if not isinstance(with_velocity, bool):
        raise TypeError(f"with_velocity must be true or false, got {with_velocity!r}")
    neck_options = _section(config, "neck", NECK_KEYS)
    head_options = _section(config, "head", HEAD_KEYS)
    for key, kind in _HEAD_SUBCONFIGS.items():
        fields = tuple(f.name for f in dataclasses.fields(kind))
        sub = _section(head_options, key, fields, prefix="head.")
        head_options.pop(key, None)
        head_options[f"{key}_config"] = kind(**sub)

    backbone = _build_backbone(name, len(point_features), grid.sparse_shape, config, backend)
    neck = BEVNeck(backbone.out_channels * backbone.output_spatial_shape()[0], **neck_options)
    out_stride = backbone.stride * neck.stride
    if out_stride != int(out_stride) or out_stride < 1:
        raise ValueError(
            f"the neck's stride {neck.stride:g} makes the head's output stride {out_stride:g}; it must "
            f"be a whole number >= 1 (neck.upsample_strides)"
        )
    head = CenterHead(
        neck.out_channels,
        list(class_names),
        tasks,
        grid,
        out_stride=int(out_stride),
        with_velocity=with_velocity,
        **head_options,
    )
    return CenterPoint(
        grid,
        point_features,
        backbone,
        neck,
        head,
        max_points_per_voxel=config.get("max_points_per_voxel", 10),
        max_voxels=config.get("max_voxels", (120_000, 160_000)),
        config=config,
    )


# -- official settings ---------------------------------------------------------------------------------------
NUSCENES_TASKS: Tuple[Tuple[str, ...], ...] = (
    ("car",),
    ("truck", "construction_vehicle"),
    ("bus", "trailer"),
    ("barrier",),
    ("motorcycle", "bicycle"),
    ("pedestrian", "traffic_cone"),
)


def nuscenes_detector_config(name: str = CENTERPOINT_LARGEKERNEL3D) -> Dict[str, Any]:
    """The nuScenes CenterPoint settings (OpenPCDet's ``cbgs_voxel0075_res3d_centerpoint`` / the LargeKernel3D
    det3d config): 10 classes in six tasks, range ``[-54, -54, -5, 54, 54, 3]``, voxels 0.075 x 0.075 x 0.2 m
    (grid 1440 x 1440 x 41), 10 merged sweeps as 5 features (``x, y, z, intensity, time_lag``), at most 10
    points per voxel and 120000 / 160000 voxels, velocity, the [5, 5] neck (512 ch, stride 8), loss weights
    1 / 0.25, rotated NMS 0.2 keeping 83 per task, centres within 61.2 m."""
    config: Dict[str, Any] = {
        "name": name,
        "class_names": list(NUSCENES_CLASSES),
        "tasks": [list(t) for t in NUSCENES_TASKS],
        "point_cloud_range": [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0],
        "voxel_size": [0.075, 0.075, 0.2],
        "point_features": ["x", "y", "z", "intensity", "time_lag"],
        "max_points_per_voxel": 10,
        "max_voxels": {"train": 120_000, "test": 160_000},
        "with_velocity": True,
        "neck": {
            "layer_nums": [5, 5],
            "layer_strides": [1, 2],
            "num_filters": [128, 256],
            "upsample_strides": [1, 2],
            "num_upsample_filters": [256, 256],
        },
        "head": {
            "shared_channels": 64,
            "head_channels": 64,
            "num_head_convs": 2,
            "use_bias_before_norm": True,
            "loss": {
                "hm_weight": 1.0,
                "loc_weight": 0.25,
                "code_weights": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2, 1.0, 1.0],
            },
            "target": {"gaussian_overlap": 0.1, "min_radius": 2, "max_objects": 500},
            "decode": {
                "score_threshold": 0.1,
                "top_k": 500,
                "post_max_size": 83,
                "nms_type": "rotate",
                "nms_iou": 0.2,
                "post_center_range": [-61.2, -61.2, -10.0, 61.2, 61.2, 10.0],
            },
        },
    }
    if name == CENTERPOINT_LARGEKERNEL3D:
        config["backbone_preset"] = "nuscenes"
    return config


def kitti_detector_config(name: str = CENTERPOINT_LARGEKERNEL3D) -> Dict[str, Any]:
    """The KITTI CenterPoint settings (OpenPCDet's ``kitti_models/centerpoint.yaml`` on its KITTI dataset
    config): Car / Pedestrian / Cyclist in one task, range ``[0, -40, -3, 70.4, 40, 1]``, voxels
    0.05 x 0.05 x 0.1 m (grid 1408 x 1600 x 41), 4 features, at most 5 points per voxel and 16000 / 40000
    voxels, a one-level neck (5 convs of 128 ch, up-sampled x2 to 256 ch: head stride 4), loss weights 1 / 2,
    rotated NMS 0.01 keeping 500. The LargeKernel3D variant takes the OpenPCDet port's backbone preset (no
    official KITTI LargeKernel3D config was released)."""
    config: Dict[str, Any] = {
        "name": name,
        "class_names": list(KITTI_CLASSES),
        "tasks": [list(KITTI_CLASSES)],
        "point_cloud_range": [0.0, -40.0, -3.0, 70.4, 40.0, 1.0],
        "voxel_size": [0.05, 0.05, 0.1],
        "point_features": ["x", "y", "z", "intensity"],
        "max_points_per_voxel": 5,
        "max_voxels": {"train": 16_000, "test": 40_000},
        "with_velocity": False,
        "neck": {
            "layer_nums": [5],
            "layer_strides": [1],
            "num_filters": [128],
            "upsample_strides": [2],
            "num_upsample_filters": [256],
        },
        "head": {
            "shared_channels": 64,
            "head_channels": 64,
            "num_head_convs": 2,
            "use_bias_before_norm": True,
            "loss": {"hm_weight": 1.0, "loc_weight": 2.0, "code_weights": [1.0] * 8},
            "target": {"gaussian_overlap": 0.1, "min_radius": 2, "max_objects": 500},
            "decode": {
                "score_threshold": 0.1,
                "top_k": 500,
                "post_max_size": 500,
                "nms_type": "rotate",
                "nms_iou": 0.01,
                "post_center_range": [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0],
            },
        },
    }
    if name == CENTERPOINT_LARGEKERNEL3D:
        config["backbone_preset"] = "openpcdet"
    return config


DETECTOR_PRESETS: Mapping[str, Callable[[str], Dict[str, Any]]] = MappingProxyType(
    {"nuscenes": nuscenes_detector_config, "kitti": kitti_detector_config}
)


__all__ = [
    "CenterPoint",
    "DETECTOR_NAMES",
    "CENTERPOINT_VOXEL",
    "CENTERPOINT_VOXELRES",
    "CENTERPOINT_LARGEKERNEL3D",
    "STANDARD_POINT_FEATURES",
    "NECK_KEYS",
    "HEAD_KEYS",
    "LK_BACKBONE_KEYS",
    "NUSCENES_TASKS",
    "allowed_detector_keys",
    "build_detector",
    "nuscenes_detector_config",
    "kitti_detector_config",
    "DETECTOR_PRESETS",
]
