"""Loading the sparse-backbone part of the official LargeKernel3D detection checkpoints (and of OpenPCDet
``VoxelResBackBone8x`` checkpoints) into :class:`~largekernel3d.models.detection.backbone3d.LargeKernel3DBackbone`.

Two official module trees (dvlab-research/LargeKernel3D, ``object-detection/``):

* OpenPCDet port ``VoxelResBackBone8xLargeKernel3D`` (checkpoint ``model_state``, prefix ``backbone_3d.``):
  the same tree and keys as ours (``conv_input``, ``conv1`` .. ``conv4`` with the down layer as
  ``conv{s}.0.{0: conv, 1: BN}`` and the residual blocks as ``conv{s}.{1, 2}``, ``conv_out``).
* det3d ``SpMiddleResNetFHDLargeKernel`` (checkpoint ``state_dict``, prefix ``backbone.``): the down layer
  and its BN are flat (``conv{s}.0`` conv, ``conv{s}.1`` BN, ``conv{s}.2`` ReLU), so the blocks are
  ``conv{s}.{3, 4}``; ``conv_out`` is ``extra_conv``. The multi-modal config adds image-fusion layers
  (``conv``, ``bn``) at the backbone's root, which are not part of ours (unused keys).

Their large-kernel layers (the keys below the conv's path ``p``):

* V1 ``SpatialGroupConv`` (``"spatialgroupconv"``): ``p.block.weight`` a full ``k³`` SubM weight and
  ``p.conv3x3_1.weight`` the parallel 3³ conv with dilation ``k // 2 - 1``, each with a bias (the blocks
  build their convs with ``bias=True``). Training overwrote ``block.weight`` with its group means before
  every step, but evaluation ran the stored (ungrouped) weight. We keep the group means
  ``W_g = mean_{k in g} P[:, k, :]^T`` (:func:`largekernel3d.nn.load_official_v1`, the official
  ``convert_weights.py``) and report the deviation ``max |P - expand(W)| / max |P|`` per layer, warning
  above ``deviation_tolerance``. Loads into ``"swlk_dilated"`` stages built with ``position_encoding=False``.
* V2 ``SpatialGroupConvV2`` (spconv-plus): ``p.block.weight [3, 3, 3, C_out, C_in]`` (27 groups),
  ``p.block.position_embedding [k³, C_in]``, ``p.block.bias``; loads into ``"swlk"`` stages
  (:func:`largekernel3d.nn.load_official_v2`).
* ``"common"``: a plain ``SubMConv3d`` ``p.weight``, ``p.bias`` (``"plain"`` stages).

Weight layouts: spconv >= 2.2 stores ``[C_out, *k, C_in]`` (KRSC, ours); spconv 2.1 ``[*k, C_out, C_in]``
(RSKC) or, depending on the algorithm, KRSC; ``layout="auto"`` tells them apart by shape (``"RSCK"``,
spconv 1.x / ``FILTER_HWIO``, must be named).

Every key is accounted for: checkpoint keys (under the prefix) that nothing reads are *unused*, model keys
that nothing writes are *missing*; either raises unless ``strict=False``, and then both are in the
returned :class:`OfficialLoadReport`. All conversions and shape checks run before anything is written.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple

from torch import Tensor, nn

from largekernel3d.nn import SWLKConv3d, load_official_v1, load_official_v2
from largekernel3d.nn.convert import conv_weight_to_krsc

from .backbone3d import DetectionBackbone3d

SOURCES = ("openpcdet", "det3d")
DEFAULT_PREFIX = {"openpcdet": "backbone_3d.", "det3d": "backbone."}
CHECKPOINT_STATE_KEYS = ("model_state", "state_dict", "model")  # OpenPCDet, det3d / mmcv, others
DEVIATION_TOLERANCE = 1e-4
_LAYOUTS = ("auto", "KRSC", "RSKC", "RSCK")


@dataclass(frozen=True)
class OfficialLoadReport:
    """What :func:`load_official_backbone` did.

    Attributes:
        source: ``"openpcdet"`` or ``"det3d"``.
        prefix: the key prefix stripped from the checkpoint (``""`` for a bare backbone state dict).
        converted: our state-dict keys that were written.
        grouping_deviation: per V1 SW-LK layer (our module path), ``max |P - expand(group means)| / max |P|``
            of its full ``k³`` weight ``P`` (0 for a weight that was exactly group-constant).
        unused: checkpoint keys (prefix stripped) under the prefix that nothing read.
        missing: our state-dict keys that the checkpoint did not provide (left unchanged).
        other_parts: number of checkpoint keys outside the prefix (the detector's other parts; ignored).
    """

    source: str
    prefix: str
    converted: Tuple[str, ...]
    grouping_deviation: Mapping[str, float]
    unused: Tuple[str, ...]
    missing: Tuple[str, ...]
    other_parts: int

    @property
    def max_grouping_deviation(self) -> float:
        """The largest per-layer grouping deviation (0 when there is no V1 layer)."""
        return max(self.grouping_deviation.values(), default=0.0)


def unwrap_checkpoint(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The flat ``{key: tensor}`` state dict of a checkpoint: ``checkpoint["model_state"]`` (OpenPCDet),
    ``["state_dict"]`` (det3d / mmcv), ``["model"]``, or the mapping itself; a leading ``"module."``
    (DistributedDataParallel) is removed from every key."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f"checkpoint must be a state dict or a checkpoint dict (torch.load's result), got "
            f"{type(checkpoint).__name__}"
        )
    for key in CHECKPOINT_STATE_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {k: v for k, v in checkpoint.items() if isinstance(v, Tensor)}
    if not state:
        raise ValueError(
            f"checkpoint holds no tensors (top-level keys {sorted(checkpoint)[:8]}); pass the state "
            f"dict or the dict torch.load returns for an OpenPCDet / det3d checkpoint"
        )
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def detect_source(keys) -> str:
    """``"openpcdet"`` or ``"det3d"`` from the key names (prefix ``backbone_3d.`` / ``backbone.``, else
    ``conv_out.`` / ``extra_conv.``); ``ValueError`` when neither fits."""
    keys = list(keys)
    if any(k.startswith("backbone_3d.") for k in keys):
        return "openpcdet"
    if any(k.startswith("backbone.") for k in keys):
        return "det3d"
    if any(k.startswith("extra_conv.") for k in keys):
        return "det3d"
    if any(k.startswith("conv_out.") for k in keys):
        return "openpcdet"
    raise ValueError(
        f"cannot tell the checkpoint's source from its keys (first: {keys[:5]}); expected an "
        f"OpenPCDet (backbone_3d.*, conv_out.*) or det3d (backbone.*, extra_conv.*) backbone; pass source= and "
        f"prefix= (Python), or, if it is a segmentation checkpoint (keys conv0p1s1.*, final.*), --task seg"
    )


def det3d_path(path: str) -> str:
    """Our module path / key -> det3d's: ``conv{s}.0.{j}`` -> ``conv{s}.{j}`` (flat down layer),
    ``conv{s}.{1,2}`` -> ``conv{s}.{3,4}`` (blocks after conv, BN, ReLU) for ``s = 2..4``,
    ``conv_out`` -> ``extra_conv``."""
    parts = path.split(".")
    if parts[0] == "conv_out":
        parts[0] = "extra_conv"
    elif parts[0] in ("conv2", "conv3", "conv4") and len(parts) > 2:
        parts = [parts[0], parts[2], *parts[3:]] if parts[1] == "0" else [parts[0], str(int(parts[1]) + 2), *parts[2:]]
    return ".".join(parts)


_PATH_MAPS: Dict[str, Callable[[str], str]] = {"openpcdet": lambda p: p, "det3d": det3d_path}


def _is_sparse_conv(module: nn.Module) -> bool:
    """A plain sparse conv of our engine or spconv: spconv's weight ``[C_out, *k, C_in]`` and geometry."""
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, Tensor)
        and weight.dim() >= 3
        and hasattr(module, "kernel_size")
        and hasattr(module, "in_channels")
        and hasattr(module, "out_channels")
    )


