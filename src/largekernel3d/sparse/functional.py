"""Gather – GEMM – scatter: the one computation behind every sparse convolution.

With a kernel map (pairs per offset ``k``) and a grouped weight ``W`` of shape
``[K, G, C_in / G, C_out / G]`` the forward pass is::

    out[i_out, g] += in[i_in, g] @ W[k, g]          for every pair (i_in, i_out) of offset k

and the backward pass reuses the same primitive on the adjoint map::

    d_in[i_in, g]  += d_out[i_out, g] @ W[k, g]^T
    d_W[k, g]       = in[pairs_in(k), g]^T @ d_out[pairs_out(k), g]

Dataflow (:class:`.dispatch.Dataflow`), chosen once per call by :func:`.dispatch.plan_conv` (``dataflow=``
asks for one by name):

* ``CPU_FUSED`` (CPU float32/64, one group, torch on libgomp): :mod:`.cpu.conv_fused`. The output rows are
  split into ``tuning.conv_parts_per_thread`` ranges per thread and each offset's pairs bucketed by range
  (memoised on the map). Every thread of torch's OpenMP team takes a run of parts; per part it writes the
  product of the offset whose pairs are the identity ``(r, r)`` (the centre of a submanifold map) into the
  part's rows (added to the bias, if any), then adds every other offset's pairs with the SIMD register panels
  of :mod:`.cpu.simd` (rows read and added in place), all in one parallel region. The backward pass does the
  same over the adjoint split (input-row ranges) for ``d_in``, and the thread's own ``d_W`` accumulator takes
  the indexed outer products.
* ``CPU_TILED`` (CPU float32/64, any groups): :mod:`.cpu.conv_tiled`. The offset-major pair list is cut into
  *tiles* of consecutive pairs (``tuning.conv_tile_bytes`` of gathered rows, so they stay in cache). Per tile:
  one gather of the source rows into a reused buffer, one ``torch.mm`` per offset segment of the tile into a
  second buffer, one scatter-add into the output on torch's OpenMP team. The identity offset skips
  gather/scatter: its dense GEMM initialises the accumulator (with the bias). Peak extra memory is two or three
  tiles, never ``[P, C]``.
* ``TORCH_REF`` (any device): per offset ``index_select`` -> matmul -> ``index_add_`` (:mod:`.torch_ref.conv`).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .autograd import SparseConvFunction
from .cpu.tuning import DEFAULT_TUNING, CpuTuning
from .dispatch import Dataflow, DataflowLike, plan_conv
from .kernel_map import KernelMap
from .validation import check_conv_operands


def module_weight_to_grouped(weight: Tensor, groups: int) -> Tensor:
    """spconv layout ``[C_out, *kernel, C_in / G]`` → grouped ``[K, G, C_in / G, C_out / G]`` (a view)."""
    c_out = weight.shape[0]
    cig = weight.shape[-1]
    k = weight[0, ..., 0].numel()
    return weight.reshape(groups, c_out // groups, k, cig).permute(2, 0, 3, 1)


def gather_gemm_scatter(
    x: Tensor,
    weight: Tensor,
    kmap: KernelMap,
    num_out: int,
    adjoint: bool = False,
    bias: Optional[Tensor] = None,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> Tensor:
    """``out[j] = bias + sum_k sum_{(i, j) in pairs(k)} x[i] @ W[k]`` with block-diagonal groups.

    ``weight`` is ``[K, G, A, B]``; with ``adjoint=True`` pairs run output → input and ``W[k]^T`` is used
    (the input gradient of the forward). ``bias`` (optional ``[C_out]``) initialises the accumulator
    (no gradient flows to it here). ``dataflow`` as :func:`.dispatch.plan_conv`: where autograd must record
    through this call (inputs requiring grad, grad mode on) only ``TORCH_REF`` can, and ``AUTO`` takes it
    (:func:`sparse_conv` is the differentiable entry point of every dataflow).
    """
    records_graph = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return plan_conv(x, weight, kmap, dataflow, tuning, records_graph).forward(x, weight, num_out, adjoint, bias)


def sparse_conv(
    features: Tensor,
    weight: Tensor,
    kmap: KernelMap,
    groups: int = 1,
    bias: Optional[Tensor] = None,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> Tensor:
    """Sparse convolution of ``features [N_in, C_in]`` by a spconv-layout ``weight
    [C_out, *kernel, C_in / groups]`` over ``kmap``; returns ``[N_out, C_out]`` (differentiable in features,
    weight and bias)::

        out[j] = bias + sum_k sum_{(i, j) in pairs(k)} features[i] @ W[k]

    Shapes, dtypes, devices and the map's rows are checked first (:func:`.validation.check_conv_operands`):
    a mismatch raises ``TypeError``/``ValueError`` before any kernel touches memory. ``dataflow`` picks the
    implementation (``AUTO``: :func:`.dispatch.plan_conv`'s rule; a named one that cannot run the input raises),
    ``tuning`` the constants its kernels read; the same plan runs the backward pass."""
    check_conv_operands(features, weight, kmap, groups, bias)
    grouped = module_weight_to_grouped(weight, groups)
    plan = plan_conv(features, grouped, kmap, dataflow, tuning)
    if bias is not None and bias.dtype == features.dtype and bias.shape == (grouped.shape[1] * grouped.shape[3],):
        return SparseConvFunction.apply(features, grouped, plan, bias)
    out = SparseConvFunction.apply(features, grouped, plan)
    if bias is not None:
        out = out + bias
    return out
