"""Conversions: plain <-> grouped round trips, export to a plain conv (ours and spconv), BatchNorm and
dilated-branch merging in eval mode, and loading the official V1 / V2 checkpoint layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import random_sparse_tensor
from largekernel3d.nn import SWLKConv3d
from largekernel3d.nn.convert import (
    export_plain,
    fuse_bn,
    fuse_dilated,
    grouped_from_plain,
    load_official_v1,
    load_official_v2,
    plain_from_grouped,
    swlk_from_plain,
    to_krsc,
    to_submconv,
)
from largekernel3d.nn.partition import SpatialPartition
from largekernel3d.sparse import SubMConv3d

pytestmark = pytest.mark.usefixtures("one_thread")


def _x(c=3, seed=0, dtype=torch.float64):
    return random_sparse_tensor((11, 10, 12), c, density=0.12, batch_size=2, dtype=dtype, seed=seed)


def _layer(c_in=3, c_out=4, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    layer = SWLKConv3d(c_in, c_out, **kw).to(dtype)
    with torch.no_grad():
        if layer.position_encoding is not None:
            layer.position_encoding.normal_()
    return layer


@pytest.mark.parametrize("kernel, partition", [(7, "center1"), ((3, 5, 9), "thirds"), (5, "center3")])
def test_grouped_plain_round_trips(kernel, partition):
    p = SpatialPartition.create(kernel, partition)
    g = torch.randn(p.num_groups, 3, 4, dtype=torch.float64)
    plain = plain_from_grouped(g, p)
    assert plain.shape == (4, *p.kernel_size, 3)
    torch.testing.assert_close(grouped_from_plain(plain, p), g, rtol=0, atol=1e-14)
    # plain -> grouped is the group mean: a random plain weight's means, expanded, are a fixed point
    w = torch.randn(4, *p.kernel_size, 3, dtype=torch.float64)
    means = grouped_from_plain(w, p)
    group = p.group_index()
    flat = w.reshape(4, -1, 3)
    for gi in (0, p.num_groups // 2, p.num_groups - 1):
        torch.testing.assert_close(means[gi], flat[:, group == gi].mean(1).t())
    torch.testing.assert_close(
        plain_from_grouped(grouped_from_plain(plain_from_grouped(means, p), p), p), plain_from_grouped(means, p)
    )


def test_swlk_from_plain_and_back_give_the_same_outputs():
    x = _x()
    p = SpatialPartition.create(5)
    conv = SubMConv3d(3, 4, 5, bias=True).double()
    with torch.no_grad():
        conv.weight.copy_(plain_from_grouped(torch.randn(27, 3, 4, dtype=torch.float64), p))  # group-constant
    layer = swlk_from_plain(conv)
    torch.testing.assert_close(layer(x).features, conv(x).features)
    back = to_submconv(layer)
    torch.testing.assert_close(back.weight, conv.weight)
    torch.testing.assert_close(back(x).features, conv(x).features)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=7, bias=True),
        dict(kernel_size=5, dilated_branch=True),
        dict(kernel_size=(5, 3, 7), partition="thirds", position_encoding=False),
    ],
)
def test_export_plain_reproduces_the_layer(kw):
    x = _x()
    layer = _layer(**kw)
    exp = export_plain(layer)
    assert exp.weight.shape == (4, *layer.kernel_size, 3)
    assert (exp.encoding_weight is None) == (layer.position_encoding is None)
    torch.testing.assert_close(exp.apply(x.features, layer.kernel_map(x)), layer(x).features)


def test_export_runs_in_spconv_with_a_ones_channel():
    spconv = pytest.importorskip("spconv.pytorch")
    x = _x(dtype=torch.float32)
    layer = _layer(dtype=torch.float32, kernel_size=5, dilated_branch=True, bias=True)
    w = export_plain(layer).with_ones_channel()  # [C_out, 5, 5, 5, C_in + 1], KRSC like spconv 2.3
    conv = spconv.SubMConv3d(4, 4, 5, bias=True)
    assert tuple(conv.weight.shape) == tuple(w.shape)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(layer.bias)
    feats = torch.cat([x.features, torch.ones(x.features.shape[0], 1)], 1)
    y = conv(spconv.SparseConvTensor(feats, x.indices, x.spatial_shape, x.batch_size)).features
    torch.testing.assert_close(y, layer(x).features, rtol=1e-5, atol=1e-5)


def test_to_submconv_refuses_an_encoding():
    with pytest.raises(ValueError, match="export_plain"):
        to_submconv(_layer(kernel_size=5))


def _bn(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm1d(c).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64))
        bn.running_mean.copy_(torch.randn(c, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.1)
    return bn.eval()


@pytest.mark.parametrize(
    "conv_factory",
    [
        lambda: _layer(kernel_size=5, dilated_branch=True),
        lambda: _layer(kernel_size=7, bias=True),
        lambda: SubMConv3d(3, 4, 3, bias=True).double(),
    ],
)
def test_fuse_bn_matches_conv_then_bn_in_eval_mode(conv_factory):
    x = _x()
    conv, bn = conv_factory().eval(), _bn(4)
    fused = fuse_bn(conv, bn)
    torch.testing.assert_close(fused(x).features, bn(conv(x).features))
    assert fused.bias is not None and conv is not fused


def test_fuse_bn_bad_input():
    with pytest.raises(ValueError, match="out_channels=4"):
        fuse_bn(_layer(kernel_size=3), _bn(5))
    with pytest.raises(TypeError, match="BatchNorm"):
        fuse_bn(_layer(kernel_size=3), nn.LayerNorm(4))


def test_fuse_dilated_branch_into_one_plain_kernel():
    x = _x()
    layer = _layer(kernel_size=7, dilated_branch=True, position_encoding=False, bias=True).eval()
    merged = fuse_dilated(layer)
    assert isinstance(merged, SubMConv3d) and merged.kernel_size == (7, 7, 7)
    torch.testing.assert_close(merged(x).features, layer(x).features)
    # and the whole re-parameterised stack: conv + branch + BN -> one SubMConv3d
    bn = _bn(4, seed=1)
    one = fuse_dilated(fuse_bn(layer, bn))
    torch.testing.assert_close(one(x).features, bn(layer(x).features))
    with pytest.raises(ValueError, match="dilated_branch"):
        fuse_dilated(_layer(kernel_size=5, position_encoding=False))


# ---- official checkpoints ---------------------------------------------------------------------------------------
def _v1_state(c=4, k=7, seed=0, constant=True, prefix="conv1.0.conv1."):
    """A V1 SpatialGroupConv state dict: block.weight [k, k, k, C_out, C_in] (spconv 2.1 native RSKC),
    conv3x3_1.weight [C_out, 3, 3, 3, C_in] (implicit GEMM KRSC), biases."""
    g = torch.Generator().manual_seed(seed)
    p = SpatialPartition.create(k)
    krsc = torch.randn(c, k, k, k, c, generator=g, dtype=torch.float64)
    if constant:
        krsc = plain_from_grouped(grouped_from_plain(krsc, p), p)
    return {
        prefix + "block.weight": krsc.permute(1, 2, 3, 0, 4).clone(),
        prefix + "block.bias": torch.randn(c, generator=g, dtype=torch.float64),
        prefix + "conv3x3_1.weight": torch.randn(c, 3, 3, 3, c, generator=g, dtype=torch.float64),
        prefix + "conv3x3_1.bias": torch.randn(c, generator=g, dtype=torch.float64),
    }, krsc


def test_load_official_v1_reproduces_block_plus_dilated_branch():
    x = _x(c=4)
    state, krsc = _v1_state()
    layer = SWLKConv3d(4, 4, 7, position_encoding=False, dilated_branch=True, bias=True).double()
    assert load_official_v1(layer, state, prefix="conv1.0.conv1.") < 1e-12
    # the official forward: spconv SubMConv3d(7) with block.weight + SubMConv3d(3, dilation 2), both biased
    block = SubMConv3d(4, 4, 7, bias=True).double()
    branch = SubMConv3d(4, 4, 3, dilation=2, bias=True).double()
    with torch.no_grad():
        block.weight.copy_(krsc)
        block.bias.copy_(state["conv1.0.conv1.block.bias"])
        branch.weight.copy_(state["conv1.0.conv1.conv3x3_1.weight"])
        branch.bias.copy_(state["conv1.0.conv1.conv3x3_1.bias"])
    torch.testing.assert_close(layer(x).features, block(x).features + branch(x).features)


def test_load_official_v1_takes_group_means_of_a_drifted_weight():
    state, krsc = _v1_state(constant=False, prefix="")
    layer = SWLKConv3d(4, 4, 7, position_encoding=False, dilated_branch=True, bias=True).double()
    with pytest.warns(UserWarning, match="official evaluation used this ungrouped weight"):
        deviation = load_official_v1(layer, state)
    assert deviation > 0.1
    torch.testing.assert_close(layer.weight, grouped_from_plain(krsc, layer.partition))


def _v2_reference(x, w_rskc, pe, bias, k):
    """The spconv-plus V2 forward written from its definition: centre group x @ W_c (no encoding); every
    other offset k: (x[j] + PE[k]) @ W_{g(k)}, one GEMM per offset."""
    p = SpatialPartition.create(k)
    ref_layer = SWLKConv3d(x.features.shape[1], w_rskc.shape[3], k, position_encoding=False).double()
    kmap = ref_layer.kernel_map(x)
    w = w_rskc.reshape(27, w_rskc.shape[3], w_rskc.shape[4])  # [g, C_out, C_in]
    group = p.group_index()
    out = x.features @ w[13].t() + bias
    for off in range(kmap.kernel_volume):
        if off == p.centre_offset:
            continue
        j, i = kmap.pairs(off)
        out.index_add_(0, i, (x.features[j] + pe[off]) @ w[group[off]].t())
    return out


def test_load_official_v2_matches_the_spconv_plus_definition():
    x = _x(c=3)
    g = torch.Generator().manual_seed(3)
    prefix = "backbone.conv1.0.conv1."
    state = {
        prefix + "block.weight": torch.randn(3, 3, 3, 5, 3, generator=g, dtype=torch.float64),
        prefix + "block.position_embedding": torch.randn(125, 3, generator=g, dtype=torch.float64),
        prefix + "block.bias": torch.randn(5, generator=g, dtype=torch.float64),
    }
    layer = SWLKConv3d(3, 5, 5, bias=True).double()
    load_official_v2(layer, state, prefix=prefix)
    ref = _v2_reference(
        x, state[prefix + "block.weight"], state[prefix + "block.position_embedding"], state[prefix + "block.bias"], 5
    )
    torch.testing.assert_close(layer(x).features, ref)


def test_loading_mismatched_checkpoints_names_the_key():
    state, _ = _v1_state(prefix="")
    with pytest.raises(ValueError, match="block.weight"):  # channels differ
        load_official_v1(SWLKConv3d(8, 8, 7, position_encoding=False, dilated_branch=True, bias=True), state)
    with pytest.raises(ValueError, match="block.weight"):  # kernel differs
        load_official_v1(SWLKConv3d(4, 4, 5, position_encoding=False, dilated_branch=True, bias=True), state)
    with pytest.raises(ValueError, match="position_encoding=False"):
        load_official_v1(SWLKConv3d(4, 4, 7, dilated_branch=True), state)
    with pytest.raises(ValueError, match="prefix"):
        load_official_v1(
            SWLKConv3d(4, 4, 7, position_encoding=False, dilated_branch=True, bias=True), state, prefix="nope."
        )
    with pytest.raises(ValueError, match="bias=True"):
        load_official_v1(SWLKConv3d(4, 4, 7, position_encoding=False, dilated_branch=True), state)
    v2 = {"block.weight": torch.randn(3, 3, 3, 4, 4), "block.position_embedding": torch.randn(343, 4)}
    with pytest.raises(ValueError, match="position_embedding"):
        load_official_v2(SWLKConv3d(4, 4, 5), v2)  # 343 rows for a 5^3 layer
    with pytest.raises(ValueError, match="position_encoding"):
        load_official_v2(SWLKConv3d(4, 4, 7, position_encoding=False), v2)
    with pytest.raises(ValueError, match="block.weight"):
        load_official_v2(SWLKConv3d(4, 6, 7), v2)
    with pytest.raises(ValueError, match="layout"):
        to_krsc(torch.randn(2, 3, 3, 3, 2), "HWIO", (3, 3, 3), 2, 2, "w")


def test_layouts():
    w = torch.randn(5, 3, 3, 3, 2)  # KRSC, C_out=5, C_in=2
    assert torch.equal(to_krsc(w.permute(1, 2, 3, 0, 4), "RSKC", (3, 3, 3), 2, 5, "w"), w)
    assert torch.equal(to_krsc(w.permute(1, 2, 3, 4, 0), "RSCK", (3, 3, 3), 2, 5, "w"), w)
    assert torch.equal(to_krsc(w.permute(1, 2, 3, 0, 4), "auto", (3, 3, 3), 2, 5, "w"), w)
    assert torch.equal(to_krsc(w, "auto", (3, 3, 3), 2, 5, "w"), w)
