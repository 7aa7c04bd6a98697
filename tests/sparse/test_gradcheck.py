"""``torch.autograd.gradcheck`` (float64, finite differences) of every sparse op w.r.t. its features and
weight (and bias) on tiny inputs."""

from __future__ import annotations

import pytest
import torch

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor
from helpers import random_sparse_tensor


def _gradcheck_module(module: torch.nn.Module, x: SparseConvTensor) -> None:
    """gradcheck of ``module(x).features`` as a function of ``x.features`` and every parameter."""
    module = module.double()
    names = [n for n, _ in module.named_parameters()]
    feats = x.features.detach().clone().requires_grad_(True)

    def fn(f, *ps):
        t = SparseConvTensor(f, x.indices, x.spatial_shape, x.batch_size, indice_dict=dict(x.indice_dict))
        out = torch.func.functional_call(module, dict(zip(names, ps)), (t,))
        return out.features if isinstance(out, SparseConvTensor) else out

    inputs = (feats,) + tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


CONV_CASES = {
    "subm_k3": lambda: lsp.SubMConv3d(2, 3, 3),
    "subm_k2_even": lambda: lsp.SubMConv3d(2, 2, 2, bias=False),
    "subm_dilated_2d": lambda: lsp.SubMConv2d(2, 3, 3, dilation=2),
    "regular_k3_s2": lambda: lsp.SparseConv3d(2, 3, 3, stride=2, padding=1),
    "regular_k2_s2_1d": lambda: lsp.SparseConv1d(2, 2, 2, stride=2),
    "transposed_k3_s2": lambda: lsp.SparseConvTranspose3d(2, 3, 3, stride=2),
    "groups_2": lambda: lsp.SubMConv3d(4, 6, 3, groups=2),
    "depthwise": lambda: lsp.SubMConv3d(3, 3, 3, groups=3),
    "depthwise_regular": lambda: lsp.SparseConv2d(3, 6, 3, stride=2, padding=1, groups=3),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_gradcheck_conv(name):
    module = CONV_CASES[name]()
    shape = {1: (6,), 2: (4, 4), 3: (3, 3, 3)}[module.ndim]
    x = random_sparse_tensor(shape, module.in_channels, batch_size=2, num_sites=12, seed=len(name))
    kmap = module.kernel_map(x)
    assert kmap.num_pairs > min(kmap.num_in, kmap.num_out), "the map must mix neighbours"
    _gradcheck_module(module, x)


def test_gradcheck_inverse_conv():
    x = random_sparse_tensor((5, 4, 5), 2, num_sites=10, batch_size=2, seed=3)
    down = lsp.SparseConv3d(2, 3, 3, stride=2, indice_key="d").double()
    mid = down(x)
    mid = SparseConvTensor(mid.features.detach(), mid.indices, mid.spatial_shape, 2, indice_dict=mid.indice_dict)
    _gradcheck_module(lsp.SparseInverseConv3d(3, 2, 3, indice_key="d"), mid)


@pytest.mark.parametrize("pool", [lsp.SparseMaxPool3d(2, 2), lsp.SparseAvgPool3d(3, 2, 1),
                                  lsp.SparseMaxPool2d(3, 1, 1), lsp.SparseGlobalMaxPool(),
                                  lsp.SparseGlobalAvgPool()], ids=["max3d", "avg3d", "max2d", "gmax", "gavg"])
def test_gradcheck_pool(pool):
    nd = getattr(pool, "ndim", 3)
    x = random_sparse_tensor((4,) * nd, 2, num_sites=10, batch_size=2, seed=5)
    _gradcheck_module(pool, x)
