"""Where each operation picks its dataflow: one rule per operation, decided once per call, returned as a plan.

Three operations have more than one implementation:

============================  ===============================================  =====================
operation                     dataflows, in the order ``AUTO`` tries them       plan
============================  ===============================================  =====================
kernel maps                   ``CPU`` (``cpu/maps.py``), ``TORCH_REF``          :class:`MapPlan`
convolution                   ``CPU_FUSED``, ``CPU_TILED``, ``TORCH_REF``        :class:`ConvPlan`
SW-LK group convolution       ``CPU_FUSED``, ``CPU_CHUNKED``, ``TORCH_REF``      :class:`GroupPlan`
dense group aggregation       ``CPU``, ``TORCH_REF``                            :class:`GroupPlan`
============================  ===============================================  =====================

``AUTO`` takes the first dataflow that can run the input; a dataflow asked for by name runs or raises a
``ValueError`` that says what it needs and what the input has (``"dataflow=CPU_FUSED needs ...; got ..."``). What
each dataflow needs (:func:`conv_blocker`, :func:`group_conv_blocker`, :func:`map_blocker`):

* ``CPU`` (maps): CPU indices with 1 to 3 spatial axes (the numba line sweeps and strided candidates).
* ``CPU_TILED`` (convolution): float32/float64 CPU features, a weight of the same dtype, a map on the CPU, and no
  autograd graph to record through the call (the tiles write into buffers; :class:`.autograd.SparseConvFunction`
  runs them with grad mode off, in both passes).
* ``CPU_FUSED`` (convolution): as ``CPU_TILED``, and one group, torch running on GNU libgomp (whose team runs
  the parts: :func:`.cpu.team.team_available`) and fewer than 2^31 rows (int32 pair lists).
* ``CPU_CHUNKED`` (SW-LK products) / ``CPU`` (dense aggregation): float32/float64 CPU features.
* ``CPU_FUSED`` (SW-LK products): as ``CPU_CHUNKED``, and torch on GNU libgomp and int32 slot indices
  (:func:`.cpu.group_layout.slot_index_dtype`).
* ``TORCH_REF``: anything (any device and dtype; the tests' oracle).

A plan is a frozen dataclass: the dataflow chosen, the :class:`~.cpu.tuning.CpuTuning` its kernels read, and
(convolution and SW-LK) the kernel map whose :class:`~.kernel_map.MapCache` holds the layouts the dataflow derives
from it (row splits, slot layouts), keyed by the tuning values they depend on. Plans are cheap: the entry points
build one per call exactly where the decision used to be made, and the layouts are memoised on the map.

A new backend (a ``cuda/`` folder next to ``cpu/`` and ``torch_ref/``) adds one :class:`Dataflow` member per
operation it implements, its condition to the ``*_blocker`` functions and to the ``AUTO`` order, and its three
entry points to the plans' ``run`` methods.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .cpu import team
from .cpu.tuning import DEFAULT_TUNING, CpuTuning

if TYPE_CHECKING:  # kernel_map imports this module
    from .kernel_map import KernelMap

_CPU_FLOATS = (torch.float32, torch.float64)


class Dataflow(enum.Enum):
    """How an operation runs. ``AUTO`` applies the operation's rule; the others name one implementation (which
    operations have it: see the module docstring). Strings with a member's value are accepted too."""

    AUTO = "auto"
    #: the one CPU dataflow of an operation that has one: the numba map builders, the dense group aggregation
    CPU = "cpu"
    #: per-thread fused products on torch's OpenMP team (convolution: output-row parts; SW-LK: row blocks)
    CPU_FUSED = "cpu_fused"
    #: convolution in tiles of passes (gather, GEMM, scatter-add), any groups
    CPU_TILED = "cpu_tiled"
    #: SW-LK products chunk by chunk (embedding bags, ``torch.mm``, team scatter-add)
    CPU_CHUNKED = "cpu_chunked"
    #: the pure-PyTorch path of ``torch_ref/`` (any device and dtype)
    TORCH_REF = "torch_ref"


DataflowLike = Union[Dataflow, str]

