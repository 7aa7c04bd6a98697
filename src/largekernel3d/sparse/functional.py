"""Gather – GEMM – scatter: the one computation behind every sparse convolution.

With a kernel map (pairs per offset ``k``) and a grouped weight ``W`` of shape
``[K, G, C_in / G, C_out / G]`` the forward pass is::

    out[i_out, g] += in[i_in, g] @ W[k, g]          for every pair (i_in, i_out) of offset k

and the backward pass reuses the same primitive on the adjoint map::

    d_in[i_in, g]  += d_out[i_out, g] @ W[k, g]^T
    d_W[k, g]       = in[pairs_in(k), g]^T @ d_out[pairs_out(k), g]

Dataflow, chosen by :func:`~.kernel_map.choose_backend` on the feature device/dtype:

* ``"numba"`` (CPU, float32/64), ungrouped, where torch runs on libgomp (the Linux wheels):
  :mod:`.fused_tiles`. The output rows are split into ``_PARTS_PER_THREAD`` ranges per thread and each
  offset's pairs bucketed by range (memoised on the map). Every thread of torch's OpenMP team takes a
  run of parts; per part it writes the product of the offset whose pairs are the identity ``(r, r)``
  (the centre of a submanifold map) into the part's rows (added to the bias, if any), then adds every
  other offset's pairs with the SIMD register panels of :mod:`.simd_products` (rows read and added in
  place), all in one parallel region. The backward pass does the same over the adjoint split (input-row
  ranges) for ``d_in``, and the thread's own ``d_W`` accumulator takes the indexed outer products.
* ``"numba"`` otherwise (grouped weights, torch without libgomp): the offset-major pair list is cut into *tiles* of
  consecutive pairs (about 1 MiB of gathered rows, so they stay in cache). Per tile: one gather of the
  source rows into a reused buffer (the serial numba loop on one thread, ``torch.index_select`` on
  torch's threads otherwise), one ``torch.mm`` per offset segment of the tile into a second
  buffer, one numba scatter-add into the output (:func:`.openmp_team.scatter_add_segments`: each
  offset segment, whose destination rows are distinct, split over torch's own OpenMP threads; torch's
  ``index_add_``/``index_put_`` were 2-6x slower). The identity offset skips gather/scatter: its dense
  GEMM initialises the accumulator (with the bias). The
  backward pass gathers ``d_out`` once per tile and uses it for both ``d_in`` and ``d_W``. Peak extra
  memory is two or three tiles, never ``[P, C]``.
* ``"torch"`` (any device): per offset ``index_select`` → matmul → ``index_add_``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .cpu import conv_fused, conv_tiled
from .cpu.maps import identity_offset
from .autograd import SparseConvFunction
from .kernel_map import NUMBA, KernelMap, choose_backend
from .torch_ref import conv as torch_conv
from .validation import check_conv_operands


def module_weight_to_grouped(weight: Tensor, groups: int) -> Tensor:
    """spconv layout ``[C_out, *kernel, C_in / G]`` → grouped ``[K, G, C_in / G, C_out / G]`` (a view)."""
    c_out = weight.shape[0]
    cig = weight.shape[-1]
    k = weight[0, ..., 0].numel()
    return weight.reshape(groups, c_out // groups, k, cig).permute(2, 0, 3, 1)


def _use_numba(x: Tensor, weight: Tensor, kmap: KernelMap) -> bool:
    """The dataflow rule: numba tiles when :func:`choose_backend` says so for the feature tensor, the
    pair lists are CPU tensors, and no autograd graph must be recorded through this call (the tiles
    write into buffers; :class:`SparseConvFunction` calls this with grad mode off)."""
    if choose_backend(x.device, kmap.geometry.ndim, x.dtype) != NUMBA or weight.dtype != x.dtype:
        return False
    if kmap.device.type != "cpu":
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))


def gather_gemm_scatter(x: Tensor, weight: Tensor, kmap: KernelMap, num_out: int, adjoint: bool = False,
                        backend: Optional[str] = None, bias: Optional[Tensor] = None) -> Tensor:
    """``out[j] = bias + sum_k sum_{(i, j) in pairs(k)} x[i] @ W[k]`` with block-diagonal groups.

    ``weight`` is ``[K, G, A, B]``; with ``adjoint=True`` pairs run output → input and ``W[k]^T`` is used
    (the input gradient of the forward). ``bias`` (optional ``[C_out]``) initialises the accumulator
    (no gradient flows to it here). ``backend=None`` picks the dataflow by :func:`_use_numba`;
    ``"torch"`` forces the per-offset torch path (the reference; differentiable by autograd in ``x``
    and ``weight``).
    """
    if backend not in (None, "torch"):
        raise ValueError(f"backend must be None or 'torch', got {backend!r}")
    if backend is None and _use_numba(x, weight, kmap):
        w = weight.transpose(2, 3) if adjoint else weight
        if conv_fused.available(x, weight, max(kmap.num_in, kmap.num_out)):
            return conv_fused.conv_forward(x, w[:, 0], kmap, adjoint, num_out, bias)
        g, a, b = weight.shape[1:]
        src, dst = (kmap.pair_out, kmap.pair_in) if adjoint else (kmap.pair_in, kmap.pair_out)
        return conv_tiled.conv_forward(x, w, src, dst, kmap.offset_starts, num_out, g * (a if adjoint else b), bias,
                                       identity_offset(kmap))
    return torch_conv.gather_gemm_scatter(x, weight, kmap, num_out, adjoint, bias)


def sparse_conv(features: Tensor, weight: Tensor, kmap: KernelMap, groups: int = 1,
                bias: Optional[Tensor] = None) -> Tensor:
    """Sparse convolution of ``features [N_in, C_in]`` by a spconv-layout ``weight
    [C_out, *kernel, C_in / groups]`` over ``kmap``; returns ``[N_out, C_out]``.

    Shapes, dtypes, devices and the map's rows are checked first (:func:`.validation.check_conv_operands`):
    a mismatch raises ``TypeError``/``ValueError`` before any kernel touches memory."""
    check_conv_operands(features, weight, kmap, groups, bias)
    grouped = module_weight_to_grouped(weight, groups)
    if bias is not None and bias.dtype == features.dtype and bias.shape == (grouped.shape[1] * grouped.shape[3],):
        return SparseConvFunction.apply(features, grouped, kmap, bias)
    out = SparseConvFunction.apply(features, grouped, kmap)
    if bias is not None:
        out = out + bias
    return out
