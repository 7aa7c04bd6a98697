"""``torch.autograd.gradcheck`` (float64, finite differences) of every sparse op w.r.t. its features and
weight (and bias) on tiny inputs. Every op is linear in the features and in the weight (piecewise linear for
max pooling), so central differences are exact up to rounding and the tolerances can be tight.

Most cases use gradcheck's ``fast_mode`` (it compares ``v^T J u`` for random ``u, v`` instead of every
Jacobian entry: one backward pass instead of one per output entry); the exact per-entry gradients are
compared with the dense reference in test_conv_reference.py. The cheapest cases run the full check."""

from __future__ import annotations

import pytest
import torch
from helpers import random_sparse_tensor

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor

FULL = {"subm_k2_even", "regular_k2_s2_1d", "transposed_k2_s2", "max2d"}


def _gradcheck_module(module: torch.nn.Module, x: SparseConvTensor, fast: bool = True) -> None:
    """gradcheck of ``module(x).features`` as a function of ``x.features`` and every parameter (the
    kernel map is built once and reused through ``indice_key``)."""
    module = module.double()
    if getattr(module, "indice_key", "absent") is None:
        module.indice_key = "gradcheck"
    names = [n for n, _ in module.named_parameters()]
    feats = x.features.detach().clone().requires_grad_(True)

    def fn(f, *ps):
        t = SparseConvTensor(f, x.indices, x.spatial_shape, x.batch_size, indice_dict=x.indice_dict)
        out = torch.func.functional_call(module, dict(zip(names, ps)), (t,))
        return out.features if isinstance(out, SparseConvTensor) else out

    inputs = (feats,) + tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=fast)


# name -> (module factory, spatial_shape, number of sites); batch size 2 everywhere. Tiny on purpose: the
# analytic Jacobian costs one backward pass per output entry.
CONV_CASES = {
    "subm_k3": (lambda: lsp.SubMConv3d(2, 2, 3), (3, 3, 3), 10),
    "subm_k2_even": (lambda: lsp.SubMConv3d(2, 2, 2, bias=False), (3, 3, 3), 10),
    "subm_dilated_2d": (lambda: lsp.SubMConv2d(2, 3, 3, dilation=2), (5, 5), 12),
    "regular_k3_s2": (lambda: lsp.SparseConv3d(2, 2, 3, stride=2, padding=1), (4, 4, 3), 10),
    "regular_k2_s2_1d": (lambda: lsp.SparseConv1d(2, 3, 2, stride=2), (8,), 8),
    "transposed_k3_s2_2d": (lambda: lsp.SparseConvTranspose2d(2, 2, 3, stride=2), (3, 3), 4),
    "transposed_k2_s2": (lambda: lsp.SparseConvTranspose3d(2, 2, 2, stride=2), (2, 2, 2), 4),
    "groups_2": (lambda: lsp.SubMConv3d(4, 4, 3, groups=2), (3, 3, 3), 8),
    "depthwise": (lambda: lsp.SubMConv3d(3, 3, 3, groups=3), (3, 3, 3), 8),
    "depthwise_regular": (lambda: lsp.SparseConv2d(3, 6, 3, stride=2, padding=1, groups=3), (4, 4), 10),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_gradcheck_conv(name):
    factory, shape, sites = CONV_CASES[name]
    module = factory()
    x = random_sparse_tensor(shape, module.in_channels, batch_size=2, num_sites=sites, seed=len(name))
    kmap = module.kernel_map(x)
    assert kmap.num_pairs > min(kmap.num_in, kmap.num_out), "the map must mix neighbours"
    _gradcheck_module(module, x, fast=name not in FULL)


def test_gradcheck_inverse_conv():
    x = random_sparse_tensor((4, 4, 3), 2, num_sites=10, batch_size=2, seed=3)
    down = lsp.SparseConv3d(2, 3, 3, stride=2, indice_key="d").double()
    mid = down(x)
    mid = SparseConvTensor(mid.features.detach(), mid.indices, mid.spatial_shape, 2, indice_dict=mid.indice_dict)
    _gradcheck_module(lsp.SparseInverseConv3d(3, 2, 3, indice_key="d"), mid)


POOLS = {
    "max3d": lambda: lsp.SparseMaxPool3d(2, 2),
    "avg3d": lambda: lsp.SparseAvgPool3d(3, 2, 1),
    "max2d": lambda: lsp.SparseMaxPool2d(3, 1, 1),
    "gmax": lsp.SparseGlobalMaxPool,
    "gavg": lsp.SparseGlobalAvgPool,
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_gradcheck_pool(name):
    pool = POOLS[name]()
    nd = getattr(pool, "ndim", 3)
    x = random_sparse_tensor((3,) * nd, 2, num_sites=8, batch_size=2, seed=5)
    _gradcheck_module(pool, x, fast=name not in FULL)