MAP_DATAFLOWS: Tuple[Dataflow, ...] = (Dataflow.CPU, Dataflow.TORCH_REF)
CONV_DATAFLOWS: Tuple[Dataflow, ...] = (Dataflow.CPU_FUSED, Dataflow.CPU_TILED, Dataflow.TORCH_REF)
GROUP_CONV_DATAFLOWS: Tuple[Dataflow, ...] = (Dataflow.CPU_FUSED, Dataflow.CPU_CHUNKED, Dataflow.TORCH_REF)
GROUP_AGGREGATE_DATAFLOWS: Tuple[Dataflow, ...] = (Dataflow.CPU, Dataflow.TORCH_REF)


def as_dataflow(value: DataflowLike, operation: str, allowed: Sequence[Dataflow]) -> Dataflow:
    """``value`` as a :class:`Dataflow` that ``operation`` has (``AUTO`` or one of ``allowed``), else
    ``ValueError`` naming the choices."""
    choices = ", ".join(m.name for m in (Dataflow.AUTO, *allowed))
    try:
        member = value if isinstance(value, Dataflow) else Dataflow(str(value).lower())
    except ValueError:
        raise ValueError(f"dataflow={value!r} is not a Dataflow; {operation} takes one of {choices}") from None
    if member is not Dataflow.AUTO and member not in allowed:
        raise ValueError(f"dataflow={member.name} is not a dataflow of {operation}; choose one of {choices}")
    return member


def check_tuning(tuning: CpuTuning) -> CpuTuning:
    if not isinstance(tuning, CpuTuning):
        raise TypeError(
            f"tuning must be a CpuTuning (e.g. dataclasses.replace(DEFAULT_TUNING, ...)), got {type(tuning).__name__}"
        )
    return tuning


def _choose(operation: str, requested: Dataflow, order: Sequence[Dataflow], blocker) -> Dataflow:
    """``requested`` when it can run (``blocker(d)`` is ``None``), the first of ``order`` that can for ``AUTO``."""
    if requested is Dataflow.AUTO:
        for candidate in order:
            if blocker(candidate) is None:
                return candidate
        raise AssertionError(f"no dataflow of {operation} can run the input")  # TORCH_REF always can
    reason = blocker(requested)
    if reason is not None:
        raise ValueError(
            f"dataflow={requested.name} cannot run this {operation}: it needs {reason}; use dataflow=AUTO or TORCH_REF"
        )
    return requested


def _describe(x: Tensor) -> str:
    return f"{x.dtype} on {x.device}"


# ---------------------------------------------------------------------------------------------------- kernel maps


@dataclass(frozen=True)
class MapPlan:
    """The dataflow that builds a kernel map and the tuning its builder reads."""

    dataflow: Dataflow
    tuning: CpuTuning = DEFAULT_TUNING


def map_blocker(dataflow: Dataflow, indices: Tensor, ndim: int) -> Optional[str]:
    """Why ``dataflow`` cannot build a map of ``indices`` with ``ndim`` spatial axes (``None``: it can)."""
    if dataflow is Dataflow.CPU and (indices.device.type != "cpu" or not 1 <= ndim <= 3):
        return f"CPU indices with 1 to 3 spatial axes; got indices on {indices.device} with {ndim} axes"
    return None


def plan_kernel_map(
    indices: Tensor, ndim: int, dataflow: DataflowLike = Dataflow.AUTO, tuning: CpuTuning = DEFAULT_TUNING
) -> MapPlan:
    """The map builders' rule: ``CPU`` for CPU indices with 1 to 3 spatial axes, ``TORCH_REF`` otherwise (CUDA,
    4+ axes)."""
    requested = as_dataflow(dataflow, "kernel map", MAP_DATAFLOWS)
    chosen = _choose("kernel map", requested, MAP_DATAFLOWS, lambda d: map_blocker(d, indices, ndim))
    return MapPlan(chosen, check_tuning(tuning))


# ---------------------------------------------------------------------------------------------------- convolution


