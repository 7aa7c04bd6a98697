"""Every sparse convolution equals the dense PyTorch convolution of the densified input (forward and the
gradients w.r.t. features, weight and bias), on random data, over a representative grid of dimensions,
kernel sizes (odd and even), strides, paddings, dilations, groups (incl. depth-wise), batch sizes and
channel counts."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    dense_conv,
    dense_conv_transpose,
    dense_subm_conv,
    gather_sites,
    random_sparse_tensor,
    reached_sites,
    site_mask,
)

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor

TOL = dict(rtol=1e-9, atol=1e-9)


def _set_params(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def _leaf_copy(x: SparseConvTensor) -> SparseConvTensor:
    feats = x.features.detach().clone().requires_grad_(True)
    return SparseConvTensor(feats, x.indices, x.spatial_shape, x.batch_size)


def _check_grads(
    out_rows: torch.Tensor,
    ref_rows: torch.Tensor,
    x: SparseConvTensor,
    x_ref: SparseConvTensor,
    module: torch.nn.Module,
    seed: int = 7,
) -> None:
    """Backpropagate the same random cotangent through both and compare every gradient."""
    cot = torch.randn(out_rows.shape, generator=torch.Generator().manual_seed(seed), dtype=out_rows.dtype)
    params = [p for p in module.parameters()]
    grads = torch.autograd.grad((out_rows * cot).sum(), [x.features] + params)
    ref_grads = torch.autograd.grad((ref_rows * cot).sum(), [x_ref.features] + params)
    names = ["features"] + [n for n, _ in module.named_parameters()]
    for name, g, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(g, r, **TOL, msg=lambda m, name=name: f"grad wrt {name}: {m}")


def _conv_module(
    ndim: int, subm: bool, transposed: bool, cin: int, cout: int, k, s, p, d, groups: int, bias: bool, key=None
):
    return lsp.SparseConvolution(
        ndim, cin, cout, k, s, p, d, groups, bias, subm=subm, transposed=transposed, indice_key=key
    ).double()


# (ndim, kernel, dilation, groups, C_in, C_out, batch, spatial_shape, bias)
SUBM_CASES = [
    (3, 3, 1, 1, 4, 8, 2, (6, 7, 5), True),
    (3, 1, 1, 1, 3, 5, 1, (5, 5, 5), True),
    (3, 2, 1, 1, 3, 4, 2, (5, 6, 4), False),
    (3, 4, 1, 1, 2, 3, 1, (6, 6, 6), True),
    (3, 5, 2, 1, 3, 2, 1, (8, 7, 6), True),
    (3, 7, 1, 1, 2, 2, 1, (8, 8, 8), False),
    (3, (3, 1, 5), (1, 2, 1), 1, 2, 3, 2, (6, 5, 7), True),
    (3, 3, 1, 4, 4, 4, 2, (6, 6, 6), True),  # depth-wise
    (3, 3, 1, 4, 4, 8, 1, (6, 6, 6), False),  # depth-wise with multiplier 2
    (3, 3, 1, 2, 4, 6, 1, (5, 6, 7), True),  # groups 2
    (3, 6, 1, 1, 1, 1, 1, (7, 7, 7), True),  # one channel, even 6
    (2, 3, 1, 1, 64, 64, 2, (8, 8), True),  # wide channels
    (2, 5, 1, 3, 6, 9, 2, (9, 8), False),
    (2, 4, 2, 1, 3, 2, 1, (10, 9), True),  # even + dilation
    (2, 7, 1, 1, 2, 5, 3, (9, 9), True),
    (1, 3, 1, 1, 3, 4, 2, (12,), True),
    (1, 6, 3, 1, 2, 2, 1, (20,), True),
]


@pytest.mark.parametrize("ndim,k,d,groups,cin,cout,batch,shape,bias", SUBM_CASES)
def test_submanifold_conv_matches_masked_dense(ndim, k, d, groups, cin, cout, batch, shape, bias):
    x = random_sparse_tensor(
        shape, cin, batch_size=batch, density=0.35, seed=hash((ndim, cin, cout)) % 1000, requires_grad=True
    )
    conv = _conv_module(ndim, True, False, cin, cout, k, 1, 0, d, groups, bias)
    _set_params(conv, 3)
    out = conv(x)
    assert torch.equal(out.indices, x.indices), "a submanifold conv keeps the input sites and their order"
    assert out.spatial_shape == x.spatial_shape
    x_ref = _leaf_copy(x)
    ref = dense_subm_conv(x_ref, conv.weight, conv.bias, d, groups)
    torch.testing.assert_close(out.features, ref, **TOL)
    _check_grads(out.features, ref, x, x_ref, conv)


def test_named_submanifold_classes_have_their_dimension():
    for cls, nd in ((lsp.SubMConv1d, 1), (lsp.SubMConv2d, 2), (lsp.SubMConv3d, 3)):
        conv = cls(2, 3, 3).double()
        assert conv.ndim == nd and conv.subm and tuple(conv.weight.shape) == (3,) + (3,) * nd + (2,)
        x = random_sparse_tensor((5,) * nd, 2, density=0.4)
        torch.testing.assert_close(conv(x).features, dense_subm_conv(x, conv.weight, conv.bias), **TOL)


# (ndim, kernel, stride, padding, dilation, groups, C_in, C_out, batch, spatial_shape)
REGULAR_CASES = [
    (3, 3, 2, 1, 1, 1, 4, 6, 2, (7, 6, 5)),
    (3, 2, 2, 0, 1, 1, 3, 5, 2, (6, 6, 6)),  # even kernel, the usual 2x down-sampling
    (3, 3, 1, 0, 1, 1, 2, 3, 1, (6, 5, 6)),
    (3, 3, 3, 1, 1, 1, 3, 2, 1, (9, 8, 7)),
    (3, 5, 2, 2, 1, 1, 2, 4, 1, (8, 8, 8)),
    (3, 4, 3, 1, 1, 1, 2, 3, 2, (9, 7, 8)),
    (3, 7, 1, 3, 1, 1, 1, 2, 1, (7, 7, 7)),
    (3, 3, 2, 2, 2, 1, 2, 2, 1, (9, 9, 8)),  # dilation
    (3, 3, 2, 1, 1, 4, 4, 4, 2, (6, 6, 6)),  # depth-wise
    (3, 3, 1, 1, 1, 2, 4, 2, 1, (6, 5, 6)),  # groups 2
    (3, (2, 3, 1), (2, 1, 1), (0, 1, 0), 1, 1, 3, 3, 2, (6, 5, 4)),
    (3, 1, 2, 0, 1, 1, 3, 4, 1, (7, 6, 5)),  # 1x1x1 with stride
    (2, 3, 2, 1, 1, 1, 64, 32, 2, (10, 9)),
    (2, 6, 2, 1, 1, 1, 3, 3, 1, (12, 11)),
    (2, 5, 3, 0, 2, 1, 2, 3, 2, (16, 14)),
    (2, 3, 2, 1, 1, 3, 6, 6, 2, (9, 9)),  # depth-wise, 2-D
    (1, 3, 2, 1, 1, 1, 3, 4, 2, (15,)),
    (1, 4, 3, 2, 1, 1, 2, 2, 1, (17,)),
]


@pytest.mark.parametrize("ndim,k,s,p,d,groups,cin,cout,batch,shape", REGULAR_CASES)
def test_regular_conv_matches_dense(ndim, k, s, p, d, groups, cin, cout, batch, shape):
    x = random_sparse_tensor(
        shape, cin, batch_size=batch, density=0.25, seed=hash((ndim, s, cin)) % 1000, requires_grad=True
    )
    conv = _conv_module(ndim, False, False, cin, cout, k, s, p, d, groups, True)
    _set_params(conv, 4)
    out = conv(x)
    x_ref = _leaf_copy(x)
    ref_dense = dense_conv(x_ref, conv.weight, conv.bias, s, p, d, groups)
    assert tuple(out.spatial_shape) == tuple(ref_dense.shape[2:])
    # the active output sites are exactly the cells the kernel reaches from an active input, once each
    reached = reached_sites(x, k, s, p, d)
    assert torch.equal(site_mask(out.indices, batch, out.spatial_shape), reached)
    assert out.indices.shape[0] == int(reached.sum())
    # densified output = dense conv at the active sites, zero elsewhere
    expected = torch.where(reached.unsqueeze(1), ref_dense, torch.zeros_like(ref_dense))
    torch.testing.assert_close(out.dense(), expected, **TOL)
    _check_grads(out.features, gather_sites(ref_dense, out.indices), x, x_ref, conv)


def test_named_regular_classes_have_their_dimension():
    for cls, nd in ((lsp.SparseConv1d, 1), (lsp.SparseConv2d, 2), (lsp.SparseConv3d, 3)):
        conv = cls(2, 3, 3, stride=2, padding=1).double()
        x = random_sparse_tensor((6,) * nd, 2, density=0.4)
        out = conv(x)
        ref = dense_conv(x, conv.weight, conv.bias, 2, 1)
        torch.testing.assert_close(out.features, gather_sites(ref, out.indices), **TOL)


# (ndim, kernel, stride, padding, dilation, groups, C_in, C_out, batch, spatial_shape)
TRANSPOSED_CASES = [
    (3, 3, 2, 0, 1, 1, 3, 4, 2, (4, 3, 4)),
    (3, 2, 2, 0, 1, 1, 4, 2, 1, (4, 4, 3)),
    (3, 3, 2, 1, 1, 2, 4, 6, 1, (4, 4, 4)),
    (3, 4, 3, 1, 1, 1, 2, 3, 2, (3, 4, 3)),
    (3, 3, 1, 0, 2, 1, 2, 2, 1, (4, 4, 4)),
    (3, 5, 2, 2, 1, 3, 3, 3, 1, (4, 3, 4)),  # depth-wise
    (2, 3, 2, 1, 1, 1, 16, 8, 2, (6, 5)),
    (2, 2, 2, 0, 1, 1, 3, 3, 1, (5, 5)),
    (1, 3, 3, 1, 1, 1, 2, 3, 2, (7,)),
]


@pytest.mark.parametrize("ndim,k,s,p,d,groups,cin,cout,batch,shape", TRANSPOSED_CASES)
def test_transposed_conv_matches_conv_transpose(ndim, k, s, p, d, groups, cin, cout, batch, shape):
    x = random_sparse_tensor(
        shape, cin, batch_size=batch, density=0.3, seed=hash((ndim, k, s)) % 1000, requires_grad=True
    )
    conv = _conv_module(ndim, False, True, cin, cout, k, s, p, d, groups, True)
    _set_params(conv, 5)
    out = conv(x)
    x_ref = _leaf_copy(x)
    ref_dense = dense_conv_transpose(x_ref, conv.weight, conv.bias, s, p, d, groups)
    assert tuple(out.spatial_shape) == tuple(ref_dense.shape[2:])
    reached = reached_sites(x, k, s, p, d, transposed=True)
    assert torch.equal(site_mask(out.indices, batch, out.spatial_shape), reached)
    expected = torch.where(reached.unsqueeze(1), ref_dense, torch.zeros_like(ref_dense))
    torch.testing.assert_close(out.dense(), expected, **TOL)
    _check_grads(out.features, gather_sites(ref_dense, out.indices), x, x_ref, conv)


def test_named_transposed_classes():
    for cls, nd in ((lsp.SparseConvTranspose1d, 1), (lsp.SparseConvTranspose2d, 2), (lsp.SparseConvTranspose3d, 3)):
        conv = cls(2, 3, 2, stride=2).double()
        x = random_sparse_tensor((3,) * nd, 2, density=0.5)
        out = conv(x)
        ref = dense_conv_transpose(x, conv.weight, conv.bias, 2)
        torch.testing.assert_close(out.features, gather_sites(ref, out.indices), **TOL)


# (ndim, kernel, stride, padding, dilation, groups, C_in (fine), C_mid, C_out, batch, spatial_shape)
INVERSE_CASES = [
    (3, 3, 2, 1, 1, 1, 3, 4, 5, 2, (7, 6, 5)),
    (3, 2, 2, 0, 1, 1, 2, 3, 2, 1, (6, 7, 6)),
    (3, 3, 3, 0, 1, 1, 2, 2, 3, 1, (9, 8, 8)),
    (3, 3, 2, 1, 2, 4, 4, 4, 4, 2, (8, 7, 8)),  # dilation + depth-wise inverse
    (2, 5, 2, 2, 1, 1, 3, 6, 2, 2, (11, 10)),
]


@pytest.mark.parametrize("ndim,k,s,p,d,groups,cin,cmid,cout,batch,shape", INVERSE_CASES)
def test_inverse_conv_restores_sites_and_matches_dense(ndim, k, s, p, d, groups, cin, cmid, cout, batch, shape):
    x = random_sparse_tensor(
        shape, cin, batch_size=batch, density=0.25, seed=hash((k, s, p)) % 1000, requires_grad=True
    )
    down = _conv_module(ndim, False, False, cin, cmid, k, s, p, d, 1, True, key="down")
    up = lsp.SparseConvolution(ndim, cmid, cout, k, groups=groups, inverse=True, indice_key="down").double()
    _set_params(down, 6)
    _set_params(up, 7)
    mid = down(x)
    mid_leaf = SparseConvTensor(
        mid.features.detach().clone().requires_grad_(True),
        mid.indices,
        mid.spatial_shape,
        mid.batch_size,
        indice_dict=mid.indice_dict,
    )
    out = up(mid_leaf)
    assert torch.equal(out.indices, x.indices), "inverse conv restores the paired conv's input sites in order"
    assert out.spatial_shape == x.spatial_shape
    assert up.kernel_map(mid_leaf).pair_in.data_ptr() == down.kernel_map(x).pair_out.data_ptr(), (
        "the inverse conv reuses the cached map of its paired conv"
    )
    # dense reference: transposed conv with the paired geometry, padded back to the input grid, read at x's sites
    mid_ref = _leaf_copy(mid_leaf)
    t_shape = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o in mid.spatial_shape]
    out_pad = [n - t for n, t in zip(shape, t_shape)]
    ref = dense_conv_transpose(mid_ref, up.weight, up.bias, s, p, d, groups, output_padding=out_pad)
    ref_rows = gather_sites(ref, x.indices)
    torch.testing.assert_close(out.features, ref_rows, **TOL)
    _check_grads(out.features, ref_rows, mid_leaf, mid_ref, up)


def test_named_inverse_classes():
    for down_cls, inv_cls, nd in (
        (lsp.SparseConv1d, lsp.SparseInverseConv1d, 1),
        (lsp.SparseConv2d, lsp.SparseInverseConv2d, 2),
        (lsp.SparseConv3d, lsp.SparseInverseConv3d, 3),
    ):
        x = random_sparse_tensor((6,) * nd, 2, density=0.3)
        net = lsp.SparseSequential(down_cls(2, 3, 3, 2, 1, indice_key="k"), inv_cls(3, 2, 3, indice_key="k")).double()
        out = net(x)
        assert torch.equal(out.indices, x.indices) and out.features.shape == (x.indices.shape[0], 2)


def test_chain_of_layers_matches_dense_chain():
    """A small UNet-like chain (subm → down → subm → inverse) equals the chain of dense references."""
    x = random_sparse_tensor((8, 7, 6), 3, batch_size=2, density=0.3, seed=11)
    net = lsp.SparseSequential(
        lsp.SubMConv3d(3, 4, 3, indice_key="s1"),
        lsp.SparseConv3d(4, 5, 2, stride=2, indice_key="d1"),
        lsp.SubMConv3d(5, 5, 3, indice_key="s2"),
        lsp.SparseInverseConv3d(5, 2, 2, indice_key="d1"),
    ).double()
    _set_params(net, 9)
    out = net(x)
    h = x.replace_feature(dense_subm_conv(x, net[0].weight, net[0].bias))
    h_dense = dense_conv(h, net[1].weight, net[1].bias, 2)
    h2_idx = site_mask(h.indices, 2, h.spatial_shape)
    coarse = reached_sites(h, 2, 2)
    h2 = SparseConvTensor(
        gather_sites(h_dense, torch.nonzero(coarse).int()), torch.nonzero(coarse).int(), list(coarse.shape[1:]), 2
    )
    h3 = h2.replace_feature(dense_subm_conv(h2, net[2].weight, net[2].bias))
    ref = dense_conv_transpose(h3, net[3].weight, net[3].bias, 2, output_padding=[0, 1, 0])
    assert h2_idx.sum() == x.indices.shape[0]
    torch.testing.assert_close(out.features, gather_sites(ref, x.indices), **TOL)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 8e-2)])
def test_lower_precision_matches_float64_reference(dtype, tol):
    """float32 (the production dtype) and half types (the pure-torch path) against the float64 reference."""
    x64 = random_sparse_tensor((6, 5, 6), 8, batch_size=2, density=0.3, seed=21)
    x = x64.replace_feature(x64.features.to(dtype))
    for conv in (lsp.SubMConv3d(8, 8, 3), lsp.SparseConv3d(8, 8, 3, 2, 1), lsp.SubMConv3d(8, 8, 3, groups=8)):
        conv = conv.to(dtype)
        out = conv(x)
        w64 = conv.weight.double()
        b64 = conv.bias.double()
        if conv.subm:
            ref = dense_subm_conv(x64, w64, b64, 1, conv.groups)
        else:
            ref = gather_sites(dense_conv(x64, w64, b64, 2, 1, conv.groups), out.indices)
        assert out.features.dtype == dtype
        torch.testing.assert_close(out.features.double(), ref, rtol=tol, atol=tol)


def test_gradients_when_only_features_or_only_weight_require_grad():
    x = random_sparse_tensor((5, 5, 5), 3, density=0.3, seed=22)
    conv = lsp.SparseConv3d(3, 4, 3, 2, 1).double()
    conv.weight.requires_grad_(False)
    feats = x.features.clone().requires_grad_(True)
    out = conv(x.replace_feature(feats))
    cot = torch.randn_like(out.features)
    (g,) = torch.autograd.grad((out.features * cot).sum(), feats)
    feats_ref = x.features.clone().requires_grad_(True)
    ref = gather_sites(dense_conv(x.replace_feature(feats_ref), conv.weight, conv.bias, 2, 1), out.indices)
    (g_ref,) = torch.autograd.grad((ref * cot).sum(), feats_ref)
    torch.testing.assert_close(g, g_ref, **TOL)
    conv.weight.requires_grad_(True)
    out = conv(x)  # features do not require grad
    (gw,) = torch.autograd.grad((out.features * cot).sum(), conv.weight)
    ref = gather_sites(dense_conv(x, conv.weight, conv.bias, 2, 1), out.indices)
    (gw_ref,) = torch.autograd.grad((ref * cot).sum(), conv.weight)
    torch.testing.assert_close(gw, gw_ref, **TOL)


def test_non_contiguous_features():
    x = random_sparse_tensor((5, 6, 5), 8, density=0.3, seed=23)
    xs = x.replace_feature(x.features[:, ::2])
    assert not xs.features.is_contiguous()
    conv = lsp.SubMConv3d(4, 3, 3).double()
    torch.testing.assert_close(conv(xs).features, dense_subm_conv(xs, conv.weight, conv.bias), **TOL)


@pytest.mark.parametrize("layout", ["int64", "non_contiguous_int32", "non_contiguous_int64"])
def test_int64_and_non_contiguous_indices(layout):
    x = random_sparse_tensor((6, 7, 5), 3, batch_size=2, density=0.3, seed=24)
    idx = x.indices.long() if layout.endswith("int64") else x.indices
    if layout.startswith("non_contiguous"):
        idx = idx.t().contiguous().t()
    y = SparseConvTensor(x.features, idx, x.spatial_shape, 2)
    subm = lsp.SubMConv3d(3, 4, 3).double()
    torch.testing.assert_close(subm(y).features, dense_subm_conv(y, subm.weight, subm.bias), **TOL)
    down = lsp.SparseConv3d(3, 4, 3, 2, 1, indice_key="d").double()
    out = down(y)
    torch.testing.assert_close(
        out.features, gather_sites(dense_conv(y, down.weight, down.bias, 2, 1), out.indices), **TOL
    )
    up = lsp.SparseInverseConv3d(4, 3, 3, indice_key="d").double()(out)
    assert torch.equal(up.indices.long(), idx.long())
