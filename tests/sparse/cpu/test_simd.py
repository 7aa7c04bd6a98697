"""The SIMD kernels of the SW-LK group products against NumPy: every vector count per pass (1-4), several
passes, partial vectors, both float types, accumulating and setting."""

import numba as nb
import numpy as np
import pytest

from largekernel3d.sparse.cpu import simd

DTYPES = [np.float32, np.float64]
# column counts: under one vector, one, a partial second, 2-4 vectors, several passes with a partial last
COLUMNS = [1, 3, 8, 16, 17, 32, 48, 64, 70, 130]


def _tolerance(dtype) -> float:
    return 1e-4 if dtype == np.float32 else 1e-12


@nb.njit
def _scatter(a, w, out, rows, s0, accumulate):
    simd.scatter_products(
        a,
        a.ctypes.data,
        a.shape[0],
        a.shape[1],
        w.ctypes.data,
        w.shape[1],
        out.ctypes.data,
        out.shape[1],
        rows,
        s0,
        accumulate,
    )


@nb.njit
def _dense(a, w, out, accumulate):
    simd.dense_products(
        a, a.ctypes.data, a.shape[0], a.shape[1], w.ctypes.data, w.shape[1], out.ctypes.data, out.shape[1], accumulate
    )


@nb.njit
def _bags(x, enc, entries, bag_ptr, with_enc, s0, count, dst):
    simd.bag_sums(
        x,
        x.ctypes.data,
        enc.ctypes.data,
        x.shape[1],
        entries.ctypes.data,
        bag_ptr,
        x.shape[0],
        with_enc,
        s0,
        count,
        dst.ctypes.data,
    )


@nb.njit
def _outer(f, index, row0, b, d, indexed):
    simd.outer_products(
        f,
        f.ctypes.data,
        f.shape[1],
        index.ctypes.data if indexed else 0,
        row0,
        b.shape[0],
        b.ctypes.data,
        b.shape[1],
        d.ctypes.data,
    )


