"""Official-layer loading failure modes (the whole-model issue): the dilated branch's dilation is
configurable and checked, spconv >= 2.2 (KRSC) files load with the default layout and wrong layouts are
explained, ungrouped V1 weights warn, 1³ convs read as spconv computes them, and nothing is written before
everything is validated."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from helpers import random_sparse_tensor

from largekernel3d.nn import SWLKConv3d, load_official_v1, load_official_v2, to_submconv
from largekernel3d.nn.convert import grouped_from_plain, linear_from_pointwise, relative_grouping_deviation, to_krsc
from largekernel3d.nn.partition import SpatialPartition
from largekernel3d.sparse import SubMConv3d

pytestmark = pytest.mark.usefixtures("one_thread")


def _x(c=4, seed=0):
    return random_sparse_tensor((13, 12, 14), c, density=0.1, dtype=torch.float64, seed=seed)


def _v1_krsc(c=4, k=7, seed=0, grouped=True):
    """A V1 SpatialGroupConv as spconv >= 2.2 writes it (KRSC, no biases as in the segmentation network);
    group-constant over the official per-axis edges [0, k//2, k//2+1, k] unless grouped=False."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c, k, k, k, c, generator=g, dtype=torch.float64)
    if grouped:
        e = (0, k // 2, k // 2 + 1, k)
        for a, b, d in itertools.product(range(3), repeat=3):
            part = w[:, e[a] : e[a + 1], e[b] : e[b + 1], e[d] : e[d + 1], :]
            part.copy_(part.mean(dim=(1, 2, 3), keepdim=True).expand_as(part))
    return {"block.weight": w, "conv3x3_1.weight": torch.randn(c, 3, 3, 3, c, generator=g, dtype=torch.float64)}


def _v1_layer(dilation=None, k=7, c=4):
    return SWLKConv3d(c, c, k, position_encoding=False, dilated_branch=True, dilated_dilation=dilation).double()


def test_segmentation_dilation_3_reproduces_the_official_layer():
    """block (plain k³ conv) + conv3x3_1 (3³, dilation 3) with the stored weights, from plain SubM convs."""
    x = _x()
    state = _v1_krsc()
    layer = _v1_layer(dilation=3)
    load_official_v1(layer, state, branch_dilation=3)
    block, branch = SubMConv3d(4, 4, 7, bias=False).double(), SubMConv3d(4, 4, 3, dilation=3, bias=False).double()
    with torch.no_grad():
        block.weight.copy_(state["block.weight"])
        branch.weight.copy_(state["conv3x3_1.weight"])
    ref = block(x).features + branch(x).features
    torch.testing.assert_close(layer(x).features, ref)
    # the detection default (k // 2 - 1 = 2) is a different function: ~100 % off
    det = _v1_layer()
    load_official_v1(det, state)
    assert float((det(x).features - ref).detach().norm() / ref.detach().norm()) > 0.1
    # merged into one plain 7³ kernel (taps at 0, 3, 6) it is still the same function
    torch.testing.assert_close(to_submconv(layer)(x).features, ref)


def test_a_branch_dilation_that_differs_from_the_layer_is_refused_before_writing():
    layer = _v1_layer()  # k // 2 - 1 = 2
    before = layer.weight.detach().clone()
    with pytest.raises(ValueError, match="dilated_dilation=3"):
        load_official_v1(layer, _v1_krsc(), branch_dilation=3)
    assert torch.equal(layer.weight, before)


def test_dilated_dilation_options_are_checked():
    assert SWLKConv3d(2, 2, 5, dilated_branch=True, dilated_dilation=3).dilated.dilation == (3, 3, 3)
    assert SWLKConv3d(2, 2, 7, dilated_branch=True).dilated.dilation == (2, 2, 2)
    assert SWLKConv3d(2, 2, 3, dilated_branch=True, dilated_dilation=(1, 2, 3)).dilated.dilation == (1, 2, 3)
    with pytest.raises(ValueError, match="dilated_branch=True"):
        SWLKConv3d(2, 2, 7, dilated_dilation=3)
    with pytest.raises(ValueError, match="dilated_dilation"):
        SWLKConv3d(2, 2, 7, dilated_branch=True, dilated_dilation=0)
    with pytest.raises(ValueError, match="kernel_size >= 5"):
        SWLKConv3d(2, 2, 3, dilated_branch=True)


def test_spconv23_files_load_with_the_default_layout_and_wrong_layouts_are_explained():
    state = _v1_krsc()  # KRSC [C_out, 7, 7, 7, C_in]: what spconv 2.3.8 writes
    layer = _v1_layer(3)
    load_official_v1(layer, state)  # default: auto
    torch.testing.assert_close(layer.weight, grouped_from_plain(state["block.weight"], layer.partition))
    torch.testing.assert_close(layer.dilated.weight, state["conv3x3_1.weight"])
    with pytest.raises(ValueError, match=r"fits layout \['KRSC'\].*layout='auto'"):
        load_official_v1(_v1_layer(3), state, block_layout="RSKC")
    with pytest.raises(ValueError, match="spconv >= 2.2"):
        to_krsc(torch.randn(4, 6, 6, 6, 4), "auto", (7, 7, 7), 4, 4, "w")
    # RSKC (spconv 2.1) of the same weight loads to the same layer
    rskc = {k: v.permute(1, 2, 3, 0, 4).contiguous() for k, v in state.items()}
    other = _v1_layer(3)
    load_official_v1(other, rskc)
    torch.testing.assert_close(other.weight, layer.weight)


def test_ungrouped_weights_warn_with_their_meaning_and_grouped_ones_do_not():
    layer = _v1_layer(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_official_v1(layer, _v1_krsc()) < 1e-12
    state = _v1_krsc(grouped=False)
    with pytest.warns(UserWarning, match="official evaluation used this ungrouped weight"):
        deviation = load_official_v1(layer, state)
    p = SpatialPartition.create(7)
    assert relative_grouping_deviation(state["block.weight"], p) == pytest.approx(
        deviation / float(state["block.weight"].abs().max())
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_official_v1(layer, state, deviation_tolerance=None)
        load_official_v1(layer, state, deviation_tolerance=10.0)


def test_a_bad_position_embedding_or_bias_leaves_the_layer_untouched():
    v2 = {"block.weight": torch.randn(3, 3, 3, 4, 4), "block.position_embedding": torch.randn(125, 4)}
    layer = SWLKConv3d(4, 4, 7)  # needs 343 rows
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match="position_embedding"):
        load_official_v2(layer, v2)
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k]), k
    v1 = dict(_v1_krsc(), **{"block.bias": torch.randn(5)})
    layer = SWLKConv3d(4, 4, 7, position_encoding=False, dilated_branch=True, bias=True).double()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match="bias"):
        load_official_v1(layer, v1)
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_pointwise_weights_read_as_spconv_computes_them():
    spconv = pytest.importorskip("spconv.pytorch")
    conv = spconv.SubMConv3d(3, 5, 1, bias=False)
    with torch.no_grad():
        conv.weight.normal_()
    x = random_sparse_tensor((6, 6, 6), 3, density=0.3, dtype=torch.float32, seed=1)
    ref = conv(spconv.SparseConvTensor(x.features, x.indices, x.spatial_shape, 1)).features
    lin = linear_from_pointwise(conv.weight.detach(), 3, 5, "final.weight")
    torch.testing.assert_close(x.features @ lin.t(), ref)
    with pytest.raises(ValueError, match="final.weight"):
        linear_from_pointwise(torch.randn(5, 3, 1, 1, 1), 3, 5, "final.weight")
