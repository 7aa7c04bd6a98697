"""The numba convolution kernels (:mod:`largekernel3d.sparse.cpu.conv_fused`, :mod:`.conv_tiled`, the team's
scatter-add) against the pure-torch reference, forward and backward, and the memos they keep on a kernel map. The
rules that choose a dataflow are tested in test_dispatch.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import random_sites, torch_threads
from largekernel3d.sparse import functional as F
from largekernel3d.sparse.cpu import conv_fused, conv_tiled, maps, team
from largekernel3d.sparse.cpu.tuning import DEFAULT_TUNING, CpuTuning
from largekernel3d.sparse.dispatch import Dataflow, plan_conv
from largekernel3d.sparse.geometry import ConvGeometry
from largekernel3d.sparse.kernel_map import build_regular_map, build_submanifold_map, build_transposed_map
from largekernel3d.sparse.torch_ref import conv as torch_conv

CPU, TORCH_REF = Dataflow.CPU, Dataflow.TORCH_REF


def _grouped_weight(rng_seed: int, kv: int, g: int, a: int, b: int, dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(rng_seed)
    return torch.randn((kv, g, a, b), generator=gen, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "dataflow,groups,c_in,c_out",
    [
        (Dataflow.CPU_FUSED, 1, 5, 7),
        (Dataflow.CPU_FUSED, 1, 32, 32),
        (Dataflow.CPU_TILED, 1, 5, 7),
        (Dataflow.CPU_TILED, 1, 32, 32),
        (Dataflow.CPU_TILED, 2, 6, 4),
        (Dataflow.CPU_TILED, 8, 8, 8),
    ],
)
@pytest.mark.parametrize("kind", ["submanifold", "regular", "transposed"])
@pytest.mark.parametrize("n", [0, 1, 300])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_compute_matches_torch(dtype, dataflow, groups, c_in, c_out, kind, n, threads):
    """The numba dataflows against the per-offset torch reference, forward and both gradients: the fused
    per-thread tiles (ungrouped, where torch has libgomp) and the tiled passes (grouped, or forced
    here; with one torch thread numba gathers, with more ``torch.index_select``), at 1, 2 and 3 (more than
    the cores) threads."""
    if dataflow is Dataflow.CPU_FUSED and not team.team_available():
        pytest.skip("the fused dataflow needs a torch build with libgomp")
    with torch_threads(threads):
        _check_compute_matches_torch(dtype, groups, c_in, c_out, kind, n, dataflow)


def _check_compute_matches_torch(dtype, groups, c_in, c_out, kind, n, dataflow):
    shape = (11, 10, 12)
    idx = random_sites(2, shape, n, torch.Generator().manual_seed(n + c_in))
    if kind == "submanifold":
        kmap = build_submanifold_map(idx, shape, 2, ConvGeometry.create(3, 3))
    elif kind == "regular":
        kmap = build_regular_map(idx, shape, 2, ConvGeometry.create(3, 3, 2, 1))
    else:
        kmap = build_transposed_map(idx, shape, 2, ConvGeometry.create(3, 2, 2))
    gen = torch.Generator().manual_seed(n)
    x = torch.randn((kmap.num_in, c_in), generator=gen, dtype=dtype, requires_grad=True)
    w = _grouped_weight(n, kmap.kernel_volume, groups, c_in // groups, c_out // groups, dtype).requires_grad_()
    plan = plan_conv(x, w, kmap, dataflow)
    assert plan.dataflow is dataflow
    out = F.SparseConvFunction.apply(x, w, plan)
    ref = F.gather_gemm_scatter(x.detach(), w.detach(), kmap, kmap.num_out, dataflow=TORCH_REF)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, ref, **tol)
    grad_out = torch.randn(out.shape, generator=gen, dtype=dtype)
    gx, gw = torch.autograd.grad(out, (x, w), grad_out)
    ref_gx = F.gather_gemm_scatter(grad_out, w.detach(), kmap, kmap.num_in, adjoint=True, dataflow=TORCH_REF)
    ref_gw = torch_conv.weight_gradient(x.detach(), grad_out, kmap, w.shape)
    torch.testing.assert_close(gx, ref_gx, **tol)
    # d_W sums up to ~300 products per entry: error relative to the largest entry (sums in another order)
    torch.testing.assert_close(gw, ref_gw, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(ref_gw.abs().max())))


def test_tiles_span_offsets_and_split_large_ones():
    starts = (0, 3, 3, 10, 11)
    tiles = list(conv_tiled._tiles(starts, 4))
    assert [(a, b) for a, b, _ in tiles] == [(0, 4), (4, 8), (8, 11)]
    assert tiles[0][2] == [(0, 0, 3), (2, 3, 4)]
    assert tiles[2][2] == [(2, 0, 2), (3, 2, 3)]
    covered = sorted((k, a + s, a + e) for a, _, segs in tiles for k, s, e in segs)
    for k in range(4):  # every offset's pairs covered exactly once
        assert sum(e - s for kk, s, e in covered if kk == k) == starts[k + 1] - starts[k]


def test_tiles_skip_offset():
    starts = (0, 3, 8, 10)
    tiles = list(conv_tiled._tiles(starts, 4, skip=1))
    covered = [(k, a + s, a + e) for a, _, segs in tiles for k, s, e in segs]
    assert sorted(covered) == [(0, 0, 3), (2, 8, 10)]


def test_identity_offset_detected_only_for_identity_pairs():
    idx = random_sites(1, (8, 8, 8), 120, torch.Generator().manual_seed(5))
    for dataflow in (CPU, TORCH_REF):
        kmap = build_submanifold_map(idx, (8, 8, 8), 1, ConvGeometry.create(3, 3), dataflow=dataflow)
        assert maps.identity_offset(kmap) == 13
    even = build_submanifold_map(idx, (8, 8, 8), 1, ConvGeometry.create(3, 2))
    assert maps.identity_offset(even) == -1
    strided = build_regular_map(idx, (8, 8, 8), 1, ConvGeometry.create(3, 3, 2, 1))
    assert maps.identity_offset(strided) == -1


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("value_dtype, index_dtype", [(np.float32, np.int64), (np.float64, np.int32)])
def test_segment_scatter_add_matches_a_serial_sum(threads, value_dtype, index_dtype):
    """Segments of distinct destinations, repeated across segments (enough rows for the parallel path):
    the OpenMP-team scatter-add equals ``np.add.at`` bit for bit (same additions, same order per row)."""

    rng = np.random.default_rng(3)
    rows, channels, start = 3000, 5, 11
    lengths = [2500, 3000, 10, 3000]
    idx = np.concatenate([rng.integers(0, rows, start)] + [rng.permutation(rows)[:n] for n in lengths])
    idx = idx.astype(index_dtype)
    ends = np.cumsum(lengths)
    segments = [(int(e - n), int(e)) for n, e in zip(lengths, ends)]
    buf = rng.standard_normal((int(ends[-1]), channels)).astype(value_dtype)
    out = rng.standard_normal((rows, channels)).astype(value_dtype)
    ref = out.copy()
    for s, e in segments:
        np.add.at(ref, idx[start + s : start + e], buf[s:e])
    with torch_threads(threads):
        team.scatter_add_segments(buf, idx, start, segments, out, threads, DEFAULT_TUNING.scatter_min_parallel_rows)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_conv_bias_folded_into_accumulator(dtype):
    """``sparse_conv`` with bias equals conv + bias, with gradients for input, weight and bias."""
    idx = random_sites(1, (9, 9, 9), 200, torch.Generator().manual_seed(7))
    kmap = build_submanifold_map(idx, (9, 9, 9), 1, ConvGeometry.create(3, 3))
    gen = torch.Generator().manual_seed(7)
    x = torch.randn((200, 6), generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn((5, 3, 3, 3, 6), generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(5, generator=gen, dtype=dtype, requires_grad=True)
    out = F.sparse_conv(x, w, kmap, bias=b)
    g = torch.randn(out.shape, generator=gen, dtype=dtype)
    grads = torch.autograd.grad(out, (x, w, b), g)
    x2, w2, b2 = (t.detach().clone().requires_grad_() for t in (x, w, b))
    ref = F.gather_gemm_scatter(x2, F.module_weight_to_grouped(w2, 1), kmap, 200, dataflow=TORCH_REF) + b2
    ref_grads = torch.autograd.grad(ref, (x2, w2, b2), g)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(out, ref, **tol)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, **tol)


@pytest.mark.parametrize("num_sites", [1, 3])
def test_forward_leaves_the_bias_parameter_unchanged(num_sites):
    # regression: with one output row the accumulator used to alias the bias and was summed into it
    import largekernel3d.sparse as lsp

    idx = torch.tensor([[0, 2 * i + 1] for i in range(num_sites)], dtype=torch.int32)
    x = lsp.SparseConvTensor(torch.randn(num_sites, 2, dtype=torch.float64), idx, [2 * num_sites], 1)
    conv = lsp.SparseConv1d(2, 3, 2, 2).double()
    bias = conv.bias.detach().clone()
    first = conv(x).features.detach()
    second = conv(x).features.detach()
    assert torch.equal(conv.bias.detach(), bias)
    torch.testing.assert_close(first, second)


def test_kernel_map_memo_builds_once_per_key_and_not_across_maps():
    idx = random_sites(1, (6, 6, 6), 50, torch.Generator().manual_seed(3))
    kmap = build_submanifold_map(idx, (6, 6, 6), 1, ConvGeometry.create(3, 3))
    calls = []

    def build():
        calls.append(1)
        return object()

    first = kmap.derived("layout", build)
    assert kmap.derived("layout", build) is first and len(calls) == 1
    assert kmap.derived("other", build) is not first and len(calls) == 2
    assert kmap.transposed().derived("layout", build) is not first  # the adjoint map has its own memo


def test_openmp_team_found_where_torch_ships_libgomp():
    """On Linux wheels torch runs on its own libgomp: the scatter-adds must find that team (else they would
    silently stay serial)."""
    import glob
    import os

    torch_lib = os.path.join(os.path.dirname(os.path.realpath(torch.__file__)), "lib")
    if not glob.glob(os.path.join(torch_lib, "libgomp*.so*")):
        pytest.skip("this torch build does not ship GNU libgomp")
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # torch's OpenMP runtime is loaded by now
    assert team.team_available()


@pytest.mark.skipif(not team.team_available(), reason="torch does not run on GNU libgomp here")
@pytest.mark.parametrize(
    "parts, threads, sample", [(1, 1, None), (2, 2, None), (3, 2, None), (7, 3, None), (3, 2, 500)]
)
def test_row_split_layout_buckets_every_pair_once_by_output_range(parts, threads, sample):
    """Every pair but the skipped offset's lands once, in the part owning its destination row and in its
    offset's run, in its original order; the parts' pair counts are balanced (when every pair is counted
    for the bounds: ``sample`` None)."""
    idx = random_sites(2, (12, 12, 12), 700, torch.Generator().manual_seed(parts))
    kmap = build_submanifold_map(idx, (12, 12, 12), 2, ConvGeometry.create(3, 3))
    skip = maps.identity_offset(kmap)
    bounds, seg, src, dst = conv_fused.layout(
        kmap.pair_in,
        kmap.pair_out,
        kmap.offset_starts,
        skip,
        kmap.num_out,
        parts,
        threads,
        sample or DEFAULT_TUNING.conv_bound_sample,
    )
    kv = kmap.kernel_volume
    assert bounds[0] == 0 and bounds[-1] == kmap.num_out and np.all(np.diff(bounds) >= 0)
    assert src.dtype == np.int32 and seg[-1] == kmap.num_pairs - kmap.num_out
    for k in range(kv):
        p_in, p_out = (t.numpy() for t in kmap.pairs(k))
        got_in = np.concatenate([src[seg[t * kv + k] : seg[t * kv + k + 1]] for t in range(parts)])
        got_out = np.concatenate([dst[seg[t * kv + k] : seg[t * kv + k + 1]] for t in range(parts)])
        if k == skip:
            assert got_in.size == 0
            continue
        order = np.argsort(np.searchsorted(bounds, p_out, side="right"), kind="stable")
        assert np.array_equal(got_in, p_in[order]) and np.array_equal(got_out, p_out[order])
        for t in range(parts):
            rows = dst[seg[t * kv + k] : seg[t * kv + k + 1]]
            assert np.all((rows >= bounds[t]) & (rows < bounds[t + 1]))
    per_part = [seg[(t + 1) * kv] - seg[t * kv] for t in range(parts)]
    most_per_row = int(np.bincount(dst, minlength=kmap.num_out).max())
    if sample is None:
        assert max(per_part) - min(per_part) <= 2 * most_per_row + 1
    else:  # bounds from every (P // 500)-th pair: balanced roughly
        assert max(per_part) <= 1.5 * sum(per_part) / parts


def test_inverse_conv_reuses_the_adjoint_map_and_its_memo():
    import largekernel3d.sparse as lsp

    idx = random_sites(1, (10, 10, 10), 300, torch.Generator().manual_seed(2))
    x = lsp.SparseConvTensor(torch.randn(300, 4), idx, [10, 10, 10], 1)
    down = lsp.SparseConv3d(4, 4, 2, 2, indice_key="d")(x)
    geo = ConvGeometry.create(3, 2, 2)
    from largekernel3d.sparse.conv import inverse_map

    assert inverse_map(down, geo, "d") is inverse_map(down, geo, "d")


def test_fused_tiles_correct_when_the_team_has_fewer_threads_than_asked(monkeypatch):
    """OpenMP may give a parallel region fewer threads than asked (thread limits, nesting): the parts and
    every per-thread ``d_W`` accumulator must still be covered."""

    if not team.team_available():
        pytest.skip("the fused dataflow needs a torch build with libgomp")
    real = team.run_on_team
    monkeypatch.setattr(team, "run_on_team", lambda body, block, threads: real(body, block, 1))
    monkeypatch.setattr(conv_fused, "_uninitialised", lambda shape, dtype: np.full(shape, np.nan, dtype))
    with torch_threads(3):
        for kind in ("submanifold", "regular"):
            _check_compute_matches_torch(torch.float64, 1, 6, 5, kind, 300, Dataflow.CPU_FUSED)


def test_tuning_rejects_non_positive_values():
    """A tuning object is checked when made: every constant positive, tile bounds ordered."""
    with pytest.raises(ValueError, match="map_blocks"):
        CpuTuning(map_blocks=0)
    with pytest.raises(ValueError, match="conv_min_tile_rows"):
        CpuTuning(conv_min_tile_rows=10, conv_max_tile_rows=5)
    assert dataclasses.replace(DEFAULT_TUNING, conv_tile_bytes=7).conv_tile_bytes == 7
