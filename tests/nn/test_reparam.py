"""RepLargeKernelConv3d (a large kernel + a parallel 3^3 conv, each with its BatchNorm): the block equals the dense
F.conv3d reference, its merged layer equals the block (every large-kernel layer type, every exact SW-LK target),
inexact targets raise naming the exact ones, training works (gradcheck), the network walkers wrap / merge every
block, and the docs example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import dense_subm_conv, gradcheck_sparse_module, random_sparse_tensor
from largekernel3d.nn import (
    DepthwiseLargeKernelConv3d,
    DilatedConv3d,
    PlainExport,
    PlainLargeKernelConv3d,
    RepLargeKernelConv3d,
    SWLKConv3d,
    add_small_kernels,
    merge_small_kernel,
    merge_small_kernel_export,
    merge_small_kernels,
)
from largekernel3d.nn.convert import encoding_weight, merge_dilated, plain_from_grouped
from largekernel3d.nn.reparam import inner_offsets, place_kernel, swlk_targets
from largekernel3d.sparse import SparseBatchNorm, SparseConv3d, SparseConvTensor, SparseSequential, SubMConv3d

pytestmark = pytest.mark.usefixtures("one_thread")

DOC = Path(__file__).resolve().parents[2] / "docs" / "swlk.md"
REL = {torch.float32: 1e-5, torch.float64: 1e-10}

# id -> (large-layer factory, class of the auto merge, SW-LK auto target)
CASES = {
    "plain-k5-bias": (lambda: PlainLargeKernelConv3d(4, 5, 5, bias=True), PlainLargeKernelConv3d, None),
    "plain-k357": (lambda: PlainLargeKernelConv3d(4, 5, (3, 5, 7)), PlainLargeKernelConv3d, None),
    "subm-k5-groups2": (lambda: SubMConv3d(4, 6, 5, groups=2, bias=False), SubMConv3d, None),
    "subm-depthwise-k5": (lambda: SubMConv3d(4, 4, 5, groups=4, bias=False), SubMConv3d, None),
    "depthwise-pointwise-k5": (
        lambda: DepthwiseLargeKernelConv3d(4, 5, 5, bias=True),
        DepthwiseLargeKernelConv3d,
        None,
    ),
    "dilated-k7": (lambda: DilatedConv3d(4, 5, 7), SubMConv3d, None),
    "dilated-d122": (lambda: DilatedConv3d(4, 5, 5, dilation=(1, 2, 2)), SubMConv3d, None),
    "swlk-k5-center1-enc": (lambda: SWLKConv3d(4, 5, 5, bias=True), SWLKConv3d, "branch"),
    "swlk-k7-thirds-enc": (lambda: SWLKConv3d(4, 5, 7, partition="thirds"), SWLKConv3d, "branch"),
    "swlk-k5-center3-branch1": (
        lambda: SWLKConv3d(4, 5, 5, partition="center3", position_encoding=False, dilated_branch=True),
        SWLKConv3d,
        "branch",
    ),
    "swlk-k7-center1-branch2": (
        lambda: SWLKConv3d(4, 5, 7, position_encoding=False, dilated_branch=True),
        SubMConv3d,
        "plain",
    ),
    "swlk-k3-center1": (lambda: SWLKConv3d(4, 5, 3, position_encoding=False, bias=True), SWLKConv3d, "grouped"),
    "swlk-k357-thirds-enc": (lambda: SWLKConv3d(4, 5, (3, 5, 7), partition="thirds"), SWLKConv3d, "branch"),
}


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights, biases, encodings and BatchNorm statistics / affine parameters (never zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "position_encoding" in name or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif "bn" in name:  # BatchNorm gamma
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module


def make_block(case: str, dtype=torch.float64, seed=0, **kw) -> RepLargeKernelConv3d:
    torch.manual_seed(seed)
    block = RepLargeKernelConv3d(CASES[case][0]().to(dtype), **kw)
    return randomize(block, seed).eval()


def make_input(dtype=torch.float64, seed=1, channels=4) -> SparseConvTensor:
    return random_sparse_tensor((9, 10, 8), channels, density=0.2, batch_size=2, dtype=dtype, seed=seed)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max() / b.detach().abs().max())


def bn_reference(z: torch.Tensor, bn: nn.BatchNorm1d) -> torch.Tensor:
    return (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def dense_large(layer: nn.Module, x: SparseConvTensor) -> torch.Tensor:
    """The large layer (its depth-wise part for depth-wise + point-wise) by F.conv3d on the densified grid."""
    if isinstance(layer, SWLKConv3d):
        w = plain_from_grouped(layer.weight, layer.partition)
        if layer.dilated is not None:
            w = merge_dilated(w, layer.dilated.weight, layer.dilated.dilation)
        enc = encoding_weight(layer)
        w = torch.cat([w, enc if enc is not None else w.new_zeros((*w.shape[:-1], 1))], dim=-1)
        ones = x.features.new_ones((x.features.shape[0], 1))
        xo = SparseConvTensor(torch.cat([x.features, ones], 1), x.indices, x.spatial_shape, x.batch_size)
        return dense_subm_conv(xo, w, layer.bias)
    if isinstance(layer, DepthwiseLargeKernelConv3d):
        layer = layer.depthwise
    return dense_subm_conv(x, layer.weight, layer.bias, dilation=layer.dilation, groups=layer.groups)


def dense_block(block: RepLargeKernelConv3d, x: SparseConvTensor) -> torch.Tensor:
    y = bn_reference(dense_large(block.large, x), block.large_bn)
    y = y + bn_reference(dense_subm_conv(x, block.small.weight, None, groups=block.small.groups), block.small_bn)
    if isinstance(block.large, DepthwiseLargeKernelConv3d):
        pw = block.large.pointwise
        y = y @ pw.weight.reshape(pw.out_channels, pw.in_channels).t() + pw.bias
    return y


@pytest.mark.parametrize("case", list(CASES))
def test_block_equals_dense_reference(case):
    x = make_input()
    block = make_block(case)
    out = block(x)
    assert torch.equal(out.indices, x.indices)
    ref = dense_block(block, x)
    assert ref.abs().max() > 1.0  # the random statistics give non-trivial outputs
    assert rel_err(out.features, ref) <= 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
def test_auto_merge_equals_block(case, dtype):
    x = make_input(dtype)
    block = make_block(case, dtype)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    merged = block.merge()
    assert all(torch.equal(v, before[k]) for k, v in block.state_dict().items())  # the block is left as it was
    _, cls, swlk_target = CASES[case]
    assert type(merged) is cls
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in merged.modules())
    assert next(merged.parameters()).dtype == dtype
    out, ref = merged(x).features, block(x).features
    assert rel_err(out, ref) <= REL[dtype]
    if swlk_target is not None:
        assert swlk_targets(block.large)[0] == swlk_target
    if swlk_target == "branch":  # the SW-LK layer keeps its partition and encoding; the 3^3 kernel is its branch
        assert merged.partition == block.large.partition and merged.dilated.dilation == (1, 1, 1)
        assert (merged.position_encoding is None) == (block.large.position_encoding is None)


def test_merge_math_plain_is_folded_padded_sum():
    block = make_block("plain-k5-bias")
    merged = merge_small_kernel(block)
    s_l = block.large_bn.weight / torch.sqrt(block.large_bn.running_var + block.large_bn.eps)
    s_s = block.small_bn.weight / torch.sqrt(block.small_bn.running_var + block.small_bn.eps)
    want = block.large.weight * s_l.view(-1, 1, 1, 1, 1)
    want[:, 1:4, 1:4, 1:4, :] += block.small.weight * s_s.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(merged.weight, want, rtol=0, atol=1e-14)
    bias = (block.large.bias - block.large_bn.running_mean) * s_l + block.large_bn.bias
    bias = bias - block.small_bn.running_mean * s_s + block.small_bn.bias
    torch.testing.assert_close(merged.bias, bias, rtol=0, atol=1e-14)
    assert merged.indice_key == block.large.indice_key


def test_dilated_merge_is_the_merge_dilated_placement():
    block = make_block("dilated-k7")
    merged = merge_small_kernel(block)
    assert merged.kernel_size == (7, 7, 7) and merged.dilation == (1, 1, 1)
    small_only = place_kernel(torch.ones(1, 3, 3, 3, 1, dtype=torch.float64), (7, 7, 7))
    large_only = merge_dilated(
        torch.zeros(1, 7, 7, 7, 1, dtype=torch.float64), torch.ones(1, 3, 3, 3, 1, dtype=torch.float64), (3, 3, 3)
    )
    nonzero = (merged.weight != 0).any(0).any(-1)
    assert torch.equal(nonzero, (small_only + large_only)[0, ..., 0] != 0)
    assert int(nonzero.sum()) == 27 + 27 - 1  # the centre tap is shared


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "case, exact",
    [
        ("swlk-k5-center1-enc", ("branch",)),
        ("swlk-k5-center3-branch1", ("branch", "plain")),
        ("swlk-k7-center1-branch2", ("plain",)),
        ("swlk-k3-center1", ("grouped", "branch", "plain")),
    ],
)
def test_swlk_targets_exact_or_refused(case, exact, dtype):
    x = make_input(dtype)
    block = make_block(case, dtype)
    ref = block(x).features
    assert swlk_targets(block.large) == exact
    for target in ("grouped", "branch", "plain"):
        if target in exact:
            merged = block.merge(target)
            assert type(merged) is (SubMConv3d if target == "plain" else SWLKConv3d)
            assert rel_err(merged(x).features, ref) <= REL[dtype], target
        else:
            with pytest.raises(ValueError, match=f"target={target!r}.*use target={exact[0]!r}"):
                block.merge(target)


def test_grouped_refusal_names_a_shared_offset():
    """center1, k = 7: the group of offset (1, 0, -1) also holds (3, 0, -2)-like offsets; center3 makes the inner
    3^3 one group; both refuse the grouped merge and name the shared offsets."""
    block = RepLargeKernelConv3d(SWLKConv3d(2, 2, 7, position_encoding=False)).eval()
    with pytest.raises(
        ValueError,
        match=r"'center1' partition of \(7, 7, 7\) shares one weight between offset "
        r"\(-1, -1, -1\).*offset \(-3, -3, -3\) \(27 offsets",
    ):
        block.merge("grouped")
    group = block.large.group_index
    flat = [(o[0] + 3) * 49 + (o[1] + 3) * 7 + o[2] + 3 for o in ((1, 0, -1), (3, 0, -2), (2, 0, -3), (1, 1, -1))]
    assert group[flat[0]] == group[flat[1]] == group[flat[2]] != group[flat[3]]
    with pytest.raises(ValueError, match=r"'thirds' partition.*\(27 offsets in that group\)"):
        make_block("swlk-k7-thirds-enc").merge("grouped")
    block = RepLargeKernelConv3d(SWLKConv3d(2, 2, 7, partition="center3", position_encoding=False)).eval()
    with pytest.raises(ValueError, match=r"'center3' partition.*\(27 offsets in that group\)"):
        block.merge("grouped")
    group = block.large.group_index
    assert len(set(group[inner_offsets((7, 7, 7))].tolist())) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_encoding_plus_dilated_branch_has_only_the_export(dtype):
    x = make_input(dtype)
    torch.manual_seed(0)
    block = randomize(RepLargeKernelConv3d(SWLKConv3d(4, 5, 7, dilated_branch=True, bias=True).to(dtype)), 3).eval()
    assert swlk_targets(block.large) == ()
    with pytest.raises(ValueError, match="merge_small_kernel_export"):
        block.merge()
    with pytest.raises(ValueError, match="target='branch'.*dilation \\(2, 2, 2\\).*merge_small_kernel_export"):
        block.merge("branch")
    exp = merge_small_kernel_export(block)
    assert isinstance(exp, PlainExport) and exp.encoding_weight is not None
    out = exp.apply(x.features, block.large.kernel_map(x))
    assert rel_err(out, block(x).features) <= REL[dtype]
    assert rel_err(out, dense_block(block, x)) <= REL[dtype]
    # exact for the other SW-LK blocks as well
    other = make_block("swlk-k5-center1-enc", dtype)
    assert (
        rel_err(merge_small_kernel_export(other).apply(x.features, other.large.kernel_map(x)), other(x).features)
        <= REL[dtype]
    )
    with pytest.raises(TypeError, match="merge_small_kernel"):
        merge_small_kernel_export(make_block("plain-k5-bias"))


@pytest.mark.parametrize("case", ["swlk-k5-center1-enc", "depthwise-pointwise-k5", "plain-k357", "dilated-d122"])
def test_training_forward_backward_and_gradcheck(case):
    x = random_sparse_tensor((4, 5, 4), 4, num_sites=12, dtype=torch.float64, seed=5)
    block = make_block(case).train()
    before = block.large_bn.running_mean.clone()
    out = block(x)
    out.features.square().sum().backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in block.named_parameters()
        if not n.endswith("position_encoding")
    ), case
    assert not torch.equal(block.large_bn.running_mean, before)  # batch statistics in training mode
    assert gradcheck_sparse_module(block, x)


def test_kernel_maps_are_shared_by_key():
    x = make_input()
    block2 = RepLargeKernelConv3d(SWLKConv3d(4, 5, 5, indice_key="lk")).double()
    assert block2.small.indice_key == "lk_small"
    block2(x)
    assert {"lk", "lk_small"} <= set(x.indice_dict)
    merged = randomize(block2, 4).eval().merge("branch")
    assert merged.indice_key == "lk" and merged.dilated.indice_key == "lk_small"
    assert merged(x).features.shape == (x.features.shape[0], 5)
    with pytest.raises(ValueError, match="target='plain'.*position encoding.*use target='branch'"):
        merge_small_kernel(block2, "plain")
    dil = RepLargeKernelConv3d(DilatedConv3d(4, 5, 7, indice_key="d3"), small_indice_key="k3").double().eval()
    assert dil.small.indice_key == "k3" and dil.merge().indice_key == "d3_merged"
    assert RepLargeKernelConv3d(SubMConv3d(4, 4, 5)).small.indice_key is None


def test_errors_are_clear():
    block = make_block("plain-k5-bias")
    with pytest.raises(RuntimeError, match=r"eval mode.*block.eval\(\)"):
        block.train().merge()
    block.eval()
    with pytest.raises(ValueError, match="target must be one of"):
        block.merge("nearest")
    with pytest.raises(ValueError, match="target='branch' is for SWLKConv3d"):
        block.merge("branch")
    bad = make_block("plain-k5-bias")
    bad.small = SubMConv3d(4, 5, 3, groups=1, bias=False).double()
    bad.large_bn = SparseBatchNorm(4).double().eval()
    with pytest.raises(ValueError, match="large_bn must be a BatchNorm over the 5 channels"):
        bad.merge()
    bad = make_block("subm-k5-groups2")
    bad.small = SubMConv3d(4, 6, 3, groups=1, bias=False).double()
    with pytest.raises(ValueError, match=r"small \(in_channels, out_channels, groups.*\(4, 6, 1, .*needs \(4, 6, 2"):
        bad.merge()
    bad.small = SubMConv3d(4, 6, 5, groups=2, bias=False).double()
    with pytest.raises(ValueError, match="needs"):
        bad.merge()
    with pytest.raises(TypeError, match="large must be a large-kernel layer"):
        RepLargeKernelConv3d(SparseConv3d(4, 4, 3, stride=2))
    with pytest.raises(TypeError, match="large must be a large-kernel layer"):
        RepLargeKernelConv3d(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="odd kernel of at least 3"):
        RepLargeKernelConv3d(SubMConv3d(4, 4, 1))
    with pytest.raises(TypeError, match="needs a RepLargeKernelConv3d"):
        merge_small_kernel(SubMConv3d(4, 4, 5))


def small_network(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return SparseSequential(
        SWLKConv3d(4, 6, 5, indice_key="a"),
        SparseBatchNorm(6),
        nn.ReLU(),
        SparseSequential(
            DepthwiseLargeKernelConv3d(6, 6, 5, indice_key="a"), nn.ReLU(), DilatedConv3d(6, 5, 5, indice_key="d2")
        ),
        SubMConv3d(5, 5, 3, indice_key="s3"),
        SparseBatchNorm(5),
        PlainLargeKernelConv3d(5, 3, 7, indice_key="p7"),
    ).to(dtype)


def test_walkers_wrap_train_and_merge_every_block():
    x = make_input()
    net = small_network()
    assert add_small_kernels(net) is net
    blocks = [m for m in net.modules() if isinstance(m, RepLargeKernelConv3d)]
    assert [b.kind for b in blocks] == ["swlk", "depthwise", "dilated", "plain"]  # the 3^3 SubMConv3d is left alone
    assert add_small_kernels(net) is net and sum(isinstance(m, RepLargeKernelConv3d) for m in net.modules()) == 4
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        net(x).features.square().mean().backward()
        opt.step()
    randomize(net, 7).eval()
    ref = net(x).features
    with pytest.raises(RuntimeError, match="eval mode"):
        merge_small_kernels(net.train())
    net.eval()
    merged = merge_small_kernels(net)
    assert not any(isinstance(m, RepLargeKernelConv3d) for m in merged.modules())
    assert sum(isinstance(m, RepLargeKernelConv3d) for m in net.modules()) == 4  # the original is unchanged
    assert rel_err(merged(x).features, ref) <= 1e-10
    assert rel_err(net(x).features, ref) == 0
    with pytest.raises(ValueError, match="target='plain'.*position encoding"):  # the SW-LK block has an encoding
        merge_small_kernels(net, target="plain")
    merge_small_kernels(net, inplace=True)
    assert not any(isinstance(m, RepLargeKernelConv3d) for m in net.modules())
    assert rel_err(net(x).features, ref) <= 1e-10


def test_walker_on_a_model_basic_block():
    import largekernel3d.sparse as ours
    from largekernel3d.models.blocks import BasicBlock, ConvSpec

    x = make_input(channels=6)
    torch.manual_seed(0)
    block = BasicBlock(6, 6, ConvSpec("swlk", 5), level=1, backend=ours).double()
    add_small_kernels(block)
    assert isinstance(block.conv1, RepLargeKernelConv3d) and isinstance(block.conv2, RepLargeKernelConv3d)
    block(x).features.sum().backward()
    randomize(block, 2).eval()
    merged = merge_small_kernels(block)
    assert isinstance(merged.conv1, SWLKConv3d) and merged.conv1.dilated.indice_key == block.conv1.small.indice_key
    assert rel_err(merged(x).features, block(x).features) <= 1e-10


def test_docs_example_runs():
    text = DOC.read_text()
    section = text.split("## Re-parameterisation: merging a parallel small kernel", 1)
    assert len(section) == 2, "docs/swlk.md lacks the re-parameterisation section"
    code = re.findall(r"```python\n(.*?)```", section[1], re.S)
    assert code, "the section has no python example"
    namespace: dict = {}
    exec(compile(code[0], str(DOC), "exec"), namespace)
    assert namespace["error"] <= 1e-5


def test_largekernel3d_seg_small_kernel_branch_trains_and_merges():
    from largekernel3d.models import LargeKernel3DSeg

    kw = dict(
        stage_kernel_sizes=(5, 3, 5, 5),
        stage_conv_types=("swlk", "plain", "depthwise", "dilated"),
        layers=(1,) * 8,
        planes=(8, 8, 8, 8, 8, 8, 8, 8),
        init_dim=8,
    )
    torch.manual_seed(0)
    net = LargeKernel3DSeg(4, 3, small_kernel_branch=True, **kw).double()
    blocks = [m for m in net.modules() if isinstance(m, RepLargeKernelConv3d)]
    assert [b.kind for b in blocks] == ["swlk"] * 2 + ["depthwise"] * 2 + ["dilated"] * 2  # the 3^3 stage: none
    assert blocks[0].small.indice_key == "subm1_k3" and blocks[-1].small.indice_key == "subm4_k3"
    plain_params = sum(p.numel() for p in LargeKernel3DSeg(4, 3, **kw).parameters())
    assert sum(p.numel() for p in net.parameters()) == plain_params + sum(
        p.numel() for b in blocks for m in (b.small, b.large_bn, b.small_bn) for p in m.parameters()
    )
    x = random_sparse_tensor((32, 32, 32), 4, density=0.03, batch_size=2, dtype=torch.float64, seed=8)
    net(x).features.square().mean().backward()
    assert blocks[0].small.weight.grad.abs().sum() > 0
    randomize(net, 9).eval()
    ref = net(x).features
    merged = merge_small_kernels(net)
    assert not any(isinstance(m, RepLargeKernelConv3d) for m in merged.modules())
    assert rel_err(merged(x).features, ref) <= 1e-10
    with pytest.raises(ValueError, match="small_kernel_branch must be a bool"):
        LargeKernel3DSeg(4, 3, small_kernel_branch="yes", **kw)
