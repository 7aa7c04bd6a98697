"""The pure-PyTorch group aggregation (any device and dtype; the tests' oracle):
``A[i, g] = sum_{k in g} sum_{(j, i) in pairs(k)} x[j] + E[k]`` by ``index_add_`` over dense slots ``i * G + g``,
and its adjoint for the backward pass."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..kernel_map import KernelMap


def _chunks(num: int, chunk: int):
    """Pair ranges of ``chunk`` pairs (``CpuTuning.torch_pair_chunk``: bounds the temporary ``[pairs, C]``)."""
    for s in range(0, num, chunk):
        yield s, min(num, s + chunk)


def _starts(kmap: KernelMap) -> np.ndarray:
    return np.asarray(kmap.offset_starts, dtype=np.int64)


def pair_offsets(kmap: KernelMap) -> np.ndarray:
    """int64 ``[P]``: the kernel offset of every pair."""
    return np.repeat(np.arange(kmap.kernel_volume, dtype=np.int64), np.diff(_starts(kmap)))


def aggregate_forward(
    x: Tensor, enc: Optional[Tensor], kmap: KernelMap, group: Tensor, num_groups: int, pair_chunk: int
) -> Tensor:
    """``A [N_out, G, C]``, ``pair_chunk`` pairs at a time."""
    c_dim = x.shape[1]
    out = x.new_zeros((kmap.num_out * num_groups, c_dim))
    koff = torch.from_numpy(pair_offsets(kmap)).to(x.device)
    for s, e in _chunks(kmap.num_pairs, pair_chunk):
        k = koff[s:e]
        vals = x.index_select(0, kmap.pair_in[s:e])
        if enc is not None:
            vals = vals + enc.index_select(0, k)
        out.index_add_(0, kmap.pair_out[s:e] * num_groups + group[k], vals)
    return out.view(kmap.num_out, num_groups, c_dim)


def aggregate_backward(
    d_a: Tensor, kmap: KernelMap, group: Tensor, need_x: bool, need_e: bool, c_dim: int, pair_chunk: int
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(dx, dE)`` of :func:`aggregate_forward` (``None`` where not needed), ``pair_chunk`` pairs at a time."""
    num_groups = d_a.shape[1]
    flat = d_a.reshape(-1, c_dim)
    koff = torch.from_numpy(pair_offsets(kmap)).to(d_a.device)
    d_x = d_a.new_zeros((kmap.num_in, c_dim)) if need_x else None
    d_e = d_a.new_zeros((kmap.kernel_volume, c_dim)) if need_e else None
    for s, e in _chunks(kmap.num_pairs, pair_chunk):
        k = koff[s:e]
        vals = flat.index_select(0, kmap.pair_out[s:e] * num_groups + group[k])
        if d_x is not None:
            d_x.index_add_(0, kmap.pair_in[s:e], vals)
        if d_e is not None:
            d_e.index_add_(0, k, vals)
    return d_x, d_e
