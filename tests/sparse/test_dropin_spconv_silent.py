"""Input mistakes that spconv 2.3 runs without complaint (returning wrong numbers) raise here, and the message says
so and names the fix. Where spconv is installed the tests also show that it really returns other numbers than on
the corrected input, so the claim in the message stays true."""

from __future__ import annotations

import pytest
import torch

import largekernel3d.sparse as lsp


def _sites(n: int = 150, size: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.unique(torch.randint(0, size, (n, 3), generator=g), dim=0)
    return torch.cat([torch.zeros(len(idx), 1, dtype=torch.long), idx], 1).int()


def _spconv_subm(features, indices, spatial_shape, batch_size):
    sp = pytest.importorskip("spconv.pytorch")
    torch.manual_seed(0)
    conv = sp.SubMConv3d(features.shape[1], 2, 3, bias=False)
    with torch.no_grad():
        return conv(sp.SparseConvTensor(features, indices, spatial_shape, batch_size)).features


def test_spatial_shape_one_too_small_names_the_size_and_spconvs_silence():
    idx = _sites()
    feats = torch.randn(idx.shape[0], 3)
    with pytest.raises(
        ValueError,
        match=r"spatial_shape\[0\] must be at least 8: use spatial_shape\[0\]=8.*"
        r"spconv does not check this and would have run with silently wrong",
    ):
        lsp.SparseConvTensor(feats, idx, [7, 8, 8], 1)


def test_spconv_really_differs_with_a_too_small_spatial_shape():
    idx = _sites()
    feats = torch.randn(idx.shape[0], 3)
    good = _spconv_subm(feats, idx, [8, 8, 8], 1)
    wrong = _spconv_subm(feats, idx, [7, 8, 8], 1)
    assert not torch.allclose(good, wrong)


def test_duplicate_sites_message_and_spconv_differs():
    idx = _sites()
    feats = torch.randn(idx.shape[0], 3)
    dup_idx, dup_feats = torch.cat([idx, idx[:3]]), torch.cat([feats, feats[:3]])
    with pytest.raises(ValueError, match="duplicate sites.*merge them first.*spconv does not check this"):
        lsp.SparseConvTensor(dup_feats, dup_idx, [8, 8, 8], 1)
    good = _spconv_subm(feats, idx, [8, 8, 8], 1)
    wrong = _spconv_subm(dup_feats, dup_idx, [8, 8, 8], 1)
    assert not torch.allclose(good, wrong[: idx.shape[0]])


def test_batch_index_message():
    idx = _sites()
    idx[:5, 0] = 1
    with pytest.raises(ValueError, match=r"batch_size=1.*raise batch_size.*spconv does not check this"):
        lsp.SparseConvTensor(torch.randn(idx.shape[0], 3), idx, [8, 8, 8], 1)


def test_far_out_of_grid_and_negative_messages():
    idx = _sites()
    idx[0, 2] = 20
    with pytest.raises(ValueError, match=r"outside spatial_shape\[1\]=8 \(max 20\); enlarge spatial_shape.*spconv"):
        lsp.SparseConvTensor(torch.randn(idx.shape[0], 3), idx, [8, 8, 8], 1)
    idx[0, 2] = -1
    with pytest.raises(ValueError, match="negative coordinates.*spconv does not check"):
        lsp.SparseConvTensor(torch.randn(idx.shape[0], 3), idx, [8, 8, 8], 1)
