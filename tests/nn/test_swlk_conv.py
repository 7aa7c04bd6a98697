"""SWLKConv3d: equals a plain submanifold conv with the expanded weight (plus the encoding as a conv of a
ones channel) forward and backward, equals the dense F.conv3d reference, gradchecks, shares kernel maps,
and rejects bad input with clear errors."""

from __future__ import annotations

import pytest
import torch

from helpers import dense_subm_conv, gradcheck_sparse_module, kitti_sparse_tensor, random_sparse_tensor
from largekernel3d.nn import SWLKConv3d
from largekernel3d.nn.convert import encoding_weight, merge_dilated, plain_from_grouped
from largekernel3d.sparse import SparseConvTensor, SubMConv3d, sparse_conv

# Many tiny per-offset ops in the references: one torch thread avoids thread-pool wake-ups on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = [
    dict(kernel_size=7, partition="center1", position_encoding=True, dilated_branch=False, bias=True),
    dict(kernel_size=5, partition="center3", position_encoding=True, dilated_branch=True, bias=False),
    dict(kernel_size=(3, 5, 7), partition="thirds", position_encoding=False, dilated_branch=False, bias=True),
    dict(kernel_size=9, partition="thirds", position_encoding=True, dilated_branch=True, bias=True),
]


def make_layer(c_in, c_out, dtype=torch.float32, seed=0, **kw) -> SWLKConv3d:
    torch.manual_seed(seed)
    layer = SWLKConv3d(c_in, c_out, **kw).to(dtype)
    with torch.no_grad():  # larger encodings than the init so that their effect is well above rounding
        if layer.position_encoding is not None:
            layer.position_encoding.normal_()
        if layer.bias is not None:
            layer.bias.normal_()
    return layer


def plain_route(layer: SWLKConv3d, x: SparseConvTensor) -> torch.Tensor:
    """The same layer as ONE plain submanifold conv of ``[x, 1]`` whose weight is built differentiably
    from the layer's parameters (expanded groups, merged dilated branch, encoding column)."""
    w = plain_from_grouped(layer.weight, layer.partition)
    if layer.dilated is not None:
        w = merge_dilated(w, layer.dilated.weight, layer.dilated.dilation)
    enc = encoding_weight(layer)
    enc = enc if enc is not None else w.new_zeros((*w.shape[:-1], 1))
    feats = torch.cat([x.features, x.features.new_ones((x.features.shape[0], 1))], dim=1)
    return sparse_conv(feats, torch.cat([w, enc], dim=-1), layer.kernel_map(x), bias=layer.bias)


def assert_rel(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    err = float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-12))
    assert err <= rel, err


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"k{c['kernel_size']}-{c['partition']}")
def test_equals_plain_conv_with_expanded_weight_forward_and_all_gradients(cfg):
    x = random_sparse_tensor(
        (13, 12, 14), 4, density=0.12, batch_size=2, dtype=torch.float32, seed=1, requires_grad=True
    )
    layer = make_layer(4, 5, **cfg)
    params = [p for p in layer.parameters()]
    out = layer(x).features
    ref = plain_route(layer, x)
    assert_rel(out, ref, 1e-5)
    up = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    grads = torch.autograd.grad(out, [x.features] + params, up)
    grads_ref = torch.autograd.grad(ref, [x.features] + params, up)
    for name, g, r in zip(["input"] + [n for n, _ in layer.named_parameters()], grads, grads_ref):
        assert g.shape == r.shape, name
        assert_rel(g, r, 1e-5)


def test_equals_dense_conv3d_reference_float64():
    x = random_sparse_tensor((9, 8, 10), 3, density=0.2, dtype=torch.float64, seed=3, requires_grad=True)
    layer = make_layer(3, 4, dtype=torch.float64, kernel_size=5, dilated_branch=True, bias=True)
    w = merge_dilated(plain_from_grouped(layer.weight, layer.partition), layer.dilated.weight, layer.dilated.dilation)
    w = torch.cat([w, encoding_weight(layer)], dim=-1)
    ones = SparseConvTensor(
        torch.cat([x.features, torch.ones(x.features.shape[0], 1, dtype=torch.float64)], 1),
        x.indices,
        x.spatial_shape,
        x.batch_size,
    )
    ref = dense_subm_conv(ones, w, layer.bias)
    out = layer(x).features
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    g_layer = torch.autograd.grad(out, [x.features, layer.position_encoding], up)
    g_ref = torch.autograd.grad(ref, [x.features, layer.position_encoding], up)
    for a, b in zip(g_layer, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(kernel_size=5, dilated_branch=True, bias=True),
        dict(kernel_size=(3, 5, 3), partition="center3", position_encoding=True),
    ],
)
def test_gradcheck_float64(cfg):
    x = random_sparse_tensor((5, 6, 5), 2, num_sites=14, dtype=torch.float64, seed=5)
    layer = make_layer(2, 3, dtype=torch.float64, **cfg)
    assert gradcheck_sparse_module(layer, x)