class ConversionPlan:
    """A checkpoint conversion in progress: the tensors converted for the model (each validated against the
    model's own shape before anything is written), the checkpoint keys read, the model keys the checkpoint
    lacks, and the grouping deviation per SW-LK layer. Used by the detection and segmentation loaders.

    Args:
        state: the checkpoint's tensors (official names); target: the model's state dict (our names);
        shape_hint: what a shape mismatch means and what to check, appended to the error.
    """

    def __init__(self, state: Mapping[str, Tensor], target: Mapping[str, Tensor], shape_hint: str) -> None:
        self.state, self.target, self.shape_hint = state, target, shape_hint
        self.read: Set[str] = set()
        self.out: Dict[str, Tensor] = {}
        self.missing: List[str] = []
        self.deviation: Dict[str, float] = {}

    def put(self, ours: str, value: Tensor, source: str) -> None:
        """Convert ``value`` (from checkpoint key ``source``) into model key ``ours``."""
        want = self.target[ours]
        if tuple(value.shape) != tuple(want.shape):
            raise ValueError(
                f"checkpoint key {source!r} has shape {tuple(value.shape)} but our {ours!r} needs "
                f"{tuple(want.shape)}; {self.shape_hint}"
            )
        self.out[ours] = value.detach().to(dtype=want.dtype, device=want.device).clone()

    def take(self, key: str) -> Optional[Tensor]:
        """Checkpoint tensor ``key`` (marked as read), or ``None`` when the checkpoint lacks it."""
        if key not in self.state:
            return None
        self.read.add(key)
        return self.state[key]

    def copy(self, ours: str, theirs: str) -> None:
        """``ours`` := checkpoint ``theirs`` unchanged (recorded as missing when the checkpoint lacks it)."""
        value = self.take(theirs)
        if value is None:
            self.missing.append(ours)
        else:
            self.put(ours, value, theirs)


