"""The CenterPoint detection head (Yin et al., CVPR 2021) on a BEV feature map.

Architecture (OpenPCDet's ``CenterHead``, whose state_dict keys it reproduces)::

    shared_conv:       Conv3x3(C_in -> S) - BN - ReLU                                  [B, S, H, W]
    heads_list[t]:     one SeparateHead per task t, a branch per output, each branch
        <name>.0 .. <name>.(n-2):  Conv3x3 - BN - ReLU    (n = num_head_convs)
        <name>.(n-1):              Conv3x3(-> out, bias)
      branches: center 2 (sub-cell offset x, y), center_z 1, dim 3 (log dx, dy, dz), rot 2 (sin, cos of
      yaw), vel 2 (vx, vy; optional), hm n_t (class logits, bias initialised to -2.19, i.e. p ~ 0.1)

State-dict keys: ``shared_conv.{0,1}.*``, ``heads_list.<t>.<name>.<i>.{0,1}.*`` (hidden conv, BN) and
``heads_list.<t>.<name>.<n-1>.{weight,bias}``. One difference of meaning: OpenPCDet orders ``rot`` as
(cos, sin), ours (like CenterPoint's det3d) as (sin, cos); :func:`rot_channels_from_openpcdet` converts an
OpenPCDet state_dict.

Training: :mod:`.center_targets` draws the targets, :mod:`.center_losses` scores them; the loss is
``sum_t hm_weight L_hm(t) + loc_weight sum_c w_c L_c(t)``. Inference: :mod:`.center_decode`.
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .._config_checks import config_positive_int
from ...sparse.point_to_voxel import VoxelGrid
from .center_decode import CenterDecodeConfig, Detections, decode_detections
from .center_losses import CenterLossConfig, masked_l1_loss, penalty_reduced_focal_loss
from .center_targets import CenterTargetConfig, TaskTargets, build_task_targets, gather_bev

REGRESSION_CHANNELS: Tuple[Tuple[str, int], ...] = (("center", 2), ("center_z", 1), ("dim", 3), ("rot", 2))
VELOCITY_CHANNELS: Tuple[str, int] = ("vel", 2)


class SeparateHead(nn.Module):
    """One task's branches: ``out[name] = branch_name(x)`` for each ``(name, channels)`` (see the module docs).

    Args:
        in_channels: channels of the shared feature map.
        outputs: ``(name, out_channels)`` pairs, in registration order.
        head_channels: channels of the hidden convs.
        num_convs: convs per branch (``num_convs - 1`` Conv-BN-ReLU, then the output conv).
        init_bias: initial bias of the ``"hm"`` branch's output conv.
        use_bias_before_norm: give the hidden convs a bias (OpenPCDet's ``USE_BIAS_BEFORE_NORM``).
    """

    def __init__(
        self,
        in_channels: int,
        outputs: Sequence[Tuple[str, int]],
        head_channels: int,
        num_convs: int,
        init_bias: float,
        use_bias_before_norm: bool,
    ) -> None:
        super().__init__()
        self.names = tuple(name for name, _ in outputs)
        for name, out_channels in outputs:
            layers: List[nn.Module] = []
            channels = in_channels
            for _ in range(num_convs - 1):
                layers.append(
                    nn.Sequential(
                        nn.Conv2d(channels, head_channels, 3, padding=1, bias=use_bias_before_norm),
                        nn.BatchNorm2d(head_channels),
                        nn.ReLU(),
                    )
                )
                channels = head_channels
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=True))
            branch = nn.Sequential(*layers)
            if name == "hm":
                last = layers[-1]
                assert isinstance(last, nn.Conv2d) and last.bias is not None
                nn.init.constant_(last.bias, init_bias)
            else:
                for m in branch.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight)
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
            self.add_module(name, branch)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {name: getattr(self, name)(x) for name in self.names}


class CenterHead(nn.Module):
    """CenterPoint's multi-task head: BEV features ``[B, C, H, W]`` -> per task heatmaps and box regressions.

    Args:
        in_channels: ``C`` of the BEV map (512 for the SECOND neck).
        class_names: the dataset's classes; labels are ids into it.
        tasks: a partition of ``class_names`` into tasks (each class in exactly one task); each task gets its
            own branches and NMS, e.g. nuScenes' ``[car], [truck, construction_vehicle], [bus, trailer],
            [barrier], [motorcycle, bicycle], [pedestrian, traffic_cone]``.
        grid: the voxel grid of the backbone; the BEV map must be ``grid.bev_shape(out_stride)``.
        out_stride: total downsampling from voxels to BEV cells.
        with_velocity: also regress ``vx, vy`` (boxes then have 9 columns).
        shared_channels: ``S``, channels of the shared conv.
        head_channels: channels of each branch's hidden convs (OpenPCDet uses ``S``).
        num_head_convs: convs per branch (OpenPCDet's ``num_conv``, 2).
        init_bias: initial heatmap bias (``-2.19 = -log((1 - 0.1) / 0.1)``).
        loss_config, target_config, decode_config: see :class:`CenterLossConfig`, :class:`CenterTargetConfig`,
            :class:`CenterDecodeConfig` (defaults when ``None``).
        use_bias_before_norm: biases on the convs followed by BN (True in OpenPCDet's nuScenes CenterPoint
            configs, whose checkpoints then carry ``shared_conv.0.bias`` and ``...<i>.0.bias`` keys).
    """

    def __init__(
        self,
        in_channels: int,
        class_names: Sequence[str],
        tasks: Sequence[Sequence[str]],
        grid: VoxelGrid,
        out_stride: int = 8,
        with_velocity: bool = False,
        shared_channels: int = 64,
        head_channels: int = 64,
        num_head_convs: int = 2,
        init_bias: float = -2.19,
        loss_config: Optional[CenterLossConfig] = None,
        target_config: Optional[CenterTargetConfig] = None,
        decode_config: Optional[CenterDecodeConfig] = None,
        use_bias_before_norm: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = config_positive_int(in_channels, "in_channels")
        config_positive_int(shared_channels, "shared_channels")
        config_positive_int(head_channels, "head_channels")
        config_positive_int(num_head_convs, "num_head_convs")
        self.out_stride = config_positive_int(out_stride, "out_stride")
        if not isinstance(grid, VoxelGrid):
            raise TypeError(f"grid must be a largekernel3d.sparse.point_to_voxel.VoxelGrid, got {type(grid).__name__}")
        if not math.isfinite(float(init_bias)):
            raise ValueError(f"init_bias must be finite, got {init_bias!r}")
        self.class_names = tuple(self._check_class_names(class_names))
        self.task_class_ids = self._check_tasks(tasks, self.class_names)
        self.tasks = tuple(tuple(self.class_names[i] for i in ids) for ids in self.task_class_ids)
        self.grid = grid
        self.bev_shape = grid.bev_shape(out_stride)
        if min(self.bev_shape) < 1:
            raise ValueError(f"out_stride {out_stride} leaves no BEV cell on the grid {grid.grid_size}")
        self.origin_xy = (grid.point_cloud_range[0], grid.point_cloud_range[1])
        self.cell_size_xy = grid.cell_size(out_stride)
        self.with_velocity = bool(with_velocity)
        self.code_size = 10 if self.with_velocity else 8
        self.loss_config = loss_config if loss_config is not None else CenterLossConfig()
        self.target_config = target_config if target_config is not None else CenterTargetConfig()
        self.decode_config = decode_config if decode_config is not None else CenterDecodeConfig()
        for name, cfg, kind in (
            ("loss_config", self.loss_config, CenterLossConfig),
            ("target_config", self.target_config, CenterTargetConfig),
            ("decode_config", self.decode_config, CenterDecodeConfig),
        ):
            if not isinstance(cfg, kind):
                raise TypeError(f"{name} must be a {kind.__name__} or None, got {type(cfg).__name__}")
        self.code_weights = self.loss_config.weights_for(self.code_size)
        dists = self.decode_config.circle_min_distances
        if self.decode_config.nms_type == "circle" and dists is not None and len(dists) != len(self.tasks):
            raise ValueError(
                f"decode_config.circle_min_distances has {len(dists)} entries, needs one per task ({len(self.tasks)})"
            )

        self.shared_conv = nn.Sequential(
            nn.Conv2d(in_channels, shared_channels, 3, padding=1, bias=use_bias_before_norm),
            nn.BatchNorm2d(shared_channels),
            nn.ReLU(),
        )
        outputs = REGRESSION_CHANNELS + ((VELOCITY_CHANNELS,) if self.with_velocity else ())
        heads = [
            SeparateHead(
                shared_channels,
                outputs + (("hm", len(ids)),),
                head_channels,
                num_head_convs,
                float(init_bias),
                use_bias_before_norm,
            )
            for ids in self.task_class_ids
        ]
        self.heads_list = nn.ModuleList(heads)
        self.task_output_names: Tuple[Tuple[str, ...], ...] = tuple(head.names for head in heads)

    @staticmethod
    def _check_class_names(class_names: Sequence[str]) -> List[str]:
        if isinstance(class_names, str) or not all(isinstance(c, str) and c for c in class_names):
            raise TypeError(f"class_names must be a sequence of non-empty strings, got {class_names!r}")
        names = list(class_names)
        if not names:
            raise ValueError("class_names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names has duplicates: {names}")
        return names

    @staticmethod
    def _check_tasks(tasks: Sequence[Sequence[str]], class_names: Sequence[str]) -> Tuple[Tuple[int, ...], ...]:
        if isinstance(tasks, str) or not tasks or any(isinstance(t, str) or len(t) == 0 for t in tasks):
            raise TypeError(f"tasks must be a non-empty sequence of non-empty class-name lists, got {tasks!r}")
        seen: Dict[str, int] = {}
        ids = []
        for t, task in enumerate(tasks):
            for name in task:
                if name not in class_names:
                    raise ValueError(
                        f"tasks[{t}] names class {name!r}, which is not in class_names {list(class_names)}"
                    )
                if name in seen:
                    raise ValueError(
                        f"class {name!r} appears in tasks {seen[name]} and {t}; each class needs exactly one task"
                    )
                seen[name] = t
            ids.append(tuple(class_names.index(name) for name in task))
        missing = [c for c in class_names if c not in seen]
        if missing:
            raise ValueError(f"classes {missing} are in no task; add them to tasks or drop them from class_names")
        return tuple(ids)

    def forward(self, bev: Tensor) -> List[Dict[str, Tensor]]:
        """Per-task outputs ``{"hm": [B, n_t, H, W] logits, "center": [B, 2, H, W], "center_z": [B, 1, H, W],
        "dim": [B, 3, H, W] (log sizes), "rot": [B, 2, H, W] (sin, cos), "vel": [B, 2, H, W] (if enabled)}``."""
        if not isinstance(bev, Tensor) or bev.dim() != 4 or not bev.is_floating_point():
            raise ValueError(
                f"bev must be a floating [B, C, H, W] tensor, got "
                f"{tuple(bev.shape) if isinstance(bev, Tensor) else type(bev).__name__}"
            )
        if bev.shape[1] != self.in_channels:
            raise ValueError(
                f"bev has {bev.shape[1]} channels but the head was built with in_channels={self.in_channels}"
            )
        if tuple(bev.shape[2:]) != self.bev_shape:
            raise ValueError(
                f"bev is {tuple(bev.shape[2:])} (H, W) but grid.bev_shape({self.out_stride}) is "
                f"{self.bev_shape}; check out_stride and the neck's upsampling"
            )
        x = self.shared_conv(bev)
        return [head(x) for head in self.heads_list]

    def _check_preds(self, preds: Sequence[Dict[str, Tensor]]) -> None:
        if len(preds) != len(self.heads_list):
            raise ValueError(f"preds has {len(preds)} task dicts, the head has {len(self.heads_list)} tasks")
        for t, pred in enumerate(preds):
            missing = [n for n in self.task_output_names[t] if n not in pred]
            if missing:
                raise ValueError(f"preds[{t}] lacks {missing}; pass the output of CenterHead.forward")

    def _check_targets(self, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor], batch: int) -> None:
        if len(gt_boxes) != batch or len(gt_labels) != batch:
            raise ValueError(
                f"gt_boxes ({len(gt_boxes)}) and gt_labels ({len(gt_labels)}) need one entry per sample ({batch})"
            )
        need = 9 if self.with_velocity else 7
        for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):
            if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] not in (7, 9):
                raise ValueError(
                    f"gt_boxes[{b}] must be [M, 7] or [M, 9], got "
                    f"{tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__}"
                )
            if boxes.shape[1] < need:
                raise ValueError(
                    f"gt_boxes[{b}] has 7 columns but the head regresses velocity; pass "
                    f"[M, 9] boxes (x, y, z, dx, dy, dz, yaw, vx, vy)"
                )
            if not boxes.is_floating_point():
                raise ValueError(f"gt_boxes[{b}] must be a float tensor, got {boxes.dtype}")
            if not bool(torch.isfinite(boxes).all()):
                raise ValueError(
                    f"gt_boxes[{b}] holds non-finite values (nuScenes boxes without a velocity "
                    f"have NaN vx, vy: set those to 0 in the dataset)"
                )
            if boxes.shape[0] and not bool((boxes[:, 3:6] > 0).all()):
                raise ValueError(f"gt_boxes[{b}] has sizes dx, dy, dz <= 0; drop degenerate boxes in the dataset")
            if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
                raise ValueError(
                    f"gt_labels[{b}] must be an int64 tensor [M] matching gt_boxes[{b}] "
                    f"{tuple(boxes.shape)}, got "
                    f"{(labels.dtype, tuple(labels.shape)) if isinstance(labels, Tensor) else labels!r}"
                )
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.class_names)):
                raise ValueError(
                    f"gt_labels[{b}] has ids outside [0, {len(self.class_names)}) "
                    f"(class_names {list(self.class_names)})"
                )

    def build_targets(
        self, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor], device: Optional[torch.device] = None
    ) -> List[TaskTargets]:
        """The per-task training targets of a batch (:func:`build_task_targets`), on ``device`` (default: the
        boxes' device). Validates the boxes and labels as :meth:`loss` does."""
        if len(gt_boxes) == 0:
            raise ValueError("gt_boxes is empty: pass one (possibly [0, 7]) tensor per sample")
        self._check_targets(gt_boxes, gt_labels, len(gt_boxes))
        targets = build_task_targets(
            gt_boxes,
            gt_labels,
            self.task_class_ids,
            self.bev_shape,
            self.origin_xy,
            self.cell_size_xy,
            self.target_config,
            self.code_size,
        )
        if device is None:
            return targets
        return [
            TaskTargets(
                heatmap=t.heatmap.to(device),
                indices=t.indices.to(device),
                mask=t.mask.to(device),
                boxes=t.boxes.to(device),
            )
            for t in targets
        ]

    def loss(
        self, preds: Sequence[Dict[str, Tensor]], gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> Tuple[Tensor, Dict[str, float]]:
        """The training loss ``sum_t hm_weight L_hm(t) + loc_weight sum_c w_c L_c(t)``.

        Args:
            preds: the output of :meth:`forward` for a batch of ``B``.
            gt_boxes: per sample ``[M_b, 7 | 9]`` boxes (9 with velocity; extra velocity columns are
                ignored when the head has none).
            gt_labels: per sample ``[M_b]`` int64 ids into ``class_names``.
        Returns:
            the total loss (a scalar with gradient) and its parts: ``hm_loss_task_<t>``,
            ``loc_loss_task_<t>`` (already weighted), ``hm_loss``, ``loc_loss`` and ``loss``, as floats.
        """
        self._check_preds(preds)
        hm0 = preds[0]["hm"]
        self._check_targets(gt_boxes, gt_labels, hm0.shape[0])
        targets = self.build_targets(gt_boxes, gt_labels, device=hm0.device)
        weights = hm0.new_tensor(self.code_weights)
        total = hm0.new_zeros(())
        parts: Dict[str, float] = {}
        for t, (pred, target) in enumerate(zip(preds, targets)):
            hm_loss = self.loss_config.hm_weight * penalty_reduced_focal_loss(pred["hm"], target.heatmap)
            regs = torch.cat([pred[name] for name in self.task_output_names[t] if name != "hm"], dim=1)
            per_channel = masked_l1_loss(gather_bev(regs, target.indices), target.boxes, target.mask)
            loc_loss = self.loss_config.loc_weight * (per_channel * weights).sum()
            total = total + hm_loss + loc_loss
            parts[f"hm_loss_task_{t}"] = float(hm_loss.detach())
            parts[f"loc_loss_task_{t}"] = float(loc_loss.detach())
        parts["hm_loss"] = sum(parts[f"hm_loss_task_{t}"] for t in range(len(preds)))
        parts["loc_loss"] = sum(parts[f"loc_loss_task_{t}"] for t in range(len(preds)))
        parts["loss"] = float(total.detach())
        return total, parts

    @torch.no_grad()
    def predict(self, preds: Sequence[Dict[str, Tensor]]) -> List[Detections]:
        """Decode :meth:`forward`'s outputs into one :class:`Detections` per sample (labels into class_names)."""
        self._check_preds(preds)
        return decode_detections(preds, self.task_class_ids, self.origin_xy, self.cell_size_xy, self.decode_config)


# the output conv of a rot branch: ``heads_list.<t>.rot.<i>.weight`` (hidden layers have two indices)
_ROT_KEY = re.compile(r"^heads_list\.\d+\.rot\.\d+\.(weight|bias)$")


def rot_channels_from_openpcdet(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """A copy of an OpenPCDet ``CenterHead`` state_dict with each ``rot`` branch's output conv reordered from
    OpenPCDet's (cos, sin) to ours (sin, cos): rows 0 and 1 of that conv's weight ``[2, C, 3, 3]`` and bias
    ``[2]`` swap. Other keys are left as they are; keys must not carry a prefix (strip ``dense_head.`` first)."""
    out = dict(state_dict)
    found = [key for key in state_dict if _ROT_KEY.match(key)]
    if not found:
        raise ValueError(
            "state_dict has no 'heads_list.<t>.rot.<i>.weight' keys; strip any prefix such as "
            "'dense_head.' before converting"
        )
    for key in found:
        if out[key].shape[0] != 2:
            raise ValueError(f"{key} has {out[key].shape[0]} output channels, expected 2 (cos, sin)")
        out[key] = out[key].flip(0).clone()
    return out


__all__ = ["CenterHead", "SeparateHead", "rot_channels_from_openpcdet"]
