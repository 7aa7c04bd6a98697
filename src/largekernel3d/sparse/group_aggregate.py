"""Group aggregation: the neighbour sums behind spatial-wise (group-shared) large-kernel convolution.

For a kernel map with pairs ``(j, i)`` per kernel offset ``k`` (input row ``j`` is the neighbour of
output row ``i`` at offset ``k``), a grouping ``g(k)`` of the offsets into ``G`` groups and an optional
per-offset encoding ``E [K, C]``::

    A[i, g, :] = sum_{k : g(k) = g}  sum_{(j, i) in pairs(k)}  ( x[j, :] + E[k, :] )

The backward pass, for an upstream gradient ``dA [N_out, G, C]``::

    dx[j, :] = sum_k sum_{(j, i) in pairs(k)} dA[i, g(k), :]
    dE[k, :] = sum_{(j, i) in pairs(k)} dA[i, g(k), :]

The cost is ``pairs x C`` additions in both directions (no multiplications); a following single GEMM
``A.reshape(N, G * C) @ W.reshape(G * C, C_out)`` applies the shared group weights.

Two implementations, chosen by :func:`choose_backend` (an explicit, testable rule):

* ``"numba"`` (CPU, float32/float64): pairs are counting-sorted by output row (CSR), then every row is
  summed by one thread (race-free, parallel, deterministic order: offsets ascending).
* ``"torch"`` (any device, any floating dtype): one ``index_add_`` over all pairs (chunked).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional, Tuple

import numba as nb
import numpy as np
import torch
from torch import Tensor

from .kernel_map import KernelMap

BACKENDS = ("numba", "torch")
# Pairs processed at once by the torch path (bounds the temporary [pairs, C] buffer).
_TORCH_PAIR_CHUNK = 1 << 21
# Below this many additions (pairs x channels) the numba kernels run on one thread.
_PARALLEL_MIN_WORK = 1 << 20


# numba kernels: compiled on first call (lazily) and cached on disk.
@nb.njit(cache=True)
def _rows_csr(key, other, starts, n):
    """Counting sort of the pairs by ``key`` row: ``ptr [n + 1]``, ``other`` rows and offsets."""
    num = key.shape[0]
    ptr = np.zeros(n + 1, np.int64)
    for p in range(num):
        ptr[key[p] + 1] += 1
    for r in range(n):
        ptr[r + 1] += ptr[r]
    fill = ptr[:-1].copy()
    src = np.empty(num, np.int64)
    koff = np.empty(num, np.int64)
    for k in range(starts.shape[0] - 1):
        for p in range(starts[k], starts[k + 1]):
            r = key[p]
            t = fill[r]
            fill[r] = t + 1
            src[t] = other[p]
            koff[t] = k
    return ptr, src, koff


@nb.njit(parallel=True, cache=True)
def _gather_rows(x, enc, use_enc, ptr, src, koff, group, out):
    """``out[i, group[k]] += x[src] (+ enc[k])`` for the CSR row ``i``; ``out`` zero on entry."""
    c_dim = x.shape[1]
    for i in nb.prange(ptr.shape[0] - 1):
        for t in range(ptr[i], ptr[i + 1]):
            j = src[t]
            k = koff[t]
            g = group[k]
            if use_enc:
                for c in range(c_dim):
                    out[i, g, c] += x[j, c] + enc[k, c]
            else:
                for c in range(c_dim):
                    out[i, g, c] += x[j, c]


@nb.njit(parallel=True, cache=True)
def _scatter_rows(d_a, ptr, dst, koff, group, d_x):
    """``d_x[j] += d_a[dst, group[k]]`` over the CSR row ``j`` (pairs sorted by input row)."""
    c_dim = d_x.shape[1]
    for j in nb.prange(ptr.shape[0] - 1):
        for t in range(ptr[j], ptr[j + 1]):
            i = dst[t]
            g = group[koff[t]]
            for c in range(c_dim):
                d_x[j, c] += d_a[i, g, c]


@nb.njit(parallel=True, cache=True)
def _encoding_grad(d_a, pair_out, starts, group, d_e):
    """``d_e[k] = sum over the pairs of offset k of d_a[i, group[k]]`` (one offset per thread)."""
    c_dim = d_e.shape[1]
    for k in nb.prange(starts.shape[0] - 1):
        g = group[k]
        for p in range(starts[k], starts[k + 1]):
            i = pair_out[p]
            for c in range(c_dim):
                d_e[k, c] += d_a[i, g, c]


def choose_backend(device: torch.device, dtype: torch.dtype) -> str:
    """``"numba"`` for float32/float64 CPU tensors, ``"torch"`` otherwise (CUDA, half precision)."""
    if device.type == "cpu" and dtype in (torch.float32, torch.float64):
        return "numba"
    return "torch"


def _starts(kmap: KernelMap) -> np.ndarray:
    return np.asarray(kmap.offset_starts, dtype=np.int64)


def _pair_offsets(kmap: KernelMap, device: torch.device) -> Tensor:
    """int64 ``[P]``: the kernel offset of every pair."""
    koff = np.repeat(np.arange(kmap.kernel_volume, dtype=np.int64), np.diff(_starts(kmap)))
    return torch.from_numpy(koff).to(device)


@contextmanager
def _numba_threads(work: int):
    """Run small problems (``work`` additions below ``_PARALLEL_MIN_WORK``) on one numba thread: on a
    busy machine waking the pool costs milliseconds, far more than the work."""
    if work >= _PARALLEL_MIN_WORK:
        yield
        return
    before = nb.get_num_threads()
    nb.set_num_threads(1)
    try:
        yield
    finally:
        nb.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------
# forward / backward of each backend
def _forward_numba(x: Tensor, enc: Optional[Tensor], kmap: KernelMap, group: Tensor, num_groups: int) -> Tensor:
    out = torch.zeros((kmap.num_out, num_groups, x.shape[1]), dtype=x.dtype)
    if kmap.num_pairs == 0:
        return out
    ptr, src, koff = _rows_csr(kmap.pair_out.numpy(), kmap.pair_in.numpy(), _starts(kmap), kmap.num_out)
    enc_np = enc.numpy() if enc is not None else np.zeros((1, x.shape[1]), dtype=x.numpy().dtype)
    with _numba_threads(kmap.num_pairs * x.shape[1]):
        _gather_rows(x.numpy(), enc_np, enc is not None, ptr, src, koff, group.numpy(), out.numpy())
    return out


def _backward_numba(d_a: Tensor, kmap: KernelMap, group: Tensor, need_x: bool, need_e: bool, c_dim: int,
                    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    d_x = torch.zeros((kmap.num_in, c_dim), dtype=d_a.dtype) if need_x else None
    d_e = torch.zeros((kmap.kernel_volume, c_dim), dtype=d_a.dtype) if need_e else None
    if kmap.num_pairs == 0:
        return d_x, d_e
    group_np = group.numpy()
    with _numba_threads(kmap.num_pairs * c_dim):
        if need_x:
            ptr, dst, koff = _rows_csr(kmap.pair_in.numpy(), kmap.pair_out.numpy(), _starts(kmap), kmap.num_in)
            _scatter_rows(d_a.numpy(), ptr, dst, koff, group_np, d_x.numpy())
        if need_e:
            _encoding_grad(d_a.numpy(), kmap.pair_out.numpy(), _starts(kmap), group_np, d_e.numpy())
    return d_x, d_e


def _chunks(num: int):
    for s in range(0, num, _TORCH_PAIR_CHUNK):
        yield s, min(num, s + _TORCH_PAIR_CHUNK)


def _forward_torch(x: Tensor, enc: Optional[Tensor], kmap: KernelMap, group: Tensor, num_groups: int) -> Tensor:
    c_dim = x.shape[1]
    out = x.new_zeros((kmap.num_out * num_groups, c_dim))
    koff = _pair_offsets(kmap, x.device)
    for s, e in _chunks(kmap.num_pairs):
        k = koff[s:e]
        vals = x.index_select(0, kmap.pair_in[s:e])
        if enc is not None:
            vals = vals + enc.index_select(0, k)
        out.index_add_(0, kmap.pair_out[s:e] * num_groups + group[k], vals)
    return out.view(kmap.num_out, num_groups, c_dim)


def _backward_torch(d_a: Tensor, kmap: KernelMap, group: Tensor, need_x: bool, need_e: bool, c_dim: int,
                    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    num_groups = d_a.shape[1]
    flat = d_a.reshape(-1, c_dim)
    koff = _pair_offsets(kmap, d_a.device)
    d_x = d_a.new_zeros((kmap.num_in, c_dim)) if need_x else None
    d_e = d_a.new_zeros((kmap.kernel_volume, c_dim)) if need_e else None
    for s, e in _chunks(kmap.num_pairs):
        k = koff[s:e]
        vals = flat.index_select(0, kmap.pair_out[s:e] * num_groups + group[k])
        if d_x is not None:
            d_x.index_add_(0, kmap.pair_in[s:e], vals)
        if d_e is not None:
            d_e.index_add_(0, k, vals)
    return d_x, d_e


_FORWARD = {"numba": _forward_numba, "torch": _forward_torch}
_BACKWARD = {"numba": _backward_numba, "torch": _backward_torch}


class GroupAggregateFunction(torch.autograd.Function):
    """Autograd wrapper of the group aggregation (see the module docstring); saves no tensors of size N."""

    @staticmethod
    def forward(ctx, features: Tensor, encoding: Optional[Tensor], kmap: KernelMap, group: Tensor,
                num_groups: int, backend: str) -> Tensor:
        ctx.kmap = kmap
        ctx.backend = backend
        ctx.c_dim = features.shape[1]
        ctx.save_for_backward(group)
        return _FORWARD[backend](features, encoding, kmap, group, num_groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_a: Tensor):
        (group,) = ctx.saved_tensors
        need_x, need_e = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        d_x, d_e = _BACKWARD[ctx.backend](grad_a.contiguous(), ctx.kmap, group, need_x, need_e, ctx.c_dim)
        return d_x, d_e, None, None, None, None


def group_aggregate(features: Tensor, encoding: Optional[Tensor], kmap: KernelMap, group_index: Tensor,
                    num_groups: int, backend: Optional[str] = None) -> Tensor:
    """``A[i, g] = sum_{k in g} sum_{(j, i) in pairs(k)} (features[j] + encoding[k])`` (differentiable).

    Args:
        features: ``[N_in, C]`` floating input rows.
        encoding: ``[K, C]`` per-offset encoding added to every gathered neighbour, or ``None``.
        kmap: kernel map with ``K`` offsets (pairs offset-major).
        group_index: int64 ``[K]``, the group ``g(k) in [0, num_groups)`` of every offset.
        num_groups: ``G``.
        backend: ``"numba"`` or ``"torch"``; ``None`` picks :func:`choose_backend`.

    Returns:
        ``[N_out, G, C]``.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [N, C], got {tuple(features.shape)}")
    if features.shape[0] != kmap.num_in:
        raise ValueError(f"features has {features.shape[0]} rows but the kernel map reads {kmap.num_in} sites")
    if group_index.shape != (kmap.kernel_volume,):
        raise ValueError(f"group_index must have one entry per kernel offset ({kmap.kernel_volume}), "
                         f"got shape {tuple(group_index.shape)}")
    if encoding is not None:
        if encoding.shape != (kmap.kernel_volume, features.shape[1]):
            raise ValueError(f"encoding must be [K={kmap.kernel_volume}, C={features.shape[1]}], "
                             f"got {tuple(encoding.shape)}")
        if encoding.dtype != features.dtype or encoding.device != features.device:
            raise TypeError(f"encoding ({encoding.dtype}, {encoding.device}) must match features "
                            f"({features.dtype}, {features.device})")
    if backend is None:
        backend = choose_backend(features.device, features.dtype)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "numba" and (features.device.type != "cpu" or features.dtype not in (torch.float32, torch.float64)):
        raise ValueError(f"backend='numba' needs float32/float64 CPU tensors, got {features.dtype} on "
                         f"{features.device}; use backend='torch'")
    group = group_index.to(device=features.device, dtype=torch.int64).contiguous()
    enc = encoding.contiguous() if encoding is not None else None
    return GroupAggregateFunction.apply(features.contiguous(), enc, kmap, group, int(num_groups), backend)


__all__ = ["BACKENDS", "GroupAggregateFunction", "choose_backend", "group_aggregate"]
