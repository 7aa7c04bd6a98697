"""Sparse pooling against dense references: max pool = dense max over the grid filled with ``-inf`` off the
active sites; average pool = mean over the active inputs under the window; global pools per batch element."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor
from helpers import dense_max_pool, dense_window_sum, gather_sites, random_sparse_tensor, reached_sites, site_mask

TOL = dict(rtol=1e-9, atol=1e-9)

# (ndim, kernel, stride, padding, dilation, channels, batch, spatial_shape)
POOL_CASES = [
    (3, 2, 2, 0, 1, 3, 2, (6, 7, 6)),
    (3, 3, 2, 1, 1, 4, 1, (7, 7, 7)),
    (3, 3, 1, 0, 1, 2, 2, (5, 6, 5)),
    (3, 3, 3, 1, 1, 2, 1, (9, 8, 7)),
    (3, 5, 2, 2, 1, 1, 1, (8, 8, 8)),
    (3, 3, 2, 1, 2, 2, 2, (9, 8, 9)),
    (3, (2, 3, 1), (2, 1, 1), (0, 1, 0), 1, 3, 1, (6, 5, 4)),
    (2, 4, 3, 1, 1, 16, 2, (12, 11)),
    (2, 7, 2, 3, 1, 2, 1, (13, 12)),
    (1, 3, 2, 1, 1, 3, 2, (15,)),
]

_MAX = {1: lsp.SparseMaxPool1d, 2: lsp.SparseMaxPool2d, 3: lsp.SparseMaxPool3d}
_AVG = {1: lsp.SparseAvgPool1d, 2: lsp.SparseAvgPool2d, 3: lsp.SparseAvgPool3d}


def _leaf(x: SparseConvTensor) -> SparseConvTensor:
    return SparseConvTensor(x.features.detach().clone().requires_grad_(True), x.indices, x.spatial_shape, x.batch_size)


@pytest.mark.parametrize("ndim,k,s,p,d,c,batch,shape", POOL_CASES)
def test_max_pool_matches_dense_max_over_active_sites(ndim, k, s, p, d, c, batch, shape):
    x = random_sparse_tensor(
        shape, c, batch_size=batch, density=0.3, seed=hash((ndim, s, c)) % 1000, requires_grad=True
    )
    out = _MAX[ndim](k, s, p, d)(x)
    reached = reached_sites(x, k, s, p, d)
    assert torch.equal(site_mask(out.indices, batch, out.spatial_shape), reached)
    x_ref = _leaf(x)
    ref = dense_max_pool(x_ref, k, s, p, d)
    ref_rows = gather_sites(ref, out.indices)
    assert torch.isfinite(ref_rows).all()
    torch.testing.assert_close(out.features, ref_rows, **TOL)
    cot = torch.randn(out.features.shape, dtype=torch.float64)
    (g,) = torch.autograd.grad((out.features * cot).sum(), x.features)
    (g_ref,) = torch.autograd.grad((ref_rows * cot).sum(), x_ref.features)
    torch.testing.assert_close(g, g_ref, **TOL)


@pytest.mark.parametrize("ndim,k,s,p,d,c,batch,shape", POOL_CASES)
def test_avg_pool_is_mean_over_active_inputs(ndim, k, s, p, d, c, batch, shape):
    x = random_sparse_tensor(
        shape, c, batch_size=batch, density=0.3, seed=hash((ndim, k, c)) % 1000, requires_grad=True
    )
    out = _AVG[ndim](k, s, p, d)(x)
    x_ref = _leaf(x)
    total, count = dense_window_sum(x_ref, k, s, p, d)
    assert torch.equal(site_mask(out.indices, batch, out.spatial_shape), count > 0.5)
    ref_rows = gather_sites(total / count.clamp(min=1).unsqueeze(1), out.indices)
    torch.testing.assert_close(out.features, ref_rows, **TOL)
    cot = torch.randn(out.features.shape, dtype=torch.float64)
    (g,) = torch.autograd.grad((out.features * cot).sum(), x.features)
    (g_ref,) = torch.autograd.grad((ref_rows * cot).sum(), x_ref.features)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_pool_stride_defaults_follow_spconv():
    """As spconv: ``SparseMaxPool3d(k)`` / ``SparseAvgPool3d(k)`` default to ``stride=None`` = kernel_size
    (like ``nn.MaxPool3d``); the generic ``SparseMaxPool(ndim, k)`` defaults to stride 1; submanifold
    pooling keeps stride 1."""
    for cls in (
        lsp.SparseMaxPool1d,
        lsp.SparseMaxPool2d,
        lsp.SparseMaxPool3d,
        lsp.SparseAvgPool1d,
        lsp.SparseAvgPool2d,
        lsp.SparseAvgPool3d,
    ):
        pool = cls(2)
        assert pool.geometry.stride == (2,) * pool.ndim and pool.geometry.kernel_size == (2,) * pool.ndim
    assert lsp.SparseMaxPool3d(3, subm=True).geometry.stride == (1, 1, 1)
    assert lsp.SparseMaxPool(3, 2).geometry.stride == (1, 1, 1)
    assert lsp.SparseAvgPool(3, 2, stride=None).geometry.stride == (2, 2, 2)
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=4)
    assert lsp.SparseMaxPool3d(2)(x).spatial_shape == [3, 3, 3]


@pytest.mark.parametrize("k", [3, 4])
def test_submanifold_max_pool_keeps_sites(k):
    x = random_sparse_tensor((6, 5, 6), 3, batch_size=2, density=0.3, seed=k)
    out = lsp.SparseMaxPool3d(k, subm=True)(x)
    assert torch.equal(out.indices, x.indices)
    lo, hi = k // 2, k - 1 - k // 2
    dense = x.dense()
    mask = site_mask(x.indices, 2, x.spatial_shape).unsqueeze(1)
    filled = torch.where(mask, dense, torch.full_like(dense, float("-inf")))
    ref = F.max_pool3d(F.pad(filled, (lo, hi) * 3, value=float("-inf")), k, 1)
    torch.testing.assert_close(out.features, gather_sites(ref, x.indices), **TOL)


def test_global_pools_per_batch_element():
    x = random_sparse_tensor((5, 6, 4), 7, batch_size=3, density=0.2, seed=2, requires_grad=True)
    b = x.indices[:, 0].long()
    mx = lsp.SparseGlobalMaxPool()(x)
    avg = lsp.SparseGlobalAvgPool()(x)
    assert mx.shape == avg.shape == (3, 7)
    for i in range(3):
        torch.testing.assert_close(mx[i], x.features[b == i].amax(0), **TOL)
        torch.testing.assert_close(avg[i], x.features[b == i].mean(0), **TOL)
    cot = torch.randn(3, 7, dtype=torch.float64)
    (g,) = torch.autograd.grad((avg * cot).sum(), x.features)
    counts = torch.bincount(b, minlength=3).double()
    torch.testing.assert_close(g, cot[b] / counts[b].unsqueeze(1), **TOL)


def test_global_pools_with_an_empty_batch_element_give_zeros():
    x = random_sparse_tensor((4, 4, 4), 2, num_sites=10, seed=3)
    x2 = SparseConvTensor(x.features, x.indices, x.spatial_shape, 2)  # element 1 has no sites
    for pool in (lsp.SparseGlobalMaxPool(), lsp.SparseGlobalAvgPool()):
        out = pool(x2)
        assert torch.isfinite(out).all() and torch.equal(out[1], torch.zeros(2, dtype=out.dtype))
