"""SparseConvTensor conversions and the containers: dense()/from_dense round trip, replace_feature,
SparseSequential with plain torch.nn modules, ToDense, and kernel-map caching by indice_key."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor
from helpers import dense_subm_conv, gather_sites, random_sparse_tensor, site_mask

TOL = dict(rtol=1e-9, atol=1e-9)


def test_dense_places_features_at_their_sites():
    x = random_sparse_tensor((4, 5, 3), 6, batch_size=2, density=0.3, seed=1)
    d = x.dense()
    assert d.shape == (2, 6, 4, 5, 3)
    idx = x.indices.long()
    for row in range(0, idx.shape[0], 7):
        b, i, j, k = idx[row].tolist()
        torch.testing.assert_close(d[b, :, i, j, k], x.features[row])
    assert int((d.abs().sum(1) > 0).sum()) == idx.shape[0], "zero everywhere else"
    torch.testing.assert_close(x.dense(channels_first=False), d.permute(0, 2, 3, 4, 1))


def test_dense_from_dense_round_trip():
    x = random_sparse_tensor((5, 4, 6), 3, batch_size=2, density=0.25, seed=2)
    y = SparseConvTensor.from_dense(x.dense(channels_first=False))
    assert y.batch_size == 2 and y.spatial_shape == [5, 4, 6]
    assert torch.equal(site_mask(y.indices, 2, y.spatial_shape), site_mask(x.indices, 2, x.spatial_shape))
    torch.testing.assert_close(y.dense(), x.dense())
    # 2-D
    x2 = random_sparse_tensor((7, 6), 2, batch_size=3, density=0.3, seed=3)
    torch.testing.assert_close(SparseConvTensor.from_dense(x2.dense(channels_first=False)).dense(), x2.dense())


def test_dense_is_differentiable():
    x = random_sparse_tensor((4, 4, 4), 2, density=0.3, seed=4, requires_grad=True)
    cot = torch.randn(1, 2, 4, 4, 4, dtype=torch.float64)
    (g,) = torch.autograd.grad((x.dense() * cot).sum(), x.features)
    torch.testing.assert_close(g, gather_sites(cot, x.indices))


def test_replace_feature_shares_sites_and_cache():
    x = random_sparse_tensor((5, 5, 5), 3, density=0.3, seed=5)
    y = x.replace_feature(x.features * 2)
    assert y.indices is x.indices and y.indice_dict is x.indice_dict and y.spatial_shape == x.spatial_shape
    torch.testing.assert_close(y.features, x.features * 2)
    assert x.spatial_size == 125 and x.ndim == 3


def test_sparse_sequential_applies_torch_modules_to_features():
    torch.manual_seed(0)
    x = random_sparse_tensor((6, 6, 6), 4, batch_size=2, density=0.3, seed=6)
    conv = lsp.SubMConv3d(4, 8, 3, indice_key="s").double()
    bn = nn.BatchNorm1d(8).double()
    net = lsp.SparseSequential(conv, bn, nn.ReLU(), lsp.ToDense())
    net.train()
    out = net(x)
    h = dense_subm_conv(x, conv.weight, conv.bias)
    h = torch.relu((h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn.eps) * bn.weight + bn.bias)
    ref = x.replace_feature(h).dense()
    assert out.shape == (2, 8, 6, 6, 6)
    torch.testing.assert_close(out, ref, **TOL)


def test_sparse_sequential_construction_styles():
    a, b = lsp.SubMConv3d(2, 3, 3), nn.ReLU()
    s1 = lsp.SparseSequential(OrderedDict([("conv", a), ("act", b)]))
    s2 = lsp.SparseSequential(conv=a, act=b)
    s3 = lsp.SparseSequential()
    s3.add(a, "conv")
    s3.add(b)
    assert list(dict(s1.named_children())) == ["conv", "act"] == list(dict(s2.named_children()))
    assert len(s3) == 2 and s3[0] is a and s3[-1] is b
    with pytest.raises(IndexError):
        s3[2]
    with pytest.raises(KeyError, match="conv"):
        s3.add(b, "conv")


def test_indice_key_reuses_the_same_map_object():
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=7)
    c1 = lsp.SubMConv3d(2, 3, 3, indice_key="subm1").double()
    c2 = lsp.SubMConv3d(3, 4, 3, indice_key="subm1").double()
    y = c1(x)
    kmap = x.find_indice_pair("subm1")
    assert isinstance(kmap, lsp.KernelMap) and kmap.kind == "submanifold"
    z = c2(y)
    assert y.indice_dict is x.indice_dict and z.find_indice_pair("subm1") is kmap
    assert c2.kernel_map(y) is kmap
    assert x.find_indice_pair(None) is None and x.find_indice_pair("missing") is None


def test_indice_key_reuse_on_other_sites_raises():
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=8)
    down = lsp.SparseConv3d(2, 2, 3, stride=2, padding=1, indice_key="a").double()
    y = down(x)
    # a second layer with the same key but a different input (the down-sampled sites) must not reuse it
    with pytest.raises(ValueError, match="indice_key='a'.*other sites"):
        lsp.SparseConv3d(2, 2, 3, stride=2, padding=1, indice_key="a").double()(y)


def test_indice_key_reuse_with_other_kernel_or_kind_raises():
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=9)
    lsp.SubMConv3d(2, 2, 3, indice_key="k").double()(x)
    with pytest.raises(ValueError, match="indice_key='k'.*kernel_size"):
        lsp.SubMConv3d(2, 2, 5, indice_key="k").double()(x)
    with pytest.raises(ValueError, match="indice_key='k'.*regular"):
        lsp.SparseConv3d(2, 2, 3, indice_key="k").double()(x)
    with pytest.raises(ValueError, match="indice_key='k'.*dilation"):
        lsp.SubMConv3d(2, 2, 3, dilation=2, indice_key="k").double()(x)


def test_submanifold_layers_sharing_a_key_may_differ_in_padding():
    """OpenPCDet's backbones pass padding=1 to the first SubMConv3d of a key and nothing to the next ones:
    padding does not change a submanifold map, so the map is shared and each output is the dense reference."""
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=13)
    first = lsp.SubMConv3d(2, 3, 3, padding=1, indice_key="subm1").double()
    second = lsp.SubMConv3d(3, 3, 3, indice_key="subm1").double()
    y = first(x)
    z = second(y)
    assert y.indice_dict["subm1"] is z.indice_dict["subm1"]
    torch.testing.assert_close(y.features, dense_subm_conv(x, first.weight, first.bias), **TOL)
    torch.testing.assert_close(z.features, dense_subm_conv(y, second.weight, second.bias), **TOL)
    with pytest.raises(ValueError, match="must share kernel_size/dilation"):
        lsp.SubMConv3d(3, 3, 3, dilation=2, padding=1, indice_key="subm1").double()(y)


def test_reuse_on_same_sites_in_a_new_tensor_object_is_allowed():
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=10)
    c = lsp.SubMConv3d(2, 2, 3, indice_key="k").double()
    c(x)
    kmap = x.indice_dict["k"]
    same = SparseConvTensor(x.features + 1, x.indices.clone(), x.spatial_shape, 1, indice_dict=x.indice_dict)
    assert c.kernel_map(same) is kmap
    torch.testing.assert_close(c(same).features, dense_subm_conv(same, c.weight, c.bias), **TOL)


def test_module_attributes_follow_spconv():
    c = lsp.SparseConv3d(4, 8, (3, 1, 3), stride=2, padding=(1, 0, 1), dilation=1, indice_key="x", bias=False)
    assert c.in_channels == 4 and c.out_channels == 8 and c.kernel_size == (3, 1, 3)
    assert c.stride == (2, 2, 2) and c.padding == (1, 0, 1) and c.dilation == (1, 1, 1)
    assert c.bias is None and c.indice_key == "x" and not c.subm and not c.transposed and not c.inverse
    assert tuple(c.weight.shape) == (8, 3, 1, 3, 4)
    assert "indice_key='x'" in repr(c)


def test_add_minus_shadow_copy_and_select_by_index():
    x = random_sparse_tensor((5, 5, 5), 3, density=0.2, seed=11)
    y = x.replace_feature(torch.randn_like(x.features))
    torch.testing.assert_close((x + y).features, x.features + y.features)
    torch.testing.assert_close((x + y.features).features, x.features + y.features)
    torch.testing.assert_close((y.features + x).features, x.features + y.features)
    torch.testing.assert_close(x.minus().features, -x.features)
    c = x.shadow_copy()
    assert c is not x and c.features is x.features and c.indices is x.indices and c.indice_dict is x.indice_dict
    other = random_sparse_tensor((5, 5, 5), 3, density=0.2, seed=12)
    with pytest.raises(ValueError, match="cannot add SparseConvTensors on different sites"):
        x + other
    lsp.SubMConv3d(3, 3, 3, indice_key="k").double()(x)
    keep = x.features[:, 0] > 0
    s = x.select_by_index(keep)
    assert torch.equal(s.indices, x.indices[keep]) and torch.equal(s.features, x.features[keep])
    assert s.indice_dict == {} and "k" in x.indice_dict, "maps of the old sites are not carried over"
    conv = lsp.SubMConv3d(3, 2, 3, indice_key="k").double()
    torch.testing.assert_close(conv(s).features, dense_subm_conv(s, conv.weight, conv.bias), **TOL)


def test_spconv_style_feature_modules():
    x = random_sparse_tensor((5, 5, 5), 4, batch_size=2, density=0.3, seed=13)
    bn = lsp.SparseBatchNorm(4).double()
    out = lsp.SparseReLU()(bn(x))
    ref = torch.relu((x.features - x.features.mean(0)) / torch.sqrt(x.features.var(0, unbiased=False) + bn.eps))
    assert isinstance(out, SparseConvTensor) and out.indices is x.indices
    torch.testing.assert_close(out.features, ref, **TOL)
    assert lsp.SparseIdentity()(x) is x
    torch.testing.assert_close(lsp.SparseReLU()(x.features), torch.relu(x.features))
    seq = lsp.SparseSequential(lsp.SubMConv3d(4, 4, 3).double(), lsp.SparseBatchNorm(4).double(), lsp.SparseReLU())
    assert (seq(x).features >= 0).all()


def test_tables_join_add_concat():
    x = random_sparse_tensor((5, 5, 5), 3, density=0.3, seed=14)
    branches = lsp.ConcatTable()
    branches.add(lsp.SubMConv3d(3, 2, 3).double()).add(lsp.SubMConv3d(3, 2, 1).double())
    a, b = branches(x)
    joined = lsp.JoinTable()([a, b])
    torch.testing.assert_close(joined.features, torch.cat([a.features, b.features], 1))
    summed = lsp.AddTable()([a, b])
    torch.testing.assert_close(summed.features, a.features + b.features)
    assert joined.indices is x.indices and summed.indice_dict is x.indice_dict
    other = random_sparse_tensor((5, 5, 5), 2, density=0.3, seed=15)
    with pytest.raises(ValueError, match="JoinTable input 1 has other sites"):
        lsp.JoinTable()([a, other])
    with pytest.raises(ValueError, match="AddTable inputs have different channel counts"):
        lsp.AddTable()([a, joined])


def test_sparse_sequential_with_an_empty_tensor_and_batchnorm():
    x = SparseConvTensor(torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.int32), [4, 4, 4], 2)
    net = (
        lsp.SparseSequential(
            lsp.SubMConv3d(3, 5, 3), nn.BatchNorm1d(5), nn.ReLU(), lsp.SparseConv3d(5, 6, 2, 2), lsp.ToDense()
        )
        .double()
        .train()
    )
    out = net(x)
    assert out.shape == (2, 6, 2, 2, 2) and torch.equal(out, torch.zeros_like(out))


def test_indice_key_reuse_on_another_grid_raises():
    """Same sites, other spatial_shape: reusing the map would silently report the old grid."""
    x = random_sparse_tensor((6, 6, 6), 2, density=0.3, seed=16)
    conv = lsp.SubMConv3d(2, 2, 3, indice_key="s").double()
    conv(x)
    bigger = SparseConvTensor(x.features, x.indices, [9, 9, 9], 1, indice_dict=x.indice_dict)
    with pytest.raises(ValueError, match=r"indice_key='s' was built for spatial_shape=\[6, 6, 6\]"):
        conv(bigger)
    more_batches = SparseConvTensor(x.features, x.indices, [6, 6, 6], 3, indice_dict=x.indice_dict)
    with pytest.raises(ValueError, match=r"batch_size=1 but the input has .*batch_size=3"):
        conv(more_batches)


def test_inverse_conv_after_max_pool_with_the_same_key():
    x = random_sparse_tensor((6, 7, 6), 2, batch_size=2, density=0.3, seed=17)
    y = lsp.SparseMaxPool3d(2, 2, indice_key="p")(x)
    z = lsp.SparseInverseConv3d(2, 3, 2, indice_key="p").double()(y)
    assert torch.equal(z.indices, x.indices) and z.spatial_shape == x.spatial_shape


def test_to_dense_channels_last():
    x = random_sparse_tensor((4, 5, 3), 2, batch_size=2, density=0.3, seed=18)
    torch.testing.assert_close(lsp.ToDense(channels_first=False)(x), x.dense(channels_first=False))
    assert lsp.ToDense()(x).shape == (2, 2, 4, 5, 3)


def test_spatial_shape_accepts_sequences_arrays_and_tensors():
    x = random_sparse_tensor((4, 5, 3), 2, num_sites=6, seed=19)
    for shape in ((4, 5, 3), [4, 5, 3], np.array([4, 5, 3]), torch.tensor([4, 5, 3])):
        y = SparseConvTensor(x.features, x.indices, shape, 1)
        assert y.spatial_shape == [4, 5, 3] and all(type(s) is int for s in y.spatial_shape)
        assert y.spatial_size == 60
