"""The engine's autograd functions: the sparse convolution (:class:`SparseConvFunction`), the dense group
aggregation (:class:`GroupAggregateFunction`) and SW-LK's group convolution on compact slots
(:class:`GroupConvFunction`). Each saves what its backward pass needs and hands the arithmetic to a dataflow's
module (``cpu/`` or ``torch_ref/``)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .cpu import host_memory
from .cpu.group_layout import GroupLayout
from .cpu.group_products import group_products, identity_group, mirror_groups, mirrored_backward
from .dispatch import ConvPlan, Dataflow, GroupPlan
from .torch_ref.group_conv import aggregate_backward, aggregate_forward


class SparseConvFunction(torch.autograd.Function):
    """Autograd wrapper of a :class:`.dispatch.ConvPlan` (``out = plan.forward(...)``, with an optional bias folded
    into the accumulator, ``d_bias = sum_rows d_out``; the backward pass runs on the same plan); saves only the
    input and the weight."""

    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor, plan: ConvPlan, bias: Optional[Tensor] = None) -> Tensor:
        ctx.plan = plan
        ctx.save_for_backward(features, weight)
        return plan.forward(features, weight, plan.kmap.num_out, bias=bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        features, weight = ctx.saved_tensors
        plan: ConvPlan = ctx.plan
        grad_out = grad_out.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_b = grad_out.sum(dim=0) if len(ctx.needs_input_grad) > 3 and ctx.needs_input_grad[3] else None
        grad_x, grad_w = plan.backward(features, grad_out, weight, need_x, need_w)
        return grad_x, grad_w, None, grad_b


class GroupAggregateFunction(torch.autograd.Function):
    """Autograd wrapper of the dense aggregation ``A [N_out, G, C]`` (see the module docstring)."""

    @staticmethod
    def forward(ctx, features: Tensor, encoding: Optional[Tensor], group: Tensor, plan: GroupPlan) -> Tensor:
        ctx.plan, ctx.c_dim = plan, features.shape[1]
        ctx.save_for_backward(group)
        kmap, num_groups = plan.kmap, plan.num_groups
        if plan.dataflow is Dataflow.TORCH_REF:
            return aggregate_forward(features, encoding, kmap, group, num_groups, plan.tuning.torch_pair_chunk)
        ctx.slots = plan.layout(group.numpy(), compact=False)
        return ctx.slots.gather(features, encoding).view(kmap.num_out, num_groups, features.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_a: Tensor):
        (group,) = ctx.saved_tensors
        need_x, need_e = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        plan: GroupPlan = ctx.plan
        if plan.dataflow is Dataflow.TORCH_REF:
            d_x, d_e = aggregate_backward(
                grad_a.contiguous(), plan.kmap, group, need_x, need_e, ctx.c_dim, plan.tuning.torch_pair_chunk
            )
        else:
            d_x, d_e = ctx.slots.scatter(grad_a.reshape(-1, ctx.c_dim).contiguous(), need_x, need_e)
        return d_x, d_e, None, None


class GroupConvFunction(torch.autograd.Function):
    """``out = sum_g A_g @ W[g]`` on compact slots (numba path), computed like the inference path
    (:func:`group_products`).

    Backward. On a symmetric map (submanifold, odd kernel: pair ``(j, i)`` at offset ``k`` is pair ``(i,
    j)`` at ``K - 1 - k``) and a mirror-symmetric grouping (``g(K - 1 - k) = sigma(g(k))``, every SW-LK
    partition), the input gradient is the same product on the same slots, ``dx = sum_g Agg_g(dOut) @
    W[sigma(g)]^T`` (:func:`.cpu.group_products._mirrored_weight_of`), and the encoding gradient is
    ``dE[k] = (sum_{(j, i) in pairs(k)} dOut[i]) @ W[g(k)]^T``: no ``[slots, C]`` gradient of ``A`` is ever
    formed. The weight gradient comes from the same bags of ``dOut`` in the same pass
    (:func:`.cpu.group_products.mirrored_backward`), so ``A`` is not kept either::

        dW[h] = sum_{pairs j -> i in h} (x[j] + E[k])^T dOut[i]
              = sum_{slots s of sigma(h)} x[row(s)]^T Agg(dOut)[s]  +  sum_{k in h} E[k]^T S[k]

    (a pair ``j -> i`` of group ``h`` is the pair ``i -> j`` of group ``sigma(h)``, an entry of the slot of
    row ``j``; ``S[k]`` the sum of ``dOut`` over the pairs of offset ``k``, as for ``dE``). The forward never
    writes ``A``, which saves its memory and its page faults as well as time. Other maps and groupings keep ``A`` for
    ``dW``, form ``dA = dOut[rows] W[g]^T`` and sum it back per pair."""

    @staticmethod
    def forward(
        ctx, features: Tensor, encoding: Optional[Tensor], weight: Tensor, group: Tensor, plan: GroupPlan
    ) -> Tensor:
        kmap = plan.kmap
        group_np = group.numpy()
        slots = plan.layout(group_np, compact=True)
        sigma = mirror_groups(kmap, group_np, weight.shape[0])
        ctx.slots, ctx.plan, ctx.group, ctx.sigma = slots, plan, group, sigma
        ctx.centre = identity_group(kmap, group_np)[0]
        if sigma is not None:  # dW comes from the backward's bags of dOut: no [slots, C_in] kept
            ctx.save_for_backward(features, encoding, weight)
            return group_products(features, encoding, weight, kmap, group, plan.fused, plan.tuning)
        a = host_memory.empty((slots.num_slots, features.shape[1]), features.dtype)
        out = group_products(features, encoding, weight, kmap, group, plan.fused, plan.tuning, keep=a.numpy())
        ctx.save_for_backward(a, encoding, weight)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        saved, encoding, weight = ctx.saved_tensors
        slots: GroupLayout = ctx.slots
        plan: GroupPlan = ctx.plan
        kmap, group = plan.kmap, ctx.group
        grad_out = grad_out.contiguous()
        need_x, need_e, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if ctx.sigma is not None:
            d_x, d_e, d_w = mirrored_backward(
                grad_out,
                saved,
                encoding,
                weight,
                kmap,
                group,
                slots,
                ctx.sigma,
                ctx.centre,
                need_x,
                need_e,
                need_w,
                plan.fused,
                plan.tuning,
            )
            return d_x, d_e, d_w, None, None
        a = saved
        d_a = None
        if need_x or need_e:  # touched here, serially: see host_memory.touched_empty
            d_a = host_memory.touched_empty(a.shape, a.dtype)
        d_w = torch.zeros_like(weight) if need_w else None
        if d_w is not None or d_a is not None:
            rows = torch.from_numpy(slots.rows)
            gemm_rows = plan.tuning.group_gemm_rows
            buf = grad_out.new_empty((min(gemm_rows, max(slots.num_slots, 1)), weight.shape[2]))
            for g, s, e in slots.blocks(gemm_rows):
                if g == ctx.centre:  # the centre block's slots are the output rows 0, 1, ... in order
                    lo = s - int(slots.gstart[g])
                    g_rows = grad_out[lo : lo + e - s]
                else:
                    g_rows = torch.index_select(grad_out, 0, rows[s:e], out=buf[: e - s])  # dOut at the slots
                if d_a is not None:
                    torch.mm(g_rows, weight[g].t(), out=d_a[s:e])
                if d_w is not None:
                    d_w[g].addmm_(a[s:e].t(), g_rows)
        d_x = d_e = None
        if d_a is not None:
            d_x, d_e = slots.scatter(d_a, need_x, need_e)
        return d_x, d_e, d_w, None, None
