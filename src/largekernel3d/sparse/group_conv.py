"""Group aggregation: the neighbour sums behind spatial-wise (group-shared) large-kernel convolution.

For a kernel map with pairs ``(j, i)`` per kernel offset ``k`` (input row ``j`` is the neighbour of
output row ``i`` at offset ``k``), a grouping ``g(k)`` of the offsets into ``G`` groups and an optional
per-offset encoding ``E [K, C]``::

    A[i, g, :] = sum_{k : g(k) = g}  sum_{(j, i) in pairs(k)}  ( x[j, :] + E[k, :] )       (group_aggregate)
    out[i, :]  = sum_g  A[i, g, :] @ W[g]                                                  (group_conv)

Backward, for upstream gradients ``dA`` (``dA[i, g] = dOut[i] W[g]^T`` for ``group_conv``)::

    dx[j] = sum_k sum_{(j, i) in pairs(k)} dA[i, g(k)]        dE[k] = sum_{(j, i) in pairs(k)} dA[i, g(k)]
    dW[g] = sum_i A[i, g]^T dOut[i]

The aggregation costs ``pairs x C`` additions each way; the weights cost ``G`` GEMM-equivalents, never ``K``.

Implementation: every pair is assigned a *slot* (a row of ``A``). ``group_aggregate`` uses dense slots
``i * G + g`` (``A`` is ``[N, G, C]``). On the CPU, ``group_conv`` uses compact slots: only the
``(i, g)`` with at least one active neighbour get a row (on LiDAR scans about 7 of the 27 groups of a 7^3
window are non-empty), stored group-major so that group ``g`` is one contiguous block ``A_g``; then
``A_g @ W[g]`` is one GEMM per group (in chunks), added into the output rows. Where torch runs on
libgomp, those products run fused per thread and row block on torch's team instead (bag sums, products
and row adds of a block in one thread's cache, in SIMD registers; :mod:`.cpu.group_fused`).

The sums themselves are *embedding bags* (``torch.nn.functional.embedding_bag(mode="sum")``, FBGEMM's
vectorised kernels on the CPU, run on torch's own threads): with the table ``[x; E]`` (rows ``j`` and
``N_in + k``), slot ``s`` is the bag of the rows ``j`` and ``N_in + k`` of its pairs, so every slot is
summed once, output-stationary, and written once. ``group_conv``'s backward pass on a symmetric map with
a mirror-symmetric grouping (every SW-LK layer) is the same chunked product with mirrored, transposed
weights (see :class:`GroupConvFunction`), and the weight gradient comes from the same bags of ``dOut`` in that
pass instead of from an ``A`` kept by the forward; otherwise it uses bags too: ``dx[j]`` is the bag of the slots
of input row ``j``'s pairs, ``dE[k]`` the bag of the slots of offset ``k``'s pairs. The bag layouts (counting
sorts of the pairs by slot and by input row, in numba) are built once per kernel map and grouping and memoised
on the map; the compact one group by group, together with its bag entries
(:func:`.cpu.group_kernels._compact_layout`: a per-row count array that stays in cache, no ``[G, N]`` matrices;
the rows with pairs found from a bitset, and the group's pairs read twice while in cache; indexed through
:data:`.cpu.array_index.uidx`), and from ``CpuTuning.group_team_layout_min_pairs`` pairs split by group ranges
over torch's own OpenMP team. On a symmetric map the compact layout and the backward's per-offset sums read the
offsets before the centre as the mirrors of those after it (:func:`.cpu.group_kernels._offset_pairs`), so a
lazily mirrored map (``KernelMap.half_stored``) is never filled. Nothing here starts threads of its own: a
second thread pool next to torch's OpenMP workers (which spin for
milliseconds after every parallel region) slows both down on a small machine.

Dataflows (:class:`.dispatch.Dataflow`, chosen once per call by :func:`.dispatch.plan_group_conv` /
:func:`.dispatch.plan_group_aggregate`; ``dataflow=`` asks for one): ``group_conv`` runs ``CPU_FUSED`` (the products
fused per row block on torch's team), ``CPU_CHUNKED`` (chunk by chunk: bags, ``torch.mm``, scatter-add) or
``TORCH_REF`` (any device/dtype: ``index_add_`` over dense slots, then one GEMM ``A.reshape(N, G C) @
W.reshape(G C, C_out)``); ``group_aggregate`` runs ``CPU`` (bags over dense slots) or ``TORCH_REF``. ``tuning``
(:class:`.cpu.tuning.CpuTuning`) holds the chunk, block and split sizes the kernels read.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .autograd import GroupAggregateFunction, GroupConvFunction
from .cpu.group_products import group_products
from .cpu.tuning import DEFAULT_TUNING, CpuTuning
from .dispatch import Dataflow, DataflowLike, plan_group_aggregate, plan_group_conv
from .kernel_map import KernelMap
from .validation import check_group_index, check_kernel_map, check_same_device, check_tensor


def _check(
    features: Tensor,
    encoding: Optional[Tensor],
    kmap: KernelMap,
    group_index: Tensor,
    num_groups: int,
    groups_from: str,
) -> None:
    """Every argument checked before a kernel reads memory (see :mod:`.validation`)."""
    check_tensor(features, "features", floating=True, dim=2)
    check_kernel_map(kmap)
    if features.shape[0] != kmap.num_in:
        raise ValueError(f"features has {features.shape[0]} rows but the kernel map reads {kmap.num_in} sites")
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups <= 0:
        raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
    check_group_index(group_index, kmap.kernel_volume, int(num_groups), groups_from)
    check_same_device(features, "features", (kmap.stored_in, "the kernel map"))
    if encoding is not None:
        check_tensor(encoding, "encoding", floating=True)
        if encoding.shape != (kmap.kernel_volume, features.shape[1]):
            raise ValueError(
                f"encoding must be [K={kmap.kernel_volume}, C={features.shape[1]}], got {tuple(encoding.shape)}"
            )
        if encoding.dtype != features.dtype or encoding.device != features.device:
            raise TypeError(
                f"encoding ({encoding.dtype}, {encoding.device}) must match features "
                f"({features.dtype}, {features.device})"
            )


def group_aggregate(
    features: Tensor,
    encoding: Optional[Tensor],
    kmap: KernelMap,
    group_index: Tensor,
    num_groups: int,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> Tensor:
    """``A[i, g] = sum_{k in g} sum_{(j, i) in pairs(k)} (features[j] + encoding[k])`` (differentiable).

    Args:
        features: ``[N_in, C]`` floating input rows.
        encoding: ``[K, C]`` per-offset encoding added to every gathered neighbour, or ``None``.
        kmap: kernel map with ``K`` offsets (pairs offset-major).
        group_index: int64 ``[K]``, the group ``g(k) in [0, num_groups)`` of every offset.
        num_groups: ``G``.
        dataflow: ``CPU`` or ``TORCH_REF``; ``AUTO`` applies :func:`.dispatch.plan_group_aggregate`.
        tuning: the constants the kernels read (the torch path's pair chunk).

    Returns:
        ``[N_out, G, C]``.
    """
    _check(features, encoding, kmap, group_index, num_groups, "num_groups")
    plan = plan_group_aggregate(features, kmap, int(num_groups), dataflow, tuning)
    group = group_index.to(device=features.device, dtype=torch.int64).contiguous()
    enc = encoding.contiguous() if encoding is not None else None
    return GroupAggregateFunction.apply(features.contiguous(), enc, group, plan)


def group_conv(
    features: Tensor,
    encoding: Optional[Tensor],
    weight: Tensor,
    kmap: KernelMap,
    group_index: Tensor,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> Tensor:
    """``out[i] = sum_g A[i, g] @ weight[g]`` with ``A = group_aggregate(...)`` (differentiable in
    features, encoding and weight).

    Args:
        weight: ``[G, C_in, C_out]``, one slice per group; other arguments as :func:`group_aggregate`.
        dataflow: ``CPU_FUSED``, ``CPU_CHUNKED`` or ``TORCH_REF``; ``AUTO`` applies
            :func:`.dispatch.plan_group_conv`.
        tuning: the chunk, block and split sizes the kernels read.

    Returns:
        ``[N_out, C_out]``. The CPU dataflows never build the dense ``A`` (empty groups are skipped).
    """
    check_tensor(features, "features", floating=True, dim=2)
    check_tensor(weight, "weight", floating=True)
    num_groups = weight.shape[0] if weight.dim() == 3 else 0
    if weight.dim() != 3 or weight.shape[1] != features.shape[1] or num_groups == 0:
        raise ValueError(f"weight must be [G, C_in={features.shape[1]}, C_out], got {tuple(weight.shape)}")
    if weight.dtype != features.dtype or weight.device != features.device:
        raise TypeError(
            f"weight ({weight.dtype}, {weight.device}) must match features ({features.dtype}, {features.device})"
        )
    _check(features, encoding, kmap, group_index, num_groups, "the weight's first axis")
    plan = plan_group_conv(features, kmap, num_groups, dataflow, tuning)
    group = group_index.to(device=features.device, dtype=torch.int64).contiguous()
    enc = encoding.contiguous() if encoding is not None else None
    if plan.dataflow is Dataflow.TORCH_REF:
        a = GroupAggregateFunction.apply(features.contiguous(), enc, group, plan)
        return a.reshape(a.shape[0], -1).mm(weight.reshape(-1, weight.shape[2]))
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (features, enc, weight))
    if not needs_grad:
        return group_products(features.contiguous(), enc, weight.contiguous(), kmap, group, plan.fused, plan.tuning)
    return GroupConvFunction.apply(features.contiguous(), enc, weight.contiguous(), group, plan)


__all__ = ["GroupAggregateFunction", "GroupConvFunction", "group_aggregate", "group_conv"]
