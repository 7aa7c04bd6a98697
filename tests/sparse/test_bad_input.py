"""Bad input gets a clear ``TypeError``/``ValueError`` that names the argument (never a crash deep inside
torch, never a silent wrong answer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_sparse_tensor

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor


def _indices(rows, dtype=torch.int32):
    return torch.tensor(rows, dtype=dtype)


FEATS2 = torch.randn(2, 3)


# -- the tensor -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.int16, torch.uint8, torch.bool])
def test_indices_must_be_int32_or_int64(dtype):
    with pytest.raises(TypeError, match=r"indices must be int32 or int64"):
        SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [0, 2, 2, 2]]).to(dtype), [4, 4, 4], 1)


def test_int64_indices_are_accepted():
    x = SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [0, 2, 2, 2]], torch.int64), [4, 4, 4], 1)
    assert lsp.SubMConv3d(3, 2, 3)(x).features.shape == (2, 2)


def test_indices_must_be_a_tensor():
    with pytest.raises(TypeError, match="indices must be a torch.Tensor"):
        SparseConvTensor(FEATS2, np.zeros((2, 4), dtype=np.int32), [4, 4, 4], 1)


@pytest.mark.parametrize("rows", [[[0, 1, 1], [0, 2, 2]], [[0, 1, 1, 1, 1], [0, 2, 2, 2, 2]]])
def test_indices_width_must_be_one_plus_ndim(rows):
    with pytest.raises(ValueError, match=r"indices must have shape \[N, 4\]"):
        SparseConvTensor(FEATS2, _indices(rows), [4, 4, 4], 1)


def test_indices_must_be_2d():
    with pytest.raises(ValueError, match=r"indices must have shape"):
        SparseConvTensor(FEATS2, torch.zeros(2, 4, 1, dtype=torch.int32), [4, 4, 4], 1)


def test_negative_coordinates():
    with pytest.raises(ValueError, match=r"indices\[:, 2\] has negative coordinates"):
        SparseConvTensor(FEATS2, _indices([[0, 1, -1, 1], [0, 2, 2, 2]]), [4, 4, 4], 1)


def test_coordinates_outside_spatial_shape():
    with pytest.raises(ValueError, match=r"indices\[:, 3\] has coordinates outside spatial_shape\[2\]=4"):
        SparseConvTensor(FEATS2, _indices([[0, 1, 1, 4], [0, 2, 2, 2]]), [4, 4, 4], 1)


@pytest.mark.parametrize("batch", [-1, 2])
def test_batch_index_outside_batch_size(batch):
    with pytest.raises(ValueError, match=r"batch index.*batch_size=2"):
        SparseConvTensor(FEATS2, _indices([[batch, 1, 1, 1], [0, 2, 2, 2]]), [4, 4, 4], 2)


def test_duplicate_sites():
    with pytest.raises(ValueError, match=r"indices contains duplicate sites \(1 repeated\)"):
        SparseConvTensor(FEATS2, _indices([[0, 1, 2, 3], [0, 1, 2, 3]]), [4, 4, 4], 1)
    # the same coordinates in two batch elements are different sites
    SparseConvTensor(FEATS2, _indices([[0, 1, 2, 3], [1, 1, 2, 3]]), [4, 4, 4], 2)


def test_feature_rows_must_match_index_rows():
    with pytest.raises(ValueError, match=r"features has 2 rows but indices has 3"):
        SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [0, 2, 2, 2], [0, 3, 3, 3]]), [4, 4, 4], 1)


@pytest.mark.parametrize("feats", [torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.bool)])
def test_features_must_be_floating(feats):
    with pytest.raises(TypeError, match=r"features must be floating point"):
        SparseConvTensor(feats, _indices([[0, 1, 1, 1], [0, 2, 2, 2]]), [4, 4, 4], 1)


def test_features_must_be_2d():
    with pytest.raises(ValueError, match=r"features must have shape \[N, C\]"):
        SparseConvTensor(torch.randn(2), _indices([[0, 1, 1, 1], [0, 2, 2, 2]]), [4, 4, 4], 1)


@pytest.mark.parametrize(
    "shape,err,msg",
    [
        ([4, 0, 4], ValueError, "spatial_shape entries must be positive"),
        ([], ValueError, "spatial_shape must have at least one axis"),
        (4, TypeError, "spatial_shape must be a sequence"),
    ],
)
def test_bad_spatial_shape(shape, err, msg):
    with pytest.raises(err, match=msg):
        SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [0, 2, 2, 2]]), shape, 1)


@pytest.mark.parametrize("bs,err", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_batch_size(bs, err):
    with pytest.raises(err, match="batch_size"):
        SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [0, 2, 2, 2]]), [4, 4, 4], bs)


def test_grid_too_large_for_keys():
    with pytest.raises(ValueError, match="more than 2\\*\\*62 cells"):
        SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [0, 2, 2, 2]]), [2**21] * 3, 1)


def test_features_and_indices_on_different_devices():
    """CUDA is absent here: the meta device exercises the same device check."""
    with pytest.raises(ValueError, match=r"features are on meta but indices on cpu"):
        SparseConvTensor(torch.empty(2, 3, device="meta"), _indices([[0, 1, 1, 1], [0, 2, 2, 2]]), [4, 4, 4], 1)
    with pytest.raises(ValueError, match=r"features are on cpu but indices on meta"):
        SparseConvTensor(FEATS2, torch.zeros(2, 4, dtype=torch.int32, device="meta"), [4, 4, 4], 1)


def test_replace_feature_and_setter_check_rows():
    x = random_sparse_tensor((4, 4, 4), 2, num_sites=5)
    with pytest.raises(ValueError, match="replace_feature got 4 rows for 5 sites"):
        x.replace_feature(torch.randn(4, 2))
    with pytest.raises(ValueError, match="new features have 6 rows"):
        x.features = torch.randn(6, 2)


# -- the layers -----------------------------------------------------------------------------------
def test_channel_mismatch_with_the_layer():
    x = random_sparse_tensor((4, 4, 4), 3, num_sites=5, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"SubMConv3d expects in_channels=4 but the input features have 3"):
        lsp.SubMConv3d(4, 8, 3)(x)


def test_dimension_mismatch_with_the_layer():
    x = random_sparse_tensor((4, 4), 3, num_sites=5, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"SubMConv3d is 3-D but the input has spatial_shape \[4, 4\]"):
        lsp.SubMConv3d(3, 8, 3)(x)
    with pytest.raises(ValueError, match=r"SparseMaxPool3d is 3-D"):
        lsp.SparseMaxPool3d(2, 2)(x)


def test_layer_needs_a_sparse_tensor():
    with pytest.raises(TypeError, match="SubMConv3d expects a SparseConvTensor, got Tensor"):
        lsp.SubMConv3d(3, 8, 3)(torch.randn(4, 3))
    with pytest.raises(TypeError, match="SparseGlobalMaxPool expects a SparseConvTensor"):
        lsp.SparseGlobalMaxPool()(torch.randn(4, 3))


def test_non_floating_features_reaching_a_layer():
    x = random_sparse_tensor((4, 4, 4), 3, num_sites=5, dtype=torch.float32)
    x_int = x.replace_feature(torch.ones(5, 3, dtype=torch.int64))  # replace_feature does not revalidate
    with pytest.raises(TypeError, match="SubMConv3d needs floating-point features, got torch.int64"):
        lsp.SubMConv3d(3, 8, 3)(x_int)


def test_dtype_mismatch_between_features_and_weight():
    x = random_sparse_tensor((4, 4, 4), 3, num_sites=5, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"SubMConv3d weight is torch.float32 but the input features are torch.float64"):
        lsp.SubMConv3d(3, 8, 3)(x)


def test_device_mismatch_between_features_and_weight():
    """A module on another device than its input (simulated with the meta device)."""
    x = random_sparse_tensor((4, 4, 4), 3, num_sites=5, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"SparseConv3d weight is on meta but the input is on cpu"):
        lsp.SparseConv3d(3, 8, 3).to("meta")(x)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(kernel_size=0), "kernel_size entries must be >= 1"),
        (dict(kernel_size=(3, 3)), "kernel_size must have 3 entries"),
        (dict(stride=0), "stride entries must be >= 1"),
        (dict(padding=-1), "padding entries must be >= 0"),
        (dict(dilation=0), "dilation entries must be >= 1"),
        (dict(groups=3), "divisible by groups=3"),
        (dict(groups=0), "groups must be a positive int"),
        (dict(kernel_size="3"), "kernel_size must have 3 entries"),
    ],
)
def test_bad_layer_arguments(kwargs, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        lsp.SparseConv3d(4, 8, **{"kernel_size": 3, **kwargs})


def test_bad_channel_counts():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        lsp.SubMConv3d(0, 8, 3)
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        lsp.SubMConv3d(4, 2.5, 3)


def test_submanifold_stride_must_be_one():
    with pytest.raises(ValueError, match="stride must be 1"):
        lsp.SubMConv3d(4, 8, 3, stride=2)
    with pytest.raises(ValueError, match="stride must be 1"):
        lsp.SparseMaxPool3d(3, 2, subm=True)


def test_output_padding_is_rejected():
    with pytest.raises(ValueError, match="output_padding is not supported"):
        lsp.SparseConvTranspose3d(4, 8, 3, stride=2, output_padding=1)


@pytest.mark.parametrize(
    "module",
    [
        lambda: lsp.SparseConv3d(3, 4, 5),
        lambda: lsp.SparseConv3d(3, 4, 3, dilation=2),
        lambda: lsp.SparseMaxPool3d(5, 2),
        lambda: lsp.SparseAvgPool3d(4, 1),
    ],
    ids=["k5", "dilated", "maxpool", "avgpool"],
)
def test_empty_output_grid(module):
    x = random_sparse_tensor((3, 6, 6), 3, num_sites=5, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"give an empty output grid"):
        module()(x)


def test_transposed_conv_with_padding_producing_an_empty_grid():
    x = random_sparse_tensor((1, 3, 3), 3, num_sites=2, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"gives an empty grid"):
        lsp.SparseConvTranspose3d(3, 4, 1, stride=2, padding=1)(x)


# -- inverse conv and indice keys -----------------------------------------------------------------
def _down(x, key="down", k=3):
    return lsp.SparseConv3d(x.features.shape[1], 4, k, stride=2, padding=1, indice_key=key).to(x.features.dtype)(x)


def test_inverse_conv_needs_an_indice_key():
    with pytest.raises(TypeError):
        lsp.SparseInverseConv3d(4, 3, 3)  # indice_key is a required argument
    with pytest.raises(ValueError, match="needs indice_key"):
        lsp.SparseConvolution(3, 4, 3, 3, inverse=True)


def test_inverse_conv_with_unknown_key():
    x = random_sparse_tensor((6, 6, 6), 3, num_sites=20, dtype=torch.float32)
    y = _down(x)
    with pytest.raises(
        ValueError, match=r"indice_key='nope' is not in the input's indice_dict \(known keys: \['down'\]\)"
    ):
        lsp.SparseInverseConv3d(4, 3, 3, indice_key="nope")(y)


def test_inverse_conv_with_a_submanifold_key():
    x = random_sparse_tensor((6, 6, 6), 3, num_sites=20, dtype=torch.float32)
    y = lsp.SubMConv3d(3, 4, 3, indice_key="subm")(x)
    with pytest.raises(ValueError, match=r"indice_key='subm' holds a submanifold map"):
        lsp.SparseInverseConv3d(4, 3, 3, indice_key="subm")(y)


def test_inverse_conv_with_another_kernel_size():
    x = random_sparse_tensor((6, 6, 6), 3, num_sites=20, dtype=torch.float32)
    y = _down(x)
    with pytest.raises(ValueError, match=r"kernel_size=\(2, 2, 2\) differs from the paired conv's \(3, 3, 3\)"):
        lsp.SparseInverseConv3d(4, 3, 2, indice_key="down")(y)


def test_inverse_conv_on_other_sites():
    x = random_sparse_tensor((6, 6, 6), 3, num_sites=20, dtype=torch.float32)
    y = _down(x)
    other = SparseConvTensor(y.features[:-1], y.indices[:-1], y.spatial_shape, 1, indice_dict=y.indice_dict)
    with pytest.raises(ValueError, match=r"input sites \(or spatial_shape\) differ from the output"):
        lsp.SparseInverseConv3d(4, 3, 3, indice_key="down")(other)


def test_inverse_conv_channel_mismatch():
    x = random_sparse_tensor((6, 6, 6), 3, num_sites=20, dtype=torch.float32)
    y = _down(x)
    with pytest.raises(ValueError, match=r"SparseInverseConv3d expects in_channels=5"):
        lsp.SparseInverseConv3d(5, 3, 3, indice_key="down")(y)


def test_output_grid_too_large_for_keys():
    """The input grid fits int64 keys but a transposed conv's 8x larger output grid would not: it used to
    overflow silently (garbage sites, negative batch indices)."""
    x = SparseConvTensor(FEATS2, _indices([[0, 1, 1, 1], [1, 2, 2, 2]]), [2**20] * 3, 2)
    with pytest.raises(ValueError, match="more than 2\\*\\*62 cells"):
        lsp.SparseConvTranspose3d(3, 4, 2, stride=2)(x)
    with pytest.raises(ValueError, match="more than 2\\*\\*62 cells"):
        lsp.SparseConv3d(3, 4, 1, padding=2**19)(x)  # padding grows the output grid too
    lsp.SparseConv3d(3, 4, 2, stride=2)(x)  # a down-sampling conv is fine
