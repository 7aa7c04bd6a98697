"""The dispatch rules (:mod:`largekernel3d.sparse.dispatch`) and every dataflow against dense PyTorch.

Specification: ``AUTO`` picks the first dataflow of an operation that can run the input; a dataflow asked for by
name runs exactly that dataflow, or raises a ``ValueError`` that names what it needs and what it got. Every
dataflow that can run an input gives dense ``conv3d``'s result, forward and backward, and passes gradcheck.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import largekernel3d.sparse as sp
from largekernel3d.nn import SWLKConv3d
from largekernel3d.sparse.cpu import team
from largekernel3d.sparse.cpu.tuning import DEFAULT_TUNING
from largekernel3d.sparse.dispatch import (
    CONV_DATAFLOWS,
    GROUP_CONV_DATAFLOWS,
    Dataflow,
    plan_conv,
    plan_group_aggregate,
    plan_group_conv,
    plan_kernel_map,
)
from largekernel3d.sparse.functional import gather_gemm_scatter, module_weight_to_grouped, sparse_conv
from largekernel3d.sparse.group_conv import group_conv

pytestmark = pytest.mark.usefixtures("one_thread")

CONV_FLOWS_HERE = tuple(d for d in CONV_DATAFLOWS if d is not Dataflow.CPU_FUSED or team.team_available())
GROUP_FLOWS_HERE = tuple(d for d in GROUP_CONV_DATAFLOWS if d is not Dataflow.CPU_FUSED or team.team_available())
# tiny tiles, chunks and blocks: every boundary of the tiled and chunked loops is crossed on small inputs
SMALL_STEPS = dataclasses.replace(
    DEFAULT_TUNING,
    conv_tile_bytes=1,
    conv_min_tile_rows=7,
    conv_max_tile_rows=7,
    group_chunk_bytes=1,
    group_min_chunk_rows=5,
    group_block_bytes=1,
    group_min_block_rows=6,
    group_gemm_rows=11,
)


def _sites(shape, n, seed, batch=1):
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(shape)) * batch, size=n, replace=False)
    coords = np.stack(np.unravel_index(flat, (batch, *shape)), axis=1)
    return torch.from_numpy(coords).int()


def _dense(features, indices, shape, batch=1):
    """``[B, C, *shape]`` with the features at their sites, zeros elsewhere."""
    out = features.new_zeros((batch, features.shape[1], *shape))
    idx = indices.long()
    out[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]] = features
    return out


def _at(dense, indices):
    idx = indices.long()
    return dense[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]]


# ------------------------------------------------------------------------------------------------------ the rules


def test_kernel_map_rule():
    cpu3 = torch.zeros((1, 4), dtype=torch.int32)
    assert plan_kernel_map(cpu3, 3).dataflow is Dataflow.CPU
    assert plan_kernel_map(cpu3, 1).dataflow is Dataflow.CPU
    assert plan_kernel_map(torch.zeros((1, 5), dtype=torch.int32), 4).dataflow is Dataflow.TORCH_REF
    assert plan_kernel_map(cpu3, 3, "torch_ref").dataflow is Dataflow.TORCH_REF
    meta = torch.zeros((1, 4), dtype=torch.int32, device="meta")
    assert plan_kernel_map(meta, 3).dataflow is Dataflow.TORCH_REF  # not on the CPU: the torch builders


def test_kernel_map_impossible_or_unknown_dataflow_raises():
    idx4 = torch.zeros((1, 5), dtype=torch.int32)
    with pytest.raises(
        ValueError,
        match=r"dataflow=CPU cannot run this kernel map: it needs CPU indices with 1 to 3 "
        r"spatial axes; got indices on cpu with 4 axes",
    ):
        sp.build_submanifold_map(idx4, (2, 2, 2, 2), 1, sp.ConvGeometry.create(4, 3), dataflow=Dataflow.CPU)
    idx = torch.zeros((1, 4), dtype=torch.int32)
    with pytest.raises(
        ValueError, match="dataflow='cuda' is not a Dataflow; kernel map takes one of AUTO, CPU, TORCH_REF"
    ):
        sp.build_submanifold_map(idx, (4, 4, 4), 1, sp.ConvGeometry.create(3, 3), dataflow="cuda")
    with pytest.raises(ValueError, match="CPU_FUSED is not a dataflow of kernel map"):
        sp.build_regular_map(idx, (4, 4, 4), 1, sp.ConvGeometry.create(3, 3, 2), dataflow=Dataflow.CPU_FUSED)
    with pytest.raises(TypeError, match="tuning must be a CpuTuning"):
        sp.build_submanifold_map(idx, (4, 4, 4), 1, sp.ConvGeometry.create(3, 3), tuning={"map_blocks": 4})


def _conv_operands(dtype=torch.float32, groups=1, n=40):
    idx = _sites((6, 6, 6), n, seed=1)
    kmap = sp.build_submanifold_map(idx, (6, 6, 6), 1, sp.ConvGeometry.create(3, 3))
    x = torch.randn(n, 4, dtype=dtype)
    w = torch.randn(27, groups, 4 // groups, 6 // groups, dtype=dtype)
    return x, w, kmap


def test_conv_rule():
    x, w, kmap = _conv_operands()
    expected = Dataflow.CPU_FUSED if team.team_available() else Dataflow.CPU_TILED
    assert plan_conv(x, w, kmap).dataflow is expected
    assert plan_conv(x.double(), w.double(), kmap).dataflow is expected
    xg, wg, _ = _conv_operands(groups=2)
    assert plan_conv(xg, wg, kmap).dataflow is Dataflow.CPU_TILED  # grouped: the tiled passes
    assert plan_conv(x.half(), w.half(), kmap).dataflow is Dataflow.TORCH_REF
    assert plan_conv(x, w.double(), kmap).dataflow is Dataflow.TORCH_REF
    assert plan_conv(x, w, kmap, records_graph=True).dataflow is Dataflow.TORCH_REF
    plan = plan_conv(x, w, kmap, Dataflow.CPU_TILED, SMALL_STEPS)
    assert plan.dataflow is Dataflow.CPU_TILED and plan.tuning is SMALL_STEPS and plan.kmap is kmap
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.dataflow = Dataflow.TORCH_REF


def test_conv_impossible_dataflow_raises_with_what_it_needs():
    x, w, kmap = _conv_operands()
    wf = sp.SubMConv3d(4, 6, 3, groups=2).weight.detach()
    with pytest.raises(
        ValueError,
        match=r"dataflow=CPU_FUSED cannot run this convolution: it needs groups=1; got "
        r"groups=2",
    ):
        sparse_conv(x, wf, kmap, groups=2, dataflow=Dataflow.CPU_FUSED)
    with pytest.raises(
        ValueError,
        match=r"dataflow=CPU_TILED cannot run this convolution: it needs float32/float64 "
        r"CPU features.*got features torch.float16 on cpu",
    ):
        sparse_conv(x.half(), sp.SubMConv3d(4, 6, 3).weight.detach().half(), kmap, dataflow="cpu_tiled")
    with pytest.raises(ValueError, match="no autograd graph through this call"):
        gather_gemm_scatter(x.requires_grad_(), w, kmap, kmap.num_out, dataflow=Dataflow.CPU_TILED)
    with pytest.raises(
        ValueError,
        match="CPU_CHUNKED is not a dataflow of convolution; choose one of AUTO, CPU_FUSED, CPU_TILED, TORCH_REF",
    ):
        sp.SubMConv3d(4, 6, 3, dataflow=Dataflow.CPU_CHUNKED)


@pytest.mark.skipif(not team.team_available(), reason="checks the rule where the fused dataflow can run")
def test_conv_fused_needs_int32_rows():
    x, w, kmap = _conv_operands()
    huge = dataclasses.replace(kmap)  # same content, a map that claims 2^31 output sites
    object.__setattr__(huge, "out_indices", torch.empty((2**31, 4), dtype=torch.int32, device="meta"))
    with pytest.raises(ValueError, match="fewer than 2.31 rows"):
        plan_conv(x, w, huge, Dataflow.CPU_FUSED)
    assert plan_conv(x, w, huge).dataflow is Dataflow.CPU_TILED


def test_group_rules():
    x, _, kmap = _conv_operands()
    expected = Dataflow.CPU_FUSED if team.team_available() else Dataflow.CPU_CHUNKED
    assert plan_group_conv(x, kmap, 27).dataflow is expected
    assert plan_group_conv(x.half(), kmap, 27).dataflow is Dataflow.TORCH_REF
    assert plan_group_aggregate(x, kmap, 27).dataflow is Dataflow.CPU
    assert plan_group_aggregate(x.half(), kmap, 27).dataflow is Dataflow.TORCH_REF
    with pytest.raises(
        ValueError,
        match=r"dataflow=CPU_CHUNKED cannot run this group convolution: it needs "
        r"float32/float64 CPU tensors; got features torch.float16 on cpu",
    ):
        plan_group_conv(x.half(), kmap, 27, Dataflow.CPU_CHUNKED)
    with pytest.raises(ValueError, match="CPU_TILED is not a dataflow of group convolution"):
        SWLKConv3d(4, 6, 5, dataflow=Dataflow.CPU_TILED)


def test_layers_keep_dataflow_and_tuning_out_of_the_state_dict():
    conv = sp.SubMConv3d(4, 6, 3, dataflow="torch_ref", tuning=SMALL_STEPS)
    swlk = SWLKConv3d(4, 6, 5, dataflow=Dataflow.CPU_CHUNKED, tuning=SMALL_STEPS)
    assert conv.dataflow is Dataflow.TORCH_REF and conv.tuning is SMALL_STEPS and "dataflow=TORCH_REF" in repr(conv)
    assert swlk.dataflow is Dataflow.CPU_CHUNKED and swlk.tuning is SMALL_STEPS
    assert list(conv.state_dict()) == list(sp.SubMConv3d(4, 6, 3).state_dict())
    assert list(swlk.state_dict()) == list(SWLKConv3d(4, 6, 5).state_dict())


# ---------------------------------------------------------------------------- every dataflow against dense conv3d


@pytest.mark.parametrize("tuning", [DEFAULT_TUNING, SMALL_STEPS], ids=["default", "small_steps"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kind", ["subm", "regular", "transposed"])
@pytest.mark.parametrize("dataflow", CONV_FLOWS_HERE)
def test_conv_dataflow_matches_dense_conv3d_forward_and_backward(dataflow, kind, groups, tuning):
    if dataflow is Dataflow.CPU_FUSED and groups > 1:
        pytest.skip("CPU_FUSED runs one group (the impossible request is tested above)")
    shape, n = (7, 6, 8), 70
    idx = _sites(shape, n, seed=3)
    gen = torch.Generator().manual_seed(4)
    feats = torch.randn(n, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    if kind == "subm":
        layer = sp.SubMConv3d(4, 6, 3, groups=groups, dataflow=dataflow, tuning=tuning)
    elif kind == "regular":
        layer = sp.SparseConv3d(4, 6, 3, stride=2, padding=1, groups=groups, dataflow=dataflow, tuning=tuning)
    else:
        layer = sp.SparseConvTranspose3d(4, 6, 2, stride=2, groups=groups, dataflow=dataflow, tuning=tuning)
    layer = layer.double()
    out = layer(sp.SparseConvTensor(feats, idx, list(shape), 1))
    up = torch.randn(out.features.shape, dtype=torch.float64, generator=gen)
    grads = torch.autograd.grad(out.features, (feats, layer.weight, layer.bias), up)
    # the dense reference: weight [C_out, *k, C_in / G] -> conv3d's [C_out, C_in / G, *k]
    dense_in = _dense(feats, idx, shape)
    w = layer.weight.permute(0, 4, 1, 2, 3)
    if kind == "subm":
        ref_full = TF.conv3d(dense_in, w, layer.bias, padding=1, groups=groups)
    elif kind == "regular":
        ref_full = TF.conv3d(dense_in, w, layer.bias, stride=2, padding=1, groups=groups)
    else:  # conv_transpose3d takes [C_in, C_out / G, *k]
        wt = w.reshape(groups, 6 // groups, 4 // groups, 2, 2, 2).transpose(1, 2).reshape(4, 6 // groups, 2, 2, 2)
        ref_full = TF.conv_transpose3d(dense_in, wt, layer.bias, stride=2, groups=groups)
    ref = _at(ref_full, out.indices)
    ref_grads = torch.autograd.grad(ref, (feats, layer.weight, layer.bias), up)
    torch.testing.assert_close(out.features, ref, rtol=1e-10, atol=1e-10)
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    if kind != "subm":  # the regular/transposed output sites are exactly the dense output's reachable sites
        reach = _dense(torch.ones(n, 1, dtype=torch.float64), idx, shape)
        ones = torch.ones(1, 1, *layer.kernel_size, dtype=torch.float64)
        hit = (
            TF.conv3d(reach, ones, stride=2, padding=1)
            if kind == "regular"
            else TF.conv_transpose3d(reach, ones, stride=2)
        )
        assert int((hit > 0).sum()) == out.indices.shape[0]


@pytest.mark.parametrize("dataflow", CONV_FLOWS_HERE)
def test_conv_dataflow_gradcheck(dataflow):
    idx = _sites((5, 5, 5), 25, seed=6)
    kmap = sp.build_submanifold_map(idx, (5, 5, 5), 1, sp.ConvGeometry.create(3, 3))
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(25, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x_, w_, b_: sparse_conv(x_, w_, kmap, 1, b_, dataflow, SMALL_STEPS), (x, w, b)
    )


def _swlk_dense_reference(layer: SWLKConv3d, feats, idx, shape):
    """SW-LK as dense convs: ``sum_k W[g(k)]^T x[p + k]`` (the full kernel ``W[g(k)]`` per offset) plus the encoding
    term ``sum_{k, p + k active} W[g(k)]^T E[k]`` (a conv of the occupancy with the kernel ``E[k] W[g(k)]``)."""
    k = layer.kernel_size
    per_offset = layer.weight[layer.group_index]  # [K, C_in, C_out]
    kernel = per_offset.permute(2, 1, 0).reshape(layer.out_channels, layer.in_channels, *k)
    pad = tuple(s // 2 for s in k)
    out = TF.conv3d(_dense(feats, idx, shape), kernel, padding=pad)
    enc = layer.effective_encoding()
    if enc is not None:
        enc_kernel = torch.einsum("kc,kco->ok", enc, per_offset).reshape(layer.out_channels, 1, *k)
        occupancy = _dense(torch.ones(feats.shape[0], 1, dtype=feats.dtype), idx, shape)
        out = out + TF.conv3d(occupancy, enc_kernel, padding=pad)
    return _at(out, idx)


@pytest.mark.parametrize("tuning", [DEFAULT_TUNING, SMALL_STEPS], ids=["default", "small_steps"])
@pytest.mark.parametrize("partition", ["center1", "thirds"])
@pytest.mark.parametrize("dataflow", GROUP_FLOWS_HERE)
def test_swlk_dataflow_matches_dense_conv3d_forward_and_backward(dataflow, partition, tuning):
    shape, n = (8, 7, 9), 90
    idx = _sites(shape, n, seed=8)
    torch.manual_seed(9)
    layer = SWLKConv3d(4, 5, 5, partition=partition, dataflow=dataflow, tuning=tuning).double()
    with torch.no_grad():
        layer.position_encoding.normal_()  # non-trivial encodings (the default init is tiny)
    feats = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    out = layer(sp.SparseConvTensor(feats, idx, list(shape), 1)).features
    with torch.no_grad():
        inference = layer(sp.SparseConvTensor(feats.detach(), idx, list(shape), 1)).features
    up = torch.randn(out.shape, dtype=torch.float64)
    leaves = (feats, layer.weight, layer.position_encoding)
    grads = torch.autograd.grad(out, leaves, up)
    ref = _swlk_dense_reference(layer, feats, idx, shape)
    ref_grads = torch.autograd.grad(ref, leaves, up)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(inference, ref.detach(), rtol=1e-10, atol=1e-10)
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dataflow", GROUP_FLOWS_HERE)
def test_swlk_dataflow_gradcheck(dataflow):
    idx = _sites((5, 5, 5), 30, seed=10)
    kmap = sp.build_submanifold_map(idx, (5, 5, 5), 1, sp.ConvGeometry.create(3, 5))
    group = torch.from_numpy(np.random.default_rng(11).integers(0, 6, 125)).long()
    gen = torch.Generator().manual_seed(12)
    leaves = (
        torch.randn(30, 3, dtype=torch.float64, generator=gen, requires_grad=True),
        torch.randn(125, 3, dtype=torch.float64, generator=gen, requires_grad=True),
        torch.randn(6, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True),
    )
    assert torch.autograd.gradcheck(lambda x, e, w: group_conv(x, e, w, kmap, group, dataflow, SMALL_STEPS), leaves)


def test_plan_layouts_are_memoised_on_the_map_per_tuning():
    """A plan's derived layouts live in the map's cache: built once per map and tuning, not per call."""
    if not team.team_available():
        pytest.skip("the row split belongs to the fused dataflow")
    x, w, kmap = _conv_operands(dtype=torch.float64)
    g = module_weight_to_grouped(torch.randn(6, 3, 3, 3, 4, dtype=torch.float64), 1)
    for _ in range(2):
        plan_conv(x, g, kmap, Dataflow.CPU_FUSED).forward(x, g, kmap.num_out)
    splits = [key for key in kmap.cache._values if key[0] == "row_split"]
    assert len(splits) == 1
    plan_conv(x, g, kmap, Dataflow.CPU_FUSED, dataclasses.replace(DEFAULT_TUNING, conv_parts_per_thread=2)).forward(
        x, g, kmap.num_out
    )
    assert len([key for key in kmap.cache._values if key[0] == "row_split"]) == 2
