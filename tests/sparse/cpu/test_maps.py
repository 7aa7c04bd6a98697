"""The numba kernel-map builders (:mod:`largekernel3d.sparse.cpu.maps`) against the pure-torch reference: the
same pairs per offset and the same output sites, one-pass and two-pass, serial and on torch's team, the lazily
mirrored half, the density sample and the split rule. The rules that choose a dataflow are tested in
test_dispatch.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import torch_threads
from largekernel3d.sparse.cpu import maps, team
from largekernel3d.sparse.cpu.tuning import DEFAULT_TUNING
from largekernel3d.sparse.dispatch import Dataflow
from largekernel3d.sparse.geometry import ConvGeometry
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
