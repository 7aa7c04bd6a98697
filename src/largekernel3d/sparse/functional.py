"""Gather – GEMM – scatter: the one computation behind every sparse convolution.

With a kernel map (pairs per offset ``k``) and a grouped weight ``W`` of shape
``[K, G, C_in / G, C_out / G]`` the forward pass is::

    out[i_out, g] += in[i_in, g] @ W[k, g]          for every pair (i_in, i_out) of offset k

and the backward pass reuses the same primitive on the adjoint map::

    d_in[i_in, g]  += d_out[i_out, g] @ W[k, g]^T
    d_W[k, g]       = in[pairs_in(k), g]^T @ d_out[pairs_out(k), g]
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .kernel_map import KernelMap


def module_weight_to_grouped(weight: Tensor, groups: int) -> Tensor:
    """spconv layout ``[C_out, *kernel, C_in / G]`` → grouped ``[K, G, C_in / G, C_out / G]`` (a view)."""
    c_out = weight.shape[0]
    cig = weight.shape[-1]
    k = weight[0, ..., 0].numel()
    return weight.reshape(groups, c_out // groups, k, cig).permute(2, 0, 3, 1)


def _apply_offset(x: Tensor, w_k: Tensor) -> Tensor:
    """``x [P, G * A] @ blockdiag(w_k [G, A, B]) -> [P, G * B]``."""
    g, a, b = w_k.shape
    if g == 1:
        return x.mm(w_k[0])
    if a == 1 and b == 1:
        return x * w_k.reshape(1, g)
    p = x.shape[0]
    return torch.bmm(x.reshape(p, g, a).transpose(0, 1), w_k).transpose(0, 1).reshape(p, g * b)


def gather_gemm_scatter(x: Tensor, weight: Tensor, kmap: KernelMap, num_out: int, adjoint: bool = False) -> Tensor:
    """``out[j] = sum_k sum_{(i, j) in pairs(k)} x[i] @ W[k]`` with block-diagonal groups.

    ``weight`` is ``[K, G, A, B]``; with ``adjoint=True`` pairs run output → input and ``W[k]^T`` is used
    (the input gradient of the forward).
    """
    g, a, b = weight.shape[1:]
    w = weight.transpose(2, 3) if adjoint else weight
    c_out = g * (a if adjoint else b)
    out = x.new_zeros((num_out, c_out))
    for k in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(k)
        if p_in.numel() == 0:
            continue
        src, dst = (p_out, p_in) if adjoint else (p_in, p_out)
        out.index_add_(0, dst, _apply_offset(x.index_select(0, src), w[k]))
    return out


def weight_gradient(x: Tensor, grad_out: Tensor, kmap: KernelMap, weight_shape: torch.Size) -> Tensor:
    """``d_W[k, g] = x[pairs_in(k), g]^T @ grad_out[pairs_out(k), g]`` in the grouped layout."""
    kv, g, a, b = weight_shape
    grad = grad_out.new_zeros((kv, g, a, b))
    for k in range(kv):
        p_in, p_out = kmap.pairs(k)
        if p_in.numel() == 0:
            continue
        xs = x.index_select(0, p_in)
        gs = grad_out.index_select(0, p_out)
        if g == 1:
            grad[k, 0] = xs.t().mm(gs)
        else:
            p = xs.shape[0]
            grad[k] = torch.bmm(xs.reshape(p, g, a).permute(1, 2, 0), gs.reshape(p, g, b).transpose(0, 1))
    return grad


class SparseConvFunction(torch.autograd.Function):
    """Autograd wrapper of :func:`gather_gemm_scatter`; saves only the input and the weight."""

    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor, kmap: KernelMap) -> Tensor:
        ctx.kmap = kmap
        ctx.save_for_backward(features, weight)
        return gather_gemm_scatter(features, weight, kmap, kmap.num_out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        features, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = gather_gemm_scatter(grad_out, weight, kmap, kmap.num_in, adjoint=True)
        if ctx.needs_input_grad[1]:
            grad_w = weight_gradient(features, grad_out, kmap, weight.shape)
        return grad_x, grad_w, None


def sparse_conv(features: Tensor, weight: Tensor, kmap: KernelMap, groups: int = 1,
                bias: Optional[Tensor] = None) -> Tensor:
    """Sparse convolution of ``features [N_in, C_in]`` by a spconv-layout ``weight
    [C_out, *kernel, C_in / groups]`` over ``kmap``; returns ``[N_out, C_out]``."""
    grouped = module_weight_to_grouped(weight, groups)
    out = SparseConvFunction.apply(features, grouped, kmap)
    if bias is not None:
        out = out + bias
    return out
