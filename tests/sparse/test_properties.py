"""Property-based tests (hypothesis) over random coordinate sets, empty and single-site tensors included:
kernel maps hold exactly the valid (input, output) pairs, each once per offset, and the convolutions and
pools equal their dense references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import largekernel3d.sparse as lsp
from largekernel3d.sparse import ConvGeometry, SparseConvTensor, build_regular_map, build_submanifold_map
from largekernel3d.sparse import build_transposed_map
from helpers import dense_conv, dense_max_pool, dense_subm_conv, gather_sites, reached_sites, site_mask

TOL = dict(rtol=1e-9, atol=1e-9)
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


@st.composite
def sparse_tensors(draw, max_sites: int = 40, channels: int = 2):
    """Random sparse tensors: 1-3 spatial axes of size 1-6, batch 1-3, any subset of the cells (possibly
    empty or a single site), sites in random order, float64 features."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    batch = draw(st.integers(1, 3))
    cells = batch * int(np.prod(shape))
    flat = draw(st.lists(st.integers(0, cells - 1), min_size=0, max_size=min(cells, max_sites), unique=True))
    flat_t = torch.tensor(flat, dtype=torch.int64)
    cols = []
    for s in reversed(shape):
        cols.append(flat_t % s)
        flat_t = flat_t // s
    cols.append(flat_t)
    indices = torch.stack(cols[::-1], dim=1).to(torch.int32) if flat else torch.zeros(0, ndim + 1, dtype=torch.int32)
    seed = draw(st.integers(0, 2**16))
    feats = torch.randn(len(flat), channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return SparseConvTensor(feats, indices, list(shape), batch)


def _coords(indices: torch.Tensor) -> torch.Tensor:
    return indices.to(torch.int64)


def _check_pairs_unique(kmap) -> None:
    for k in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(k)
        assert p_in.unique().numel() == p_in.numel(), f"offset {k}: an input row appears twice"
        assert p_out.unique().numel() == p_out.numel(), f"offset {k}: an output row appears twice"
        if p_in.numel():
            assert 0 <= int(p_in.min()) and int(p_in.max()) < kmap.num_in
            assert 0 <= int(p_out.min()) and int(p_out.max()) < kmap.num_out
    assert kmap.offset_starts[0] == 0 and kmap.offset_starts[-1] == kmap.num_pairs
    assert all(a <= b for a, b in zip(kmap.offset_starts, kmap.offset_starts[1:]))


@SETTINGS
@given(x=sparse_tensors(), k=st.integers(1, 4), d=st.integers(1, 2))
def test_submanifold_map_pairs_are_exactly_the_active_neighbours(x, k, d):
    geom = ConvGeometry.create(x.ndim, k, 1, 0, d)
    kmap = build_submanifold_map(x.indices, x.spatial_shape, x.batch_size, geom)
    _check_pairs_unique(kmap)
    assert torch.equal(kmap.out_indices, x.indices)
    offsets = torch.stack(torch.meshgrid(*[torch.arange(k)] * x.ndim, indexing="ij"), -1).reshape(-1, x.ndim)
    idx = _coords(x.indices)
    for j in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(j)
        delta = d * (offsets[j] - k // 2)
        assert torch.equal(idx[p_in, 0], idx[p_out, 0]), "pairs stay inside one batch element"
        assert torch.equal(idx[p_in, 1:], idx[p_out, 1:] + delta)
    # completeness: the pairs are all (site, active neighbour) couples, counted by a dense all-ones conv
    ones = x.replace_feature(torch.ones(x.indices.shape[0], 1, dtype=torch.float64))
    neighbours = dense_subm_conv(ones, torch.ones(1, *[k] * x.ndim, 1, dtype=torch.float64), None, d)
    assert kmap.num_pairs == int(neighbours.sum().round())


@SETTINGS
@given(x=sparse_tensors(), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2))
def test_regular_map_pairs_follow_the_conv_relation(x, k, s, p, d):
    geom = ConvGeometry.create(x.ndim, k, s, p, d)
    if any((n + 2 * p - d * (k - 1) - 1) < 0 for n in x.spatial_shape):
        with pytest.raises(ValueError, match="empty output grid"):
            build_regular_map(x.indices, x.spatial_shape, x.batch_size, geom)
        return
    kmap = build_regular_map(x.indices, x.spatial_shape, x.batch_size, geom)
    _check_pairs_unique(kmap)
    offsets = torch.stack(torch.meshgrid(*[torch.arange(k)] * x.ndim, indexing="ij"), -1).reshape(-1, x.ndim)
    idx, out = _coords(kmap.in_indices), _coords(kmap.out_indices)
    for j in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(j)
        assert torch.equal(idx[p_in, 0], out[p_out, 0])
        assert torch.equal(idx[p_in, 1:], s * out[p_out, 1:] - p + d * offsets[j])
    # every output site is reached and appears once; output sites are sorted (batch, axis 0, ...)
    assert torch.equal(torch.unique(kmap.pair_out), torch.arange(kmap.num_out))
    assert out.unique(dim=0).shape[0] == out.shape[0]


@SETTINGS
@given(x=sparse_tensors(), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2))
def test_transposed_map_pairs_follow_the_adjoint_relation(x, k, s, p, d):
    geom = ConvGeometry.create(x.ndim, k, s, p, d)
    if any((n - 1) * s - 2 * p + d * (k - 1) + 1 <= 0 for n in x.spatial_shape):
        with pytest.raises(ValueError, match="empty grid"):
            build_transposed_map(x.indices, x.spatial_shape, x.batch_size, geom)
        return
    kmap = build_transposed_map(x.indices, x.spatial_shape, x.batch_size, geom)
    _check_pairs_unique(kmap)
    offsets = torch.stack(torch.meshgrid(*[torch.arange(k)] * x.ndim, indexing="ij"), -1).reshape(-1, x.ndim)
    idx, out = _coords(kmap.in_indices), _coords(kmap.out_indices)
    for j in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(j)
        assert torch.equal(idx[p_in, 0], out[p_out, 0])
        assert torch.equal(out[p_out, 1:], s * idx[p_in, 1:] - p + d * offsets[j])
    reached = reached_sites(x, k, s, p, d, transposed=True)
    assert torch.equal(site_mask(kmap.out_indices, x.batch_size, kmap.out_spatial_shape), reached)


