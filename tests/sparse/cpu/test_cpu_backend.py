"""The numba CPU backend against the pure-torch reference: kernel maps (same pairs per offset, same
output sites) and the fused and tiled gather-GEMM-scatter (forward and backward). The rules that choose them are
tested in test_dispatch.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import torch_threads
from largekernel3d.sparse.cpu import maps
from largekernel3d.sparse import functional as F
from largekernel3d.sparse.cpu import conv_fused
from largekernel3d.sparse.cpu import conv_tiled
from largekernel3d.sparse.cpu import team
from largekernel3d.sparse.cpu.tuning import DEFAULT_TUNING, CpuTuning
from largekernel3d.sparse.torch_ref import conv as torch_conv
from largekernel3d.sparse.geometry import ConvGeometry
from largekernel3d.sparse.dispatch import Dataflow, plan_conv
from largekernel3d.sparse.kernel_map import build_regular_map, build_submanifold_map, build_transposed_map

CPU, TORCH_REF = Dataflow.CPU, Dataflow.TORCH_REF


def random_sites(rng: np.random.Generator, n: int, shape, batch_size: int, shuffle: bool = True) -> torch.Tensor:
    """``n`` unique random sites (batch first), int32, in random row order when ``shuffle``."""
    cells = int(np.prod(shape)) * batch_size
    flat = rng.choice(cells, size=min(n, cells), replace=False)
    if not shuffle:
        flat = np.sort(flat)
    cols = []
    for s in reversed(shape):
        cols.append(flat % s)
        flat = flat // s
    cols.append(flat)
    return torch.from_numpy(np.stack(cols[::-1], axis=1).astype(np.int32))


def pair_sets(kmap):
    """Per offset, the set of (in, out) pairs."""
    return [set(zip(*(t.tolist() for t in kmap.pairs(k)))) for k in range(kmap.kernel_volume)]


CASES = [
    # ndim, shape, kernel, stride, padding, dilation
    (3, (9, 7, 8), 3, 1, 0, 1),
    (3, (9, 7, 8), (2, 3, 4), 2, 1, 1),
    (3, (10, 9, 11), 5, 1, 0, 2),
    (3, (8, 8, 8), 7, 3, 2, 1),
    (2, (12, 13), 3, 2, 1, (1, 2)),
    (1, (40,), 4, 1, 0, 1),
]


@pytest.mark.parametrize("ndim,shape,kernel,stride,padding,dilation", CASES)
@pytest.mark.parametrize("n", [0, 1, 150])
def test_maps_match_torch(ndim, shape, kernel, stride, padding, dilation, n):
    rng = np.random.default_rng(n + ndim)
    idx = random_sites(rng, n, shape, batch_size=2)
    subm = ConvGeometry.create(ndim, kernel, 1, 0, dilation)
    a = build_submanifold_map(idx, shape, 2, subm, dataflow=CPU)
    b = build_submanifold_map(idx, shape, 2, subm, dataflow=TORCH_REF)
    assert a.offset_starts == b.offset_starts
    assert pair_sets(a) == pair_sets(b)
    geo = ConvGeometry.create(ndim, kernel, stride, padding, dilation)
    for builder in (build_regular_map, build_transposed_map):
        a = builder(idx, shape, 2, geo, dataflow=CPU)
        b = builder(idx, shape, 2, geo, dataflow=TORCH_REF)
        assert a.out_spatial_shape == b.out_spatial_shape
        assert torch.equal(a.out_indices, b.out_indices)
        assert a.offset_starts == b.offset_starts
        for k in range(a.kernel_volume):  # both backends order pairs by input row within an offset
            assert torch.equal(a.pairs(k)[0], b.pairs(k)[0]) and torch.equal(a.pairs(k)[1], b.pairs(k)[1])


@pytest.mark.parametrize("kernel", [5, (3, 4, 2)])
def test_submanifold_pairs_sorted_and_unique(kernel):
    """Searched offsets list pairs by ascending output row, mirrored ones (odd kernels, offsets before
    the centre) by ascending input row; rows never repeat within an offset."""
    rng = np.random.default_rng(0)
    idx = random_sites(rng, 400, (12, 12, 12), batch_size=1, shuffle=False)
    kmap = build_submanifold_map(idx, (12, 12, 12), 1, ConvGeometry.create(3, kernel), dataflow=CPU)
    mirrored = all(k % 2 == 1 for k in kmap.geometry.kernel_size)
    for k in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(k)
        key = p_in if mirrored and k < kmap.kernel_volume // 2 else p_out
        assert bool((key[1:] > key[:-1]).all())
        assert p_in.unique().numel() == p_in.numel() and p_out.unique().numel() == p_out.numel()


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("kernel,dilation", [(5, 1), ((3, 5, 7), (1, 2, 1)), ((4, 3, 2), 1)])
def test_submanifold_one_pass_and_two_pass_builds_agree(kernel, dilation, threads):
    """The one-sweep build (emission buffers, then placement; used below the density threshold; on torch's
    OpenMP team at more than one thread) and the two-sweep build (count, then fill in place) give the same
    pairs in the same order, for any thread count; emission buffers that start too small grow (or the
    team's chunks are swept again)."""
    split = dataclasses.replace(DEFAULT_TUNING, map_split_min_pairs=1)  # split even this small map over ``threads``
    shape = (14, 13, 15)
    idx, prm, coords, perm = _sorted_sites(7, shape, kernel, dilation)
    builds = []
    for threshold in (float("inf"), 1e-9):  # one sweep always; two sweeps always (every map has > 1e-9 pairs per site)
        tuning = dataclasses.replace(split, map_one_pass_max_pairs_per_site=threshold)
        builds.append(
            maps.submanifold_pairs(coords, perm, prm["shape"], prm["ksize"], prm["dil"], threads, tuning=tuning)
        )
    # one pass with every chunk's buffers too short (16 entries; on torch's OpenMP team at > 1 thread: swept again)
    short = dataclasses.replace(
        split, map_one_pass_max_pairs_per_site=float("inf"), map_buffer_headroom=1e-9, map_buffer_slack=16
    )
    builds.append(maps.submanifold_pairs(coords, perm, prm["shape"], prm["ksize"], prm["dil"], threads, tuning=short))
    for other in builds[1:]:
        for a, b in zip(builds[0], other):
            assert np.array_equal(a, b)
    ref = build_submanifold_map(idx, shape, 2, ConvGeometry.create(3, kernel, 1, 0, dilation), dataflow=TORCH_REF)
    got_in, got_out, starts = builds[0]
    assert tuple(int(s) for s in starts) == ref.offset_starts
    rows = perm.astype(np.int32)
    line_start, line_key = maps._lines(coords, prm["shape"])
    blocks = maps._balanced_blocks(line_start, min(DEFAULT_TUNING.map_blocks, line_key.shape[0]))
    cz = np.ascontiguousarray(coords[:, 3])
    outs = []
    for capacity in (16, 1 << 16):  # 16 entries: the buffers must grow many times
        table = np.zeros((blocks.shape[0] - 1, int(np.prod(prm["ksize"]))), np.int64)
        kbuf, ibuf, obuf, ends = maps._subm_sweep(
            0,
            blocks.shape[0] - 1,
            line_start,
            line_key,
            cz,
            rows,
            prm["shape"],
            prm["ksize"],
            prm["dil"],
            blocks,
            table,
            bool(np.all(prm["ksize"] % 2 == 1)),
            capacity,
        )
        n = int(ends[-1])
        outs.append((kbuf[:n].copy(), ibuf[:n].copy(), obuf[:n].copy(), table.copy()))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kernel,dilation", [(7, 1), ((3, 5, 7), (1, 2, 1)), ((4, 3, 2), 1)])
def test_two_pass_build_on_the_team_matches_the_serial_one(kernel, dilation, monkeypatch):
    """Above the density threshold the two sweeps (count, fill) run on torch's OpenMP team at more than one
    thread: the same pairs in the same order as the serial build, and the team is really used."""
    if not team.team_available():
        pytest.skip("torch does not run on GNU libgomp here")
    two_pass = dataclasses.replace(DEFAULT_TUNING, map_split_min_pairs=1, map_one_pass_max_pairs_per_site=1e-9)
    idx, prm, coords, perm = _sorted_sites(11, (14, 13, 15), kernel, dilation)
    serial = maps.submanifold_pairs(coords, perm, prm["shape"], prm["ksize"], prm["dil"], 1, tuning=two_pass)
    modes = []
    real = maps._pass_on_team
    monkeypatch.setattr(maps, "_pass_on_team", lambda *args: modes.append(args[-2]) or real(*args))
    for threads in (2, 3):
        on_team = maps.submanifold_pairs(coords, perm, prm["shape"], prm["ksize"], prm["dil"], threads, tuning=two_pass)
        for a, b in zip(serial, on_team):
            assert np.array_equal(a, b)
    assert modes == [maps._COUNT, maps._FILL] * 2


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("kernel,dilation", [(5, 1), ((3, 5, 7), (1, 2, 1))])
def test_submanifold_lower_half_is_mirrored_on_first_read(kernel, dilation, threads, monkeypatch):
    """``lower_half=False`` writes the centre and the offsets after it as the complete build does;
    :func:`mirror_lower_half` (serial, or on torch's team) then fills every position before the centre (set to
    -1 here) to the complete build exactly. The numba map is built that way (``half_stored``) and fills
    its lower half once, on the first read of ``pair_in`` or ``pair_out``, never for ``stored_pairs``."""
    shape = (14, 13, 15)
    idx, prm, coords, perm = _sorted_sites(11, shape, kernel, dilation)
    args = (coords, perm, prm["shape"], prm["ksize"], prm["dil"], threads)
    full_in, full_out, starts = maps.submanifold_pairs(*args)
    got_in, got_out, got_starts = maps.submanifold_pairs(*args, lower_half=False)
    np.testing.assert_array_equal(got_starts, starts)
    lo = int(starts[(starts.shape[0] - 1) // 2])
    assert lo > 0
    np.testing.assert_array_equal(got_in[lo:], full_in[lo:])
    np.testing.assert_array_equal(got_out[lo:], full_out[lo:])
    got_in[:lo], got_out[:lo] = -1, -1
    with torch_threads(threads):
        maps.mirror_lower_half(got_in, got_out, starts, threads)
    np.testing.assert_array_equal(got_in, full_in)
    np.testing.assert_array_equal(got_out, full_out)

    fills = []
    real = maps.mirror_lower_half
    monkeypatch.setattr(maps, "mirror_lower_half", lambda *a, **k: (fills.append(1), real(*a, **k)))
    kmap = build_submanifold_map(idx, shape, 2, ConvGeometry.create(3, kernel, 1, 0, dilation), dataflow=CPU)
    assert kmap.half_stored and kmap.symmetric
    stored_in, stored_out = kmap.stored_pairs()
    assert fills == [] and kmap.num_pairs == full_in.shape[0]
    np.testing.assert_array_equal(stored_out[lo:].numpy(), full_out[lo:])
    np.testing.assert_array_equal(kmap.pair_in.numpy(), full_in)
    np.testing.assert_array_equal(kmap.pair_out.numpy(), full_out)
    assert fills == [1]  # once
    assert kmap.stored_pairs()[0] is stored_in  # filled in place


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (5, 1), ((3, 5, 7), (1, 2, 1))])
def test_density_sample_counts_the_half_window_pairs_of_its_lines(kernel, dilation):
    """``_DensitySample``: with every line sampled its mean is the exact half-window pairs per site of the
    map (``(P - N) / 2 / N``); a range's figure is that of its own lines, never below the mean; with fewer
    sampled lines it is the exact figure of those lines."""
    _, prm, coords, perm = _sorted_sites(3, (14, 13, 15), kernel, dilation)
    rows = perm.astype(np.int32)
    line_start, line_key = maps._lines(coords, prm["shape"])
    cz = np.ascontiguousarray(coords[:, 3])
    num_pairs = maps.submanifold_pairs(coords, perm, prm["shape"], prm["ksize"], prm["dil"])[0].shape[0]
    n = coords.shape[0]
    full = maps._DensitySample(
        line_start, line_key, cz, rows, prm["shape"], prm["ksize"], prm["dil"], True, line_key.shape[0]
    )
    assert full.step == 1 and full.mean == pytest.approx((num_pairs - n) / 2 / n, rel=1e-12)
    # per line: the sampled pairs of each line are the emitted pairs whose output lies on it
    half = maps._subm_sweep(
        0,
        1,
        line_start,
        line_key,
        cz,
        rows,
        prm["shape"],
        prm["ksize"],
        prm["dil"],
        np.array([0, line_key.shape[0]]),
        np.zeros((1, int(np.prod(prm["ksize"]))), np.int64),
        True,
        16,
    )
    emitted_out = half[2][: int(half[3][-1])]
    line_of_site = np.searchsorted(line_start, np.argsort(rows), side="right") - 1  # row -> its line
    assert np.array_equal(full.pairs, np.bincount(line_of_site[emitted_out], minlength=line_key.shape[0]))
    lo, hi = 5, 40
    dense = full.pairs[lo:hi].sum() / full.sites[lo:hi].sum()
    assert full.per_site(lo, hi) == pytest.approx(max(full.mean, dense))
    sparse = maps._DensitySample(line_start, line_key, cz, rows, prm["shape"], prm["ksize"], prm["dil"], True, 10)
    lines = np.arange(0, line_key.shape[0], sparse.step)
    assert np.array_equal(sparse.pairs, full.pairs[lines]) and np.array_equal(sparse.sites, full.sites[lines])


def _sorted_sites(seed, shape, kernel, dilation):
    """900 random sites of 2 batches in ``shape``: ``(idx, prm, coords, perm)``, the sites as given, the
    lifted parameters, the lifted sites sorted by key and their original rows (numpy)."""
    idx = random_sites(np.random.default_rng(seed), 900, shape, batch_size=2)
    idx64, prm = _lifted(idx, shape, kernel, dilation)
    keys = ((idx64[:, 0] * shape[0] + idx64[:, 1]) * shape[1] + idx64[:, 2]) * shape[2] + idx64[:, 3]
    perm = torch.argsort(keys)
    return idx, prm, idx64[perm].numpy(), perm.numpy()


def _lifted(idx, shape, kernel, dilation):
    from largekernel3d.sparse.cpu.maps import _lift3

    return _lift3(idx, shape, ConvGeometry.create(3, kernel, 1, 0, dilation))


@pytest.mark.parametrize("transposed", [False, True])
def test_strided_candidates_independent_of_threads(transposed):
    """The strided builder's candidates (and their order) do not depend on how its blocks are split."""
    split = dataclasses.replace(DEFAULT_TUNING, map_split_min_pairs=1)
    rng = np.random.default_rng(3)
    shape = (11, 9, 13)
    idx64, prm = _lifted(random_sites(rng, 500, shape, batch_size=2), shape, 3, 1)
    out_shape = np.array(shape, dtype=np.int64)
    builds = [
        maps.strided_candidates(
            idx64.numpy(),
            out_shape,
            prm["ksize"],
            np.array([2, 2, 2]),
            np.array([1, 1, 1]),
            prm["dil"],
            transposed,
            threads,
            split,
        )
        for threads in (1, 3)
    ]
    for a, b in zip(*builds):
        assert np.array_equal(a, b)


def test_builders_split_only_large_maps():
    """Small maps are built on the calling thread (a split loses against torch's spinning workers)."""
    limit = DEFAULT_TUNING.map_split_min_pairs
    assert maps._split_threads(4, limit - 1, DEFAULT_TUNING) == 1
    assert maps._split_threads(4, limit, DEFAULT_TUNING) == 4
    assert maps._split_threads(4, 10, dataclasses.replace(DEFAULT_TUNING, map_split_min_pairs=10)) == 4


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
    rng = np.random.default_rng(n + c_in)
    shape = (11, 10, 12)
    idx = random_sites(rng, n, shape, batch_size=2)
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
    rng = np.random.default_rng(5)
    idx = random_sites(rng, 120, (8, 8, 8), batch_size=1)
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
    rng = np.random.default_rng(7)
    idx = random_sites(rng, 200, (9, 9, 9), batch_size=1)
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
    rng = np.random.default_rng(3)
    idx = random_sites(rng, 50, (6, 6, 6), batch_size=1)
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
    rng = np.random.default_rng(parts)
    idx = random_sites(rng, 700, (12, 12, 12), batch_size=2)
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

    rng = np.random.default_rng(2)
    idx = random_sites(rng, 300, (10, 10, 10), batch_size=1)
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