@dataclass(frozen=True)
class ConvPlan:
    """A convolution's dataflow over ``kmap``, with the tuning its kernels read. The layouts it derives from the
    map (the fused dataflow's row splits) live in ``kmap.cache``, keyed by the tuning values they depend on."""

    dataflow: Dataflow
    kmap: KernelMap = field(repr=False)
    tuning: CpuTuning = DEFAULT_TUNING

    def forward(
        self, x: Tensor, weight: Tensor, num_out: int, adjoint: bool = False, bias: Optional[Tensor] = None
    ) -> Tensor:
        """``out[j] = bias + sum_k sum_{(i, j) in pairs(k)} x[i] @ W[k]`` (``weight [K, G, A, B]``; ``adjoint``:
        pairs run output -> input with ``W[k]^T``)."""
        from .cpu import conv_fused, conv_tiled
        from .cpu.maps import identity_offset
        from .torch_ref import conv as torch_conv

        kmap = self.kmap
        if self.dataflow is Dataflow.TORCH_REF:
            return torch_conv.gather_gemm_scatter(x, weight, kmap, num_out, adjoint, bias)
        w = weight.transpose(2, 3) if adjoint else weight
        if self.dataflow is Dataflow.CPU_FUSED:
            return conv_fused.conv_forward(x, w[:, 0], kmap, adjoint, num_out, bias, self.tuning)
        g, a, b = weight.shape[1:]
        src, dst = (kmap.pair_out, kmap.pair_in) if adjoint else (kmap.pair_in, kmap.pair_out)
        return conv_tiled.conv_forward(
            x,
            w,
            src,
            dst,
            kmap.offset_starts,
            num_out,
            g * (a if adjoint else b),
            self.tuning,
            bias,
            identity_offset(kmap),
        )

    def backward(
        self,
        features: Tensor,
        grad_out: Tensor,
        weight: Tensor,
        need_x: bool,
        need_w: bool,
    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """``(d_in, d_W)`` of :meth:`forward` (``None`` where not needed)."""
        from .cpu import conv_fused, conv_tiled
        from .torch_ref import conv as torch_conv

        if self.dataflow is Dataflow.CPU_FUSED:
            return conv_fused.conv_backward(features, grad_out, weight, self.kmap, need_x, need_w, self.tuning)
        if self.dataflow is Dataflow.CPU_TILED:
            return conv_tiled.conv_backward(features, grad_out, weight, self.kmap, need_x, need_w, self.tuning)
        kmap = self.kmap
        grad_x = torch_conv.gather_gemm_scatter(grad_out, weight, kmap, kmap.num_in, adjoint=True) if need_x else None
        grad_w = torch_conv.weight_gradient(features, grad_out, kmap, weight.shape) if need_w else None
        return grad_x, grad_w


def _team_blocker(work: str) -> Optional[str]:
    """Why a fused dataflow cannot run here: ``None`` where torch runs on GNU libgomp (whose OpenMP team runs
    ``work``)."""
    if team.team_available():
        return None
    return f"torch running on GNU libgomp (its OpenMP team runs {work}); this torch does not"


def conv_blocker(
    dataflow: Dataflow,
    x: Tensor,
    weight: Tensor,
    kmap: KernelMap,
    records_graph: bool,
) -> Optional[str]:
    """Why ``dataflow`` cannot run ``x @ weight`` (grouped ``[K, G, A, B]``) over ``kmap`` (``None``: it can);
    ``records_graph``: autograd must record through this call."""
    if dataflow is Dataflow.TORCH_REF:
        return None
    if x.device.type != "cpu" or x.dtype not in _CPU_FLOATS or weight.dtype != x.dtype or kmap.device.type != "cpu":
        return (
            f"float32/float64 CPU features, a weight of their dtype and a CPU kernel map; got features "
            f"{_describe(x)}, weight {_describe(weight)}, map on {kmap.device}"
        )
    if records_graph:
        return (
            "no autograd graph through this call (call sparse_conv, whose autograd function runs the CPU "
            "dataflows in both passes); got inputs that require grad with grad mode on"
        )
    if dataflow is Dataflow.CPU_FUSED:
        if weight.shape[1] != 1:
            return f"groups=1; got groups={weight.shape[1]} (CPU_TILED runs grouped weights)"
        if max(kmap.num_in, kmap.num_out) >= 2**31:
            return f"fewer than 2^31 rows; got {max(kmap.num_in, kmap.num_out)}"
        return _team_blocker("the parts")
    return None


def plan_conv(
    x: Tensor,
    weight: Tensor,
    kmap: KernelMap,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
    records_graph: bool = False,
) -> ConvPlan:
    """The convolution's rule: ``CPU_FUSED`` where it can run (:func:`conv_blocker`), else ``CPU_TILED``, else
    ``TORCH_REF``. ``weight`` is the grouped ``[K, G, A, B]``."""
    requested = as_dataflow(dataflow, "convolution", CONV_DATAFLOWS)
    chosen = _choose(
        "convolution", requested, CONV_DATAFLOWS, lambda d: conv_blocker(d, x, weight, kmap, records_graph)
    )
    return ConvPlan(chosen, kmap, check_tuning(tuning))


# ------------------------------------------------------------------------------------- SW-LK group convolution


@dataclass(frozen=True)
class GroupPlan:
    """The dataflow of a group convolution (or dense aggregation) over ``kmap`` with ``num_groups`` groups, and
    the tuning its kernels read. Its slot layouts (:class:`.cpu.group_layout.GroupLayout`) live in ``kmap.cache``.
    """

    dataflow: Dataflow
    kmap: KernelMap = field(repr=False)
    num_groups: int
    tuning: CpuTuning = DEFAULT_TUNING

    @property
    def fused(self) -> bool:
        """True when the SW-LK products run fused per row block (``CPU_FUSED``)."""
        return self.dataflow is Dataflow.CPU_FUSED

    def layout(self, group: np.ndarray, compact: bool):
        """The map's slot layout for this grouping (memoised on the map)."""
        from .cpu.group_layout import GroupLayout

        return GroupLayout.for_map(self.kmap, group, self.num_groups, compact, self.tuning)


def _slot_index_dtype(kmap: KernelMap, num_groups: int):
    from .cpu.group_layout import slot_index_dtype

    return slot_index_dtype(kmap.num_pairs, kmap.num_out, num_groups, kmap.num_in, kmap.kernel_volume)


def group_conv_blocker(dataflow: Dataflow, features: Tensor, kmap: KernelMap, num_groups: int) -> Optional[str]:
    """Why ``dataflow`` cannot run a group convolution / aggregation of ``features`` over ``kmap`` (``None``: it
    can)."""
    if dataflow is Dataflow.TORCH_REF:
        return None
    if features.device.type != "cpu" or features.dtype not in _CPU_FLOATS:
        return f"float32/float64 CPU tensors; got features {_describe(features)}"
    if dataflow is Dataflow.CPU_FUSED:
        if _slot_index_dtype(kmap, num_groups) != np.int32:
            return "int32 slot indices (fewer than 2^31 pairs, slots and table rows); this map needs int64"
        return _team_blocker("the row blocks")
    return None


def plan_group_conv(
    features: Tensor,
    kmap: KernelMap,
    num_groups: int,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> GroupPlan:
    """SW-LK's rule: ``CPU_FUSED`` where it can run (:func:`group_conv_blocker`), else ``CPU_CHUNKED``, else
    ``TORCH_REF``."""
    requested = as_dataflow(dataflow, "group convolution", GROUP_CONV_DATAFLOWS)
    chosen = _choose(
        "group convolution",
        requested,
        GROUP_CONV_DATAFLOWS,
        lambda d: group_conv_blocker(d, features, kmap, num_groups),
    )
    return GroupPlan(chosen, kmap, int(num_groups), check_tuning(tuning))


def plan_group_aggregate(
    features: Tensor,
    kmap: KernelMap,
    num_groups: int,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> GroupPlan:
    """The dense aggregation's rule: ``CPU`` (embedding bags over dense slots) for float32/float64 CPU features,
    ``TORCH_REF`` otherwise."""
    requested = as_dataflow(dataflow, "group aggregation", GROUP_AGGREGATE_DATAFLOWS)
    chosen = _choose(
        "group aggregation",
        requested,
        GROUP_AGGREGATE_DATAFLOWS,
        lambda d: group_conv_blocker(d, features, kmap, num_groups),
    )
    return GroupPlan(chosen, kmap, int(num_groups), check_tuning(tuning))


__all__ = [
    "CONV_DATAFLOWS",
    "ConvPlan",
    "DEFAULT_TUNING",
    "CpuTuning",
    "Dataflow",
    "GROUP_AGGREGATE_DATAFLOWS",
    "GROUP_CONV_DATAFLOWS",
    "GroupPlan",
    "MAP_DATAFLOWS",
    "MapPlan",
    "as_dataflow",
    "conv_blocker",
    "group_conv_blocker",
    "map_blocker",
    "plan_conv",
    "plan_group_aggregate",
    "plan_group_conv",
    "plan_kernel_map",
]