def _plan_plain_conv(plan: ConversionPlan, path: str, src: str, conv: nn.Module, layout: str, stage_hint: str) -> None:
    key = f"{src}.weight"
    if key not in plan.state and f"{src}.block.weight" in plan.state:
        raise ValueError(
            f"checkpoint has a spatial-group conv at {src!r} but our {path!r} is a plain conv; {stage_hint}"
        )
    if key in plan.state:
        plan.read.add(key)
        weight = conv_weight_to_krsc(plan.state[key], layout, conv, key)
        plan.put(f"{path}.weight", weight, key)
    else:
        plan.missing.append(f"{path}.weight")
    if getattr(conv, "bias", None) is not None:
        plan.copy(f"{path}.bias", f"{src}.bias")


def _plan_swlk(plan: ConversionPlan, path: str, src: str, layer: SWLKConv3d, layout: str, stage_hint: str) -> None:
    state = plan.state
    ours = [k for k in plan.target if k.startswith(f"{path}.")]
    if f"{src}.block.weight" not in state:
        if f"{src}.weight" in state:
            raise ValueError(f"checkpoint has a plain conv at {src!r} but our {path!r} is a SW-LK conv; {stage_hint}")
        plan.missing.extend(ours)
        return
    block, k = state[f"{src}.block.weight"], tuple(layer.kernel_size)
    is_v2 = not (tuple(block.shape[:3]) == k or tuple(block.shape[1:4]) == k)  # V2: 27 groups, not a k³ kernel
    if not is_v2 and f"{src}.conv3x3_1.weight" not in state:
        plan.missing.extend(ours)  # a V1 layer without its dilated branch cannot be converted
        plan.read.update(n for n in state if n.startswith(f"{src}.block."))
        return
    scratch = copy.deepcopy(layer)  # convert into a copy: nothing is written into the model before validation
    if is_v2:
        if layer.dilated is not None:
            raise ValueError(
                f"checkpoint has a V2 SpatialGroupConv3d at {src!r} (27 group weights, no dilated "
                f"branch) but our {path!r} has the dilated branch; build that stage with "
                f"conv_types 'swlk'"
            )
        has_enc = f"{src}.block.position_embedding" in state
        if has_enc != (layer.position_encoding is not None):
            raise ValueError(
                f"checkpoint layer {src!r} {'has' if has_enc else 'has no'} position embedding but our "
                f"{path!r} was built with position_encoding={layer.position_encoding is not None}; "
                f"build the backbone with position_encoding={has_enc}"
            )
        load_official_v2(scratch, state, prefix=f"{src}.", layout=layout)
        keys = [f"{src}.block.{n}" for n in ("weight", "position_embedding", "bias")]
    else:
        if layer.dilated is None or layer.position_encoding is not None:
            raise ValueError(
                f"checkpoint has a V1 SpatialGroupConv at {src!r} (full k³ weight + dilated 3³ "
                f"branch, no position encoding) but our {path!r} has dilated_branch="
                f"{layer.dilated is not None}, position_encoding={layer.position_encoding is not None}; "
                f"build that stage with conv_types 'swlk_dilated' and position_encoding=False"
            )
        deviation = load_official_v1(
            scratch, state, prefix=f"{src}.", block_layout=layout, branch_layout=layout, deviation_tolerance=None
        )  # the backbone loader warns once, relative
        scale = float(state[f"{src}.block.weight"].abs().max())
        plan.deviation[path] = deviation / scale if scale > 0 else 0.0
        keys = [f"{src}.{n}" for n in ("block.weight", "block.bias", "conv3x3_1.weight", "conv3x3_1.bias")]
    present = [k for k in keys if k in state]
    plan.read.update(present)
    has_bias = any(k.endswith(".bias") for k in present)
    sources = {
        "weight": "block.weight",
        "position_encoding": "block.position_embedding",
        "dilated.weight": "conv3x3_1.weight",
        "bias": "block.bias",
    }
    for name, value in scratch.state_dict().items():
        if name == "bias" and not has_bias:
            plan.missing.append(f"{path}.bias")  # the official blocks have biases; never zero one silently
            continue
        plan.put(f"{path}.{name}", value, f"{src}.{sources.get(name, name)}")