@nb.njit
def _outer_both_indexed(f, index, b, b_index, d):
    simd.outer_products(
        f,
        f.ctypes.data,
        f.shape[1],
        index.ctypes.data,
        0,
        index.shape[0],
        b.ctypes.data,
        b.shape[1],
        d.ctypes.data,
        b_index.ctypes.data,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_out", COLUMNS)
def test_scatter_and_dense_products_match_numpy(dtype, c_out):
    rng = np.random.default_rng(c_out)
    for k in (1, 5, 32):
        for n in (0, 1, 3, 4, 9):
            a = rng.standard_normal((n, k)).astype(dtype)
            w = rng.standard_normal((k, c_out)).astype(dtype)
            padded = simd.padded_weight(w)
            out = rng.standard_normal((12, c_out)).astype(dtype)
            expected = out.copy()
            rows = rng.permutation(12)[:n].astype(np.int32)
            expected[rows] += a @ w
            _scatter(a, padded, out, np.concatenate([[7, 7], rows]).astype(np.int32), 2, True)
            np.testing.assert_allclose(out, expected, atol=_tolerance(dtype))
            dense = np.full((n, c_out), np.nan, dtype)  # set, not added: NaN must not leak in
            _dense(a, padded, dense, False)
            np.testing.assert_allclose(dense, a @ w, atol=_tolerance(dtype))
            _dense(a, padded, dense, True)
            np.testing.assert_allclose(dense, 2 * (a @ w), atol=_tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_products_sum_repeated_rows(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((9, 6)).astype(dtype)
    w = rng.standard_normal((6, 20)).astype(dtype)
    rows = np.array([2, 2, 2, 0, 2, 1, 1, 0, 2], np.int32)  # repeats inside one 4-row panel and across
    out = np.zeros((3, 20), dtype)
    _scatter(a, simd.padded_weight(w), out, rows, 0, True)
    expected = np.zeros((3, 20))
    np.add.at(expected, rows, a.astype(np.float64) @ w)
    np.testing.assert_allclose(out, expected, atol=_tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", COLUMNS)
def test_bag_sums_match_numpy(dtype, c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((20, c)).astype(dtype)
    enc = rng.standard_normal((7, c)).astype(dtype)
    bag_ptr = np.concatenate([[0], np.cumsum(rng.integers(1, 6, 9))]).astype(np.int32)
    j = rng.integers(0, 20, bag_ptr[-1])
    k = rng.integers(0, 7, bag_ptr[-1])
    entries = np.stack([j, 20 + k], 1).reshape(-1).astype(np.int32)
    for with_enc in (True, False):
        dst = np.full((8, c), np.nan, dtype)
        _bags(x, enc, entries, bag_ptr, with_enc, 1, 7, dst)
        expected = [
            sum(x[j[p]] + (enc[k[p]] if with_enc else 0) for p in range(bag_ptr[s], bag_ptr[s + 1]))
            for s in range(1, 8)
        ]
        np.testing.assert_allclose(dst[:7], np.stack(expected), atol=_tolerance(dtype))
        assert np.isnan(dst[7]).all()  # nothing written past the slots asked for


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_f", [1, 3, 8, 9, 32, 33])
def test_outer_products_match_numpy(dtype, n_f):
    rng = np.random.default_rng(n_f)
    for c_b in (1, 17, 32, 70, 130):
        for n in (0, 1, 7, 150):  # 150: several passes of OUTER_CHUNK terms
            f = rng.standard_normal((160, n_f)).astype(dtype)
            b = rng.standard_normal((n, c_b)).astype(dtype)
            d0 = rng.standard_normal((n_f, c_b)).astype(dtype)
            index = rng.integers(0, 160, n).astype(np.int32)
            d = d0.copy()
            _outer(f, index, 0, b, d, True)
            np.testing.assert_allclose(d, d0 + f[index].T @ b, atol=_tolerance(dtype))
            d = d0.copy()
            _outer(f, index, 3, b, d, False)
            np.testing.assert_allclose(d, d0 + f[3 : 3 + n].T @ b, atol=_tolerance(dtype))
            b_index = rng.integers(0, max(n, 1), n).astype(np.int32)
            d = d0.copy()
            _outer_both_indexed(f, index, b, b_index, d)
            np.testing.assert_allclose(d, d0 + f[index].T @ b[b_index], atol=_tolerance(dtype))


def test_padded_weight_pads_columns_to_whole_vectors_with_zeros():
    w = np.arange(2 * 3 * 20, dtype=np.float32).reshape(2, 3, 20)
    padded = simd.padded_weight(w)
    assert padded.shape == (2, 3, 32)
    np.testing.assert_array_equal(padded[..., :20], w)
    assert not padded[..., 20:].any()
    even = np.ones((3, 16), np.float64)
    assert simd.padded_weight(even).shape == (3, 16)
    assert simd.padded_columns(9, 8) == 16 and simd.lanes(4) == 16


@nb.njit
def _pairs(x, src, dst, s0, n, w, out):
    simd.pair_products(
        x, x.ctypes.data, src, dst, s0, n, x.shape[1], w.ctypes.data, w.shape[1], out.ctypes.data, out.shape[1], True
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_out", [3, 32, 70])
def test_pair_products_read_rows_in_place(dtype, c_out):
    rng = np.random.default_rng(c_out)
    x = rng.standard_normal((15, 9)).astype(dtype)
    w = rng.standard_normal((9, c_out)).astype(dtype)
    src = rng.integers(0, 15, 11).astype(np.int32)
    dst = rng.integers(0, 6, 11).astype(np.int32)
    out = rng.standard_normal((6, c_out)).astype(dtype)
    expected = out.astype(np.float64)
    np.add.at(expected, dst[1:], x[src[1:]].astype(np.float64) @ w)
    _pairs(x, src, dst, 1, 10, simd.padded_weight(w), out)
    np.testing.assert_allclose(out, expected, atol=_tolerance(dtype))
