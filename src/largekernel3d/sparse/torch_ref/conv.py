"""The pure-PyTorch gather-GEMM-scatter (any device and dtype; today's CUDA path and the tests' oracle).

Per kernel offset ``k``: ``out.index_add_(0, pairs_out(k), in[pairs_in(k)] @ W[k])`` with block-diagonal groups,
and the weight gradient ``d_W[k, g] = in[pairs_in(k), g]^T @ d_out[pairs_out(k), g]``. Differentiable by autograd.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..kernel_map import KernelMap


def apply_offset(x: Tensor, w_k: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``x [P, G * A] @ blockdiag(w_k [G, A, B]) -> [P, G * B]`` (written into ``out`` when given)."""
    g, a, b = w_k.shape
    if g == 1:
        return x.mm(w_k[0]) if out is None else torch.mm(x, w_k[0], out=out)
    if a == 1 and b == 1:
        res = x * w_k.reshape(1, g)
    else:
        p = x.shape[0]
        res = torch.bmm(x.reshape(p, g, a).transpose(0, 1), w_k).transpose(0, 1).reshape(p, g * b)
    return res if out is None else out.copy_(res)


def weight_block(xs: Tensor, gs: Tensor, g: int) -> Tensor:
    """``blockdiag`` weight gradient of one offset: ``[G, A, B]`` from ``xs [P, G * A]``, ``gs [P, G * B]``."""
    p = xs.shape[0]
    if g == 1:
        return xs.t().mm(gs).unsqueeze(0)
    return torch.bmm(xs.reshape(p, g, -1).permute(1, 2, 0), gs.reshape(p, g, -1).transpose(0, 1))


def weight_gradient(x: Tensor, grad_out: Tensor, kmap: KernelMap, weight_shape: torch.Size) -> Tensor:
    """``d_W[k, g] = x[pairs_in(k), g]^T @ grad_out[pairs_out(k), g]`` in the grouped layout."""
    kv, g, a, b = weight_shape
    grad = grad_out.new_zeros((kv, g, a, b))
    for k in range(kv):
        p_in, p_out = kmap.pairs(k)
        if p_in.numel() == 0:
            continue
        grad[k] = weight_block(x.index_select(0, p_in), grad_out.index_select(0, p_out), g)
    return grad


def gather_gemm_scatter(
    x: Tensor, weight: Tensor, kmap: KernelMap, num_out: int, adjoint: bool = False, bias: Optional[Tensor] = None
) -> Tensor:
    """``out[j] = bias + sum_k sum_{(i, j) in pairs(k)} x[i] @ W[k]`` per offset (``weight [K, G, A, B]``; with
    ``adjoint`` pairs run output -> input and ``W[k]^T`` is used); differentiable by autograd in ``x`` and
    ``weight``, ``bias`` only initialises the accumulator."""
    g, a, b = weight.shape[1:]
    w = weight.transpose(2, 3) if adjoint else weight
    c_out = g * (a if adjoint else b)
    out = x.new_zeros((num_out, c_out)) if bias is None else x.new_zeros((num_out, c_out)) + bias.detach()
    for k in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(k)
        if p_in.numel() == 0:
            continue
        src, dst = (p_out, p_in) if adjoint else (p_in, p_out)
        # under autocast the product comes back in half precision: accumulate in the features' dtype
        out.index_add_(0, dst, apply_offset(x.index_select(0, src), w[k]).to(out.dtype))
    return out
