"""The public names of ``spconv.pytorch`` 2.3 that network code touches: each is provided (and behaves as spconv's,
checked against spconv where it runs, or against a brute-force reference), and each is listed in
``docs/spconv_api.md``."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch

import largekernel3d.sparse as lsp
from helpers import random_sparse_tensor

DOC = Path(__file__).resolve().parents[2] / "docs" / "spconv_api.md"

# plain imports of spconv.pytorch's __init__ (numpy, torch, pathlib, typing, platform), not its API
_NOT_API = {"np", "torch", "Path", "Union", "platform"}


def _spconv():
    return pytest.importorskip("spconv.pytorch")


def test_every_spconv_name_is_in_the_coverage_doc():
    sp = _spconv()
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `([A-Za-z_][\w.]*)`", text, flags=re.MULTILINE))
    names = {n for n in dir(sp) if not n.startswith("_")} - _NOT_API
    missing = sorted(n for n in names if n not in documented)
    assert not missing, f"spconv.pytorch names not listed in {DOC.name}: {missing}"


def test_every_name_the_doc_calls_supported_exists():
    rows = re.findall(r"^\| `([A-Za-z_][\w.]*)` \| (supported|accepted-and-ignored)", DOC.read_text(), re.MULTILINE)
    assert len(rows) > 40
    for name, _ in rows:
        obj = lsp
        for part in name.split("."):
            assert hasattr(obj, part), f"{name} is documented as available but largekernel3d.sparse lacks it"
            obj = getattr(obj, part)


def test_top_level_classes_of_spconv_exist_here():
    sp = _spconv()
    for name in dir(sp):
        if isinstance(getattr(sp, name), type) and not name.startswith("_") and name not in _NOT_API:
            assert hasattr(lsp, name), name


def test_identity_returns_its_input():
    x = random_sparse_tensor([5, 5, 5], 3, seed=2)
    assert lsp.Identity()(x) is x
    t = torch.randn(4, 2)
    assert lsp.Identity()(t) is t
    assert lsp.Identity().input_spatial_size([7, 8, 9]) == [7, 8, 9]


def test_conv_algo_members_match_spconv_and_are_ignored():
    sp = _spconv()
    assert [(m.name, m.value) for m in lsp.ConvAlgo] == [(m.name, m.value) for m in sp.ConvAlgo]
    x = random_sparse_tensor([6, 6, 6], 3, seed=4)
    torch.manual_seed(0)
    plain = lsp.SubMConv3d(3, 4, 3)
    torch.manual_seed(0)
    tuned = lsp.SubMConv3d(3, 4, 3, algo=lsp.ConvAlgo.MaskImplicitGemm)
    pool = lsp.SparseMaxPool3d(2, algo=lsp.ConvAlgo.Native)
    tuned.double(), plain.double()
    assert torch.equal(plain(x).features, tuned(x).features)
    assert pool(x).features.shape[1] == 3


def test_assign_name_for_sparse_modules_matches_spconv():
    sp = _spconv()

    def build(lib):
        return torch.nn.Sequential(
            lib.SparseSequential(
                lib.SubMConv3d(2, 3, 3), torch.nn.ReLU(), lib.SparseSequential(block=lib.SparseConv3d(3, 3, 3, 2))
            ),
            torch.nn.Linear(3, 3),
            lib.ToDense(),
        )

    ours, theirs = build(lsp), build(sp)
    lsp.assign_name_for_sparse_modules(ours)
    sp.assign_name_for_sparse_modules(theirs)

    def names(net):
        return {k: getattr(m, "_sparse_unique_name", None) for k, m in net.named_modules()}

    assert names(ours) == names(theirs)
    assert names(ours)["0.2.block"] == "0.2.block"
    assert lsp.is_sparse_conv(ours[0][0]) and not lsp.is_sparse_conv(ours[0])
    assert lsp.is_spconv_module(ours[0]) and not lsp.is_spconv_module(ours[1])


def _brute_force_subm(indices: torch.Tensor, feats: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[p] = sum_k W[k] in[p + k - c]`` by a dictionary of sites (any number of axes)."""
    rows = {tuple(r): i for i, r in enumerate(indices.tolist())}
    kernel = weight.shape[1:-1]
    out = torch.zeros(indices.shape[0], weight.shape[0], dtype=feats.dtype)
    for i, site in enumerate(indices.tolist()):
        for k in itertools.product(*[range(s) for s in kernel]):
            q = (site[0], *[site[1 + d] + k[d] - kernel[d] // 2 for d in range(len(kernel))])
            j = rows.get(q)
            if j is not None:
                out[i] += weight[(slice(None), *k)] @ feats[j]
    return out


def test_4d_submanifold_conv_matches_brute_force():
    x = random_sparse_tensor([4, 5, 3, 4], 3, num_sites=60, seed=7)
    conv = lsp.SubMConv4d(3, 2, 3, bias=False).double()
    ref = _brute_force_subm(x.indices, x.features, conv.weight.detach())
    assert torch.allclose(conv(x).features, ref, atol=1e-10)


def test_4d_strided_and_inverse_convs_and_pool_run():
    x = random_sparse_tensor([6, 6, 6, 6], 2, num_sites=80, seed=8)
    down = lsp.SparseConv4d(2, 3, 3, stride=2, padding=1, indice_key="d").double()
    up = lsp.SparseInverseConv4d(3, 2, 3, indice_key="d").double()
    y = down(x)
    assert y.spatial_shape == [3, 3, 3, 3]
    z = up(y)
    assert torch.equal(z.indices, x.indices)
    pooled = lsp.SparseMaxPool4d(2)(x)
    dense = x.dense()  # max over active inputs only: compare where every window cell is active or not
    assert pooled.features.shape == (pooled.indices.shape[0], 2)
    for row, site in enumerate(pooled.indices.long().tolist()[:10]):
        b, c = site[0], [2 * v for v in site[1:]]
        window = dense[b, :, c[0] : c[0] + 2, c[1] : c[1] + 2, c[2] : c[2] + 2, c[3] : c[3] + 2].reshape(2, -1)
        mask = lsp.SparseConvTensor(
            torch.ones(x.indices.shape[0], 1, dtype=torch.float64), x.indices, x.spatial_shape, x.batch_size
        ).dense()
        active = mask[b, 0, c[0] : c[0] + 2, c[1] : c[1] + 2, c[2] : c[2] + 2, c[3] : c[3] + 2].reshape(-1) > 0
        assert torch.allclose(pooled.features[row], window[:, active].max(dim=1).values)


def test_add_table_misaligned_is_the_dense_sum():
    a = random_sparse_tensor([6, 6, 6], 3, num_sites=50, batch_size=2, seed=11)
    b = random_sparse_tensor([6, 6, 6], 3, num_sites=70, batch_size=2, seed=12)
    out = lsp.AddTableMisaligned()([a, b])
    assert torch.allclose(out.dense(), a.dense() + b.dense())
    keys = out.indices.long()
    assert torch.unique(keys, dim=0).shape[0] == keys.shape[0]


def test_add_table_misaligned_keeps_rows_and_cache_of_a_superset():
    a = random_sparse_tensor([6, 6, 6], 3, num_sites=60, seed=13)
    lsp.SubMConv3d(3, 3, 3, indice_key="k").double()(a)
    sub = a.select_by_index(torch.arange(0, 60, 3))
    sub = sub.replace_feature(torch.randn_like(sub.features))
    out = lsp.AddTableMisaligned()([sub, a])
    assert torch.equal(out.indices, a.indices) and "k" in out.indice_dict
    assert torch.allclose(out.dense(), a.dense() + sub.dense())


def test_add_table_misaligned_refuses_other_grids():
    a = random_sparse_tensor([6, 6, 6], 3, num_sites=20, seed=1)
    b = random_sparse_tensor([6, 6, 7], 3, num_sites=20, seed=2)
    with pytest.raises(ValueError, match="another grid"):
        lsp.AddTableMisaligned()([a, b])


def test_gather_features_by_pc_voxel_id():
    feats = torch.randn(5, 3)
    ids = torch.tensor([4, -1, 0, 0, 2, -1])
    out = lsp.utils.gather_features_by_pc_voxel_id(feats, ids, invalid_value=-7.0)
    for i, v in enumerate(ids.tolist()):
        assert torch.equal(out[i], feats[v] if v >= 0 else torch.full((3,), -7.0))
    with pytest.raises(ValueError, match="pc_voxel_id values"):
        lsp.utils.gather_features_by_pc_voxel_id(feats, torch.tensor([5]))
    assert lsp.utils.PointToVoxel is lsp.PointToVoxel


def test_sync_batch_norm_in_eval_is_batch_norm_of_the_features():
    x = random_sparse_tensor([5, 5, 5], 4, dtype=torch.float32, seed=3)
    sync = lsp.SparseSyncBatchNorm(4).eval()
    sync.running_mean.uniform_(-1, 1)
    sync.running_var.uniform_(0.5, 2)
    plain = torch.nn.BatchNorm1d(4).eval()
    plain.load_state_dict(sync.state_dict())
    assert torch.allclose(sync(x).features, plain(x.features))


def test_quantisation_accessors_on_float_features():
    x = random_sparse_tensor([4, 4, 4], 2, seed=5)
    assert x.is_quantized is False and x.dequantize() is x
    with pytest.raises(ValueError, match="quantized"):
        x.q_scale()


def test_is_spconv_module_answers_as_spconv():
    sp = _spconv()
    for name, args in (
        ("SparseBatchNorm", (4,)),
        ("SparseReLU", ()),
        ("SparseSyncBatchNorm", (4,)),
        ("SparseIdentity", ()),
        ("SparseSequential", ()),
        ("ToDense", ()),
        ("SubMConv3d", (2, 2, 3)),
        ("SparseMaxPool3d", (2,)),
    ):
        theirs = getattr(sp, name, None) or getattr(sp.modules, name)
        assert lsp.is_spconv_module(getattr(lsp, name)(*args)) == sp.modules.is_spconv_module(theirs(*args)), name
    assert not lsp.is_spconv_module(torch.nn.ReLU())


def test_positional_arguments_after_indice_key_bind_as_in_spconv():
    """spconv's signatures take algo, fp32_accum, (record_voxel_count,) large_kernel_fast_algo and name by position."""
    sp = _spconv()
    calls = [
        ("SubMConv3d", (4, 4, 3, 1, 0, 1, 1, False, "k", None, None, False, "subm_name")),
        ("SparseConv3d", (4, 4, 3, 2, 1, 1, 1, False, "d", None, None, False, False, "conv_name")),
        ("SparseConvTranspose3d", (4, 4, 3, 2, 1, 1, 1, False, "t", None, None, False, False, "tr_name")),
        ("SparseInverseConv3d", (4, 4, 3, "d", False, None, None, False, "inv_name")),
    ]
    for name, args in calls:
        ours, theirs = getattr(lsp, name)(*args), getattr(sp, name)(*args)
        assert ours.indice_key == theirs.indice_key and ours.name == theirs.name, name
        shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in (ours, theirs)]
        assert shapes[0] == shapes[1], name
    with pytest.raises(TypeError, match="at most 4 positional arguments after indice_key"):
        lsp.SubMConv3d(4, 4, 3, 1, 0, 1, 1, False, "k", None, None, False, "n", "extra")
    with pytest.raises(TypeError, match="multiple values for argument 'algo'"):
        lsp.SubMConv3d(4, 4, 3, 1, 0, 1, 1, False, "k", None, algo=None)