@SETTINGS
@given(x=sparse_tensors(channels=2), k=st.integers(1, 4), d=st.integers(1, 2), cout=st.integers(1, 3))
def test_submanifold_conv_equals_masked_dense_conv(x, k, d, cout):
    conv = lsp.SparseConvolution(x.ndim, 2, cout, k, dilation=d, subm=True).double()
    out = conv(x)
    assert out.features.shape == (x.indices.shape[0], cout)
    torch.testing.assert_close(out.features, dense_subm_conv(x, conv.weight, conv.bias, d), **TOL)


@SETTINGS
@given(x=sparse_tensors(channels=2), k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1))
def test_regular_conv_and_max_pool_equal_dense(x, k, s, p):
    if any(n + 2 * p < k for n in x.spatial_shape) or 2 * p > k:
        return  # empty grid (tested above) or a padding F.max_pool rejects
    conv = lsp.SparseConvolution(x.ndim, 2, 3, k, s, p).double()
    out = conv(x)
    ref = dense_conv(x, conv.weight, conv.bias, s, p)
    torch.testing.assert_close(out.features, gather_sites(ref, out.indices), **TOL)
    pool = lsp.SparseMaxPool(x.ndim, k, s, p)(x)
    assert torch.equal(pool.indices, out.indices)
    torch.testing.assert_close(pool.features, gather_sites(dense_max_pool(x, k, s, p), pool.indices), **TOL)