def load_official_backbone(
    backbone: DetectionBackbone3d,
    checkpoint: Mapping,
    source: str = "auto",
    prefix: Optional[str] = None,
    strict: bool = True,
    layout: str = "auto",
    deviation_tolerance: float = DEVIATION_TOLERANCE,
) -> OfficialLoadReport:
    """Load an official (OpenPCDet-port or det3d) LargeKernel3D backbone, or an OpenPCDet
    ``VoxelResBackBone8x`` / ``VoxelBackBone8x`` backbone, into ``backbone`` (see the module docstring).

    Args:
        backbone: one of our detection backbones with the checkpoint's architecture (e.g.
            ``build_largekernel3d_backbone(5, grid.sparse_shape, "nuscenes")`` for the det3d nuScenes model).
        checkpoint: a state dict or ``torch.load``'s checkpoint dict (a whole detector is fine: only keys
            under ``prefix`` are read).
        source: ``"openpcdet"``, ``"det3d"`` or ``"auto"`` (:func:`detect_source`).
        prefix: key prefix of the backbone (default: ``"backbone_3d."`` / ``"backbone."`` when the
            checkpoint has such keys, else ``""``).
        strict: raise ``ValueError`` on unused or missing keys (else report them).
        layout: weight layout, ``"auto"`` (KRSC / RSKC by shape), ``"KRSC"``, ``"RSKC"`` or ``"RSCK"``.
        deviation_tolerance: warn (``UserWarning``) when a V1 layer's relative grouping deviation exceeds it.

    Returns:
        :class:`OfficialLoadReport`. Raises before writing anything on a shape or structure mismatch.
    """
    if not isinstance(backbone, DetectionBackbone3d):
        raise TypeError(
            f"backbone must be a VoxelBackBone8x / VoxelResBackBone8x / LargeKernel3DBackbone, got "
            f"{type(backbone).__name__}"
        )
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    state = unwrap_checkpoint(checkpoint)
    if source == "auto":
        source = detect_source(state)
    if source not in SOURCES:
        raise ValueError(f"source must be 'auto' or one of {list(SOURCES)}, got {source!r}")
    if prefix is None:
        prefix = DEFAULT_PREFIX[source] if any(k.startswith(DEFAULT_PREFIX[source]) for k in state) else ""
    ours_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not ours_state:
        raise ValueError(
            f"no checkpoint key starts with prefix={prefix!r} (first keys: {sorted(state)[:5]}); pass "
            f"the backbone's prefix"
        )
    other_parts = len(state) - len(ours_state)
    to_theirs = _PATH_MAPS[source]
    plan = ConversionPlan(
        ours_state,
        backbone.state_dict(),
        "the checkpoint was trained with another architecture "
        "(check kernel_sizes / conv_types / down_kernel_size / in_channels)",
    )

    swlk = {p: m for p, m in backbone.named_modules() if isinstance(m, SWLKConv3d)}
    done: Set[str] = set()
    for path, module in backbone.named_modules():
        if not path or any(path.startswith(f"{s}.") for s in swlk):
            continue
        stage = path.split(".")[0]
        hint = (
            f"build stage {stage[-1]} with the checkpoint's conv type (LargeKernel3DBackbone conv_types)"
            if stage[-1].isdigit()
            else "check the architecture"
        )
        if path in swlk:
            _plan_swlk(plan, path, to_theirs(path), module, layout, hint)
        elif _is_sparse_conv(module):
            _plan_plain_conv(plan, path, to_theirs(path), module, layout, hint)
        else:
            continue
        done.update(k for k in plan.target if k.startswith(f"{path}."))
    for key in plan.target:  # BatchNorm and anything else: same tensor under the mapped name
        if key not in done:
            plan.copy(key, to_theirs(key))

    unused = tuple(sorted(set(ours_state) - plan.read))
    missing = tuple(sorted(plan.missing))
    if strict and (unused or missing):
        raise ValueError(
            f"{source} checkpoint does not match {type(backbone).__name__}: {len(unused)} unused keys "
            f"{list(unused[:6])}, {len(missing)} missing keys {list(missing[:6])} (prefix "
            f"{prefix!r}); fix the architecture or pass strict=False to load the rest and get a report"
        )
    result = backbone.load_state_dict(plan.out, strict=False)
    if result.unexpected_keys:  # cannot happen: every written key comes from backbone.state_dict()
        raise RuntimeError(f"internal error: wrote unknown keys {result.unexpected_keys}")
    for path, dev in sorted(plan.deviation.items()):
        if dev > deviation_tolerance:
            warnings.warn(
                f"{path}: the checkpoint's full k³ weight deviates from its group means by {dev:.3g} "
                f"(relative, max); the official evaluation used the ungrouped weight, this SW-LK layer "
                f"uses the group means, so outputs differ from the official ones",
                UserWarning,
                stacklevel=2,
            )
    return OfficialLoadReport(
        source=source,
        prefix=prefix,
        converted=tuple(sorted(plan.out)),
        grouping_deviation=dict(plan.deviation),
        unused=unused,
        missing=missing,
        other_parts=other_parts,
    )


def load_openpcdet_largekernel3d(backbone: DetectionBackbone3d, checkpoint: Mapping, **options) -> OfficialLoadReport:
    """:func:`load_official_backbone` with ``source="openpcdet"`` (``VoxelResBackBone8xLargeKernel3D``)."""
    return load_official_backbone(backbone, checkpoint, source="openpcdet", **options)


def load_det3d_largekernel3d(backbone: DetectionBackbone3d, checkpoint: Mapping, **options) -> OfficialLoadReport:
    """:func:`load_official_backbone` with ``source="det3d"`` (``SpMiddleResNetFHDLargeKernel``)."""
    return load_official_backbone(backbone, checkpoint, source="det3d", **options)


__all__ = [
    "SOURCES",
    "DEFAULT_PREFIX",
    "DEVIATION_TOLERANCE",
    "OfficialLoadReport",
    "unwrap_checkpoint",
    "detect_source",
    "det3d_path",
    "load_official_backbone",
    "load_openpcdet_largekernel3d",
    "load_det3d_largekernel3d",
]