def test_centre_offset_gets_no_encoding():
    """The official fast path: the centre voxel contributes x[i] @ W_centre with no encoding."""
    x = random_sparse_tensor((8, 8, 8), 3, density=0.2, dtype=torch.float64, seed=6)
    layer = make_layer(3, 2, dtype=torch.float64, kernel_size=5)
    before = layer(x).features
    c = layer.partition.centre_offset
    with torch.no_grad():
        layer.position_encoding[c] += 100.0
    torch.testing.assert_close(layer(x).features, before)
    layer(x).features.sum().backward()
    assert layer.position_encoding.grad[c].abs().max() == 0
    assert layer.position_encoding.grad.abs().sum() > 0


def test_parameters_are_shared_per_group():
    layer = SWLKConv3d(16, 32, 7)
    assert layer.weight.shape == (27, 16, 32)
    assert layer.position_encoding.shape == (343, 16)
    assert sum(p.numel() for p in layer.parameters()) == 27 * 16 * 32 + 343 * 16
    enc = layer.position_encoding.detach()
    assert 0.015 < float(enc.std()) < 0.025 and float(enc.abs().max()) <= 2.0
    plain = SWLKConv3d(16, 32, (3, 5, 9), partition="center3", position_encoding=False, bias=True)
    assert plain.weight.shape == (9, 16, 32) and plain.position_encoding is None and plain.bias.shape == (32,)


def test_kernel_map_shared_with_subm_conv_of_the_same_key():
    x = random_sparse_tensor((10, 10, 10), 4, density=0.1, dtype=torch.float32, seed=7)
    a = SWLKConv3d(4, 4, 5, indice_key="k5", dilated_branch=True)
    b = SWLKConv3d(4, 4, 5, indice_key="k5")
    plain = SubMConv3d(4, 4, 5, indice_key="k5")
    y = a(x)
    kmap = y.indice_dict["k5"]
    assert "k5_dilated" in y.indice_dict
    z = plain(b(y))
    assert z.indice_dict["k5"] is kmap
    assert torch.equal(z.indices, x.indices)
    with pytest.raises(ValueError, match="indice_key"):
        SWLKConv3d(4, 4, 7, indice_key="k5")(z)  # same key, other kernel


def test_kitti_frame_matches_plain_route():
    x = kitti_sparse_tensor(channels=4, voxel_size=0.4)
    if x is None:
        pytest.skip("shared KITTI data not present")
    layer = make_layer(4, 8, kernel_size=5, bias=True)
    assert_rel(layer(x).features, plain_route(layer, x), 1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kernel_size=6), "kernel_size"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(kernel_size=-7), "kernel_size"),
        (dict(kernel_size=33), "kernel_size"),
        (dict(kernel_size=(7, 7)), "kernel_size"),
        (dict(partition="shifted"), "partition"),
        (dict(kernel_size=3, dilated_branch=True), "dilated_branch"),
        (dict(in_channels=0), "in_channels"),
        (dict(out_channels=2.5), "out_channels"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    args = dict(in_channels=4, out_channels=4)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        SWLKConv3d(**args)


def test_bad_inputs_name_the_problem():
    x = random_sparse_tensor((6, 6, 6), 3, density=0.2, dtype=torch.float32)
    with pytest.raises(ValueError, match="in_channels=4"):
        SWLKConv3d(4, 4, 3)(x)
    with pytest.raises(TypeError, match="float64"):
        SWLKConv3d(3, 4, 3).double()(x)
    with pytest.raises(TypeError, match="SparseConvTensor"):
        SWLKConv3d(3, 4, 3)(x.features)


@pytest.mark.parametrize("num_sites", [0, 1])
def test_empty_and_single_site_inputs(num_sites):
    layer = make_layer(3, 4, kernel_size=5, dilated_branch=True, bias=True)
    feats = torch.randn(num_sites, 3, requires_grad=True)
    x = SparseConvTensor(feats, torch.zeros(num_sites, 4, dtype=torch.int32), [5, 5, 5], 1)
    y = layer(x).features
    assert y.shape == (num_sites, 4)
    y.sum().backward()
    if num_sites:  # one site: only the centre (group weight + dilated centre tap) and the bias act
        w_c = layer.weight[layer.group_index[layer.partition.centre_offset]] + layer.dilated.weight[:, 1, 1, 1].t()
        torch.testing.assert_close(y, feats @ w_c + layer.bias)


@pytest.mark.parametrize(
    "name, shape", [("weight", (28, 4, 5)), ("weight", (7, 7, 7, 5, 4)), ("position_encoding", (7, 4)), ("bias", (4,))]
)
def test_a_replaced_parameter_of_the_wrong_shape_is_named(name, shape):
    layer = SWLKConv3d(4, 5, kernel_size=7, bias=True)
    x = random_sparse_tensor((8, 8, 8), 4, num_sites=40, seed=3)
    layer = layer.to(x.features.dtype)
    setattr(layer, name, torch.nn.Parameter(torch.randn(shape, dtype=x.features.dtype)))
    with pytest.raises(ValueError, match=f"SWLKConv3d.{name} has shape"):
        layer(x)