EMPTY_OR_SINGLE_OPS = {
    "subm": lambda: lsp.SubMConv3d(3, 4, 3),
    "subm_even": lambda: lsp.SubMConv3d(3, 4, 2),
    "regular": lambda: lsp.SparseConv3d(3, 4, 3, 2, 1),
    "transposed": lambda: lsp.SparseConvTranspose3d(3, 4, 3, 2),
    "depthwise": lambda: lsp.SubMConv3d(3, 3, 3, groups=3),
    "maxpool": lambda: lsp.SparseMaxPool3d(2, 2),
    "avgpool": lambda: lsp.SparseAvgPool3d(3, 2, 1),
    "gmax": lambda: lsp.SparseGlobalMaxPool(),
    "gavg": lambda: lsp.SparseGlobalAvgPool(),
}


@pytest.mark.parametrize("num_sites", [0, 1])
@pytest.mark.parametrize("op", sorted(EMPTY_OR_SINGLE_OPS))
def test_empty_and_single_site_tensors(op, num_sites):
    module = EMPTY_OR_SINGLE_OPS[op]().double()
    indices = torch.tensor([[1, 2, 1, 3]], dtype=torch.int32)[:num_sites]
    feats = torch.randn(num_sites, 3, dtype=torch.float64, requires_grad=True)
    x = SparseConvTensor(feats, indices, [5, 5, 5], 2)
    out = module(x)
    f = out.features if isinstance(out, SparseConvTensor) else out
    assert torch.isfinite(f).all()
    f.sum().backward()
    assert feats.grad is not None and feats.grad.shape == feats.shape
    if isinstance(out, SparseConvTensor):
        assert out.indices.dtype == torch.int32 and out.indices.shape[1] == 4
        assert (out.indices.shape[0] == 0) == (num_sites == 0)
        torch.testing.assert_close(gather_sites(out.dense(), out.indices), f, **TOL)
    if op == "subm" and num_sites == 1:
        # a lone site only sees itself: the centre tap
        torch.testing.assert_close(f, feats @ module.weight[:, 1, 1, 1, :].t() + module.bias, **TOL)


def test_empty_inverse_conv():
    x = SparseConvTensor(torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.int32), [6, 6, 6], 1)
    down = lsp.SparseConv3d(2, 3, 3, 2, 1, indice_key="d").double()
    up = lsp.SparseInverseConv3d(3, 2, 3, indice_key="d").double()
    out = up(down(x))
    assert out.features.shape == (0, 2) and out.indices.shape == (0, 4)


@pytest.mark.parametrize("scale", [2**4, 2**12, 2**18])
def test_translation_equivariance_on_large_grids(scale):
    """Shifting every site by an even offset into a much larger grid (up to ~2**60 output cells) shifts
    the outputs the same way (sub-manifold: same sites + offset; stride-2 conv and pool: + offset / 2;
    stride-2 transposed: + 2 offset)."""
    g = torch.Generator().manual_seed(scale % 97)
    flat = torch.randperm(2 * 8**3, generator=g)[:40]
    idx = torch.stack([flat // 512, flat // 64 % 8, flat // 8 % 8, flat % 8], 1).to(torch.int32)
    x = SparseConvTensor(torch.randn(40, 3, generator=g, dtype=torch.float64), idx, [8, 8, 8], 2)
    off = torch.tensor([0, scale, scale + 2, scale // 2], dtype=torch.int32)
    big = SparseConvTensor(x.features, idx + off, [2 * scale + 16] * 3, 2)
    cases = [
        (lsp.SubMConv3d(3, 4, 3), 1),
        (lsp.SubMConv3d(3, 4, 2), 1),
        (lsp.SparseConv3d(3, 4, 2, 2), 0.5),
        (lsp.SparseConvTranspose3d(3, 4, 3, 2), 2),
        (lsp.SparseMaxPool3d(2, 2), 0.5),
    ]
    for module, factor in cases:
        module = module.double()
        a, b = module(x), module(big)
        shift = (off.double() * factor).to(torch.int32)
        assert torch.equal(b.indices - shift, a.indices), type(module).__name__
        torch.testing.assert_close(b.features, a.features, **TOL)
