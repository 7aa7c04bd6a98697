"""SIMD kernels of the fused CPU convolution products, written as LLVM vector code (numba intrinsics).

The plain convolutions (:mod:`.conv_fused`) and SW-LK's group products (:mod:`.group_fused`) multiply a
few hundred rows at a time by a small weight (``C_in x C_out``, often 32 x 32) and add each product row
into a *different* output row. A BLAS ``sgemm`` is far from its peak on these thin shapes, and its operands
have to be gathered and its result scattered; numba's own loops vectorise over a channel count known only at
run time and keep their sums in memory. The kernels here hold their sums in SIMD registers (vectors of
``VECTOR_BYTES``: 16 float32 or 8 float64 lanes ``L``), ``V <= MAX_VECTORS`` vectors per row, columns past
``V L`` in further passes, partial vectors masked (each intrinsic is specialised to every ``V`` and branches
once per call):

- :func:`scatter_products` / :func:`pair_products` / :func:`dense_products`, ``out[r] (+)= A[r] @ W``: a
  *panel* of ``R x V`` accumulators (``R = PANEL_ROWS`` rows, read where they lie: ``pair_products``
  takes the input rows ``x[src]`` in place), added straight into the output rows::

      for k in range(K):      w_v = W[k, v L : (v + 1) L]                       (V vector loads)
          for r in range(R):  acc[r][v] = fma(broadcast(A[r, k]), w_v, acc[r][v])
      out[row_r] += acc[r]

  About twice MKL's rate on these shapes (BENCHMARKS.md). ``W``'s rows must be readable for whole vectors:
  :func:`padded_weight`.
- :func:`bag_sums`, ``A[s] = sum_p x[j_p] (+ enc[k_p])`` over a slot's pairs: the row sum in registers,
  one store per slot; the ``x`` row ``BAG_AHEAD`` terms ahead is prefetched, and the slot loop runs inside
  the specialised code, branching on the vector count, the column mask and the encoding once per call
  instead of once per slot.
- :func:`outer_products`, ``D += F[i_q]^T B[j_q]`` over ``q`` (the weight gradient): ``OUTER_ACCUMULATORS``
  vectors of ``D`` in registers, ``OUTER_CHUNK`` terms per pass; the rows of ``F`` and ``B`` are read
  through their indices, not gathered, and the next chunk's rows are prefetched during a chunk's first
  pass.

Each sum runs in order with one (fused multiply-)add per term, so results differ from BLAS only by
rounding. The vector width is fixed at 64 bytes: LLVM splits the vectors on CPUs with narrower registers,
where the code stays correct but slower. The team bodies that compile these kernels in
(:mod:`.conv_fused`, :mod:`.group_fused`) are cached by numba per source file of their own: after editing
this module, delete their ``__pycache__`` ``.nbi``/``.nbc`` files, or the cached machine code keeps the old
kernels.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

VECTOR_BYTES = 64  # bytes per SIMD vector of the panels (an AVX-512 register)
PANEL_ROWS = 4  # rows of the multi-row panel
OUTER_ACCUMULATORS = 16  # vectors of D held per outer-product panel: 16 // V rows of V vectors
OUTER_CHUNK = 64  # terms q per outer-product panel pass, so that their F and B rows stay in L1 across passes
BAG_AHEAD = 16  # terms ahead whose x row a bag sum prefetches (8, 16 and 32 measured alike)
MAX_VECTORS = 4  # vectors per row of a panel: 4 rows x 4 vectors = 16 accumulators (of 32 AVX-512 registers)
_I64 = ir.IntType(64)


def lanes(itemsize: int) -> int:
    """Elements per SIMD vector for an element of ``itemsize`` bytes (16 float32, 8 float64)."""
    return VECTOR_BYTES // itemsize


def padded_columns(columns: int, itemsize: int) -> int:
    """``columns`` rounded up to whole vectors: the row stride a weight needs for :func:`scatter_products`
    and :func:`dense_products`."""
    width = lanes(itemsize)
    return -(-columns // width) * width


class _Vectors:
    """LLVM IR helpers for vectors of ``VECTOR_BYTES`` of one float type, in one codegen ``builder``. Vectors
    ``0 .. V-1`` of a row cover its columns ``v L .. v L + L - 1``; with ``n_cols`` given (an i64 value),
    loads and stores are masked to the columns below it."""

    def __init__(self, builder, double: bool):
        self.builder = builder
        self.size = 8 if double else 4
        self.width = VECTOR_BYTES // self.size
        self.elt = ir.DoubleType() if double else ir.FloatType()
        self.vec = ir.VectorType(self.elt, self.width)
        self.zero = ir.Constant(self.vec, None)
        suffix = f"v{self.width}{'f64' if double else 'f32'}"
        module = builder.module
        mask = ir.VectorType(ir.IntType(1), self.width)
        pointer = self.vec.as_pointer()
        self._fma = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.vec, [self.vec] * 3), f"llvm.fma.{suffix}"
        )
        self._mload = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(self.vec, [pointer, ir.IntType(32), mask, self.vec]),
            f"llvm.masked.load.{suffix}.p0",
        )
        self._prefetch = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] + [ir.IntType(32)] * 3),
            "llvm.prefetch.p0",
        )
        self._mstore = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(ir.VoidType(), [self.vec, pointer, ir.IntType(32), mask]),
            f"llvm.masked.store.{suffix}.p0",
        )

    def element(self, base, index):
        """The address ``base + index * itemsize`` (i64 values)."""
        return self.builder.add(base, self.builder.mul(index, ir.Constant(_I64, self.size)))

    def mask(self, n_cols, v: int):
        """Lanes of vector ``v`` whose column is below ``n_cols``."""
        b = self.builder
        columns = ir.Constant(ir.VectorType(_I64, self.width), [v * self.width + i for i in range(self.width)])
        return b.icmp_signed("<", columns, self.splat(n_cols, ir.VectorType(_I64, self.width)))

    def splat(self, value, vec=None):
        vec = vec or self.vec
        b = self.builder
        one = b.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
        return b.shuffle_vector(
            one,
            ir.Constant(vec, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), self.width), [0] * self.width),
        )

    def load(self, row, v: int, n_cols=None):
        """Vector ``v`` of the row at address ``row``."""
        b = self.builder
        p = b.inttoptr(self.element(row, ir.Constant(_I64, v * self.width)), self.vec.as_pointer())
        if n_cols is None:
            return b.load(p, align=self.size)
        return b.call(self._mload, [p, ir.Constant(ir.IntType(32), self.size), self.mask(n_cols, v), self.zero])

    def store(self, value, row, v: int, n_cols=None):
        b = self.builder
        p = b.inttoptr(self.element(row, ir.Constant(_I64, v * self.width)), self.vec.as_pointer())
        if n_cols is None:
            b.store(value, p, align=self.size)
        else:
            b.call(self._mstore, [value, p, ir.Constant(ir.IntType(32), self.size), self.mask(n_cols, v)])

    def scalar(self, address):
        return self.builder.load(self.builder.inttoptr(address, self.elt.as_pointer()), align=self.size)

    def fma(self, a, b, c):
        return self.builder.call(self._fma, [a, b, c])

    def prefetch(self, row, vectors: int = 1):
        """Prefetch (into L1, for reading) the cache lines of vectors ``0 .. vectors - 1`` of the row at
        address ``row``."""
        b = self.builder
        i32 = ir.IntType(32)
        for v in range(vectors):
            p = b.inttoptr(self.element(row, ir.Constant(_I64, v * self.width)), ir.IntType(8).as_pointer())
            b.call(self._prefetch, [p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])


def _float_array(marker) -> bool:
    return isinstance(marker, types.Array) and marker.dtype in (types.float32, types.float64)


def _for_vector_count(builder, n_cols, width: int, emit) -> None:
    """Emit ``emit(V)`` for every ``V`` in ``1..MAX_VECTORS`` and run the one with ``V = ceil(n_cols /
    width)`` (an i64 value; at most ``MAX_VECTORS`` vectors): one branch per call, the loops inside are
    specialised to their vector count."""
    count = builder.udiv(builder.add(n_cols, ir.Constant(_I64, width - 1)), ir.Constant(_I64, width))
    done = builder.append_basic_block("vectors.done")
    switch = builder.switch(count, done)
    for vectors in range(1, MAX_VECTORS + 1):
        case = builder.append_basic_block(f"vectors.{vectors}")
        switch.add_case(ir.Constant(_I64, vectors), case)
        builder.position_at_end(case)
        emit(vectors)
        builder.branch(done)
    builder.position_at_end(done)


def _panel_intrinsic(rows: int):
    """The intrinsic ``panel(marker, a_rows, w_addr, w_stride, k, n_cols, accumulate, outs)``: for ``r <
    rows`` (``a_rows`` and ``outs`` tuples of ``rows`` row addresses) ``out_r[0:n_cols] (+)= sum_{q < k}
    a_r[q] * W[q w_stride + 0 : n_cols]``; ``marker`` is any array of the element type (float32 or
    float64), addresses are in bytes and strides in elements; ``n_cols <= MAX_VECTORS L`` and every row of
    ``W`` readable for ``ceil(n_cols / L) L`` elements."""

    @intrinsic
    def panel(typingctx, marker, a_rows, w_addr, w_stride, k, n_cols, accumulate, outs):
        if not _float_array(marker):
            return None
        double = marker.dtype == types.float64
        sig = types.void(
            marker,
            types.UniTuple(types.int64, rows),
            types.int64,
            types.int64,
            types.int64,
            types.int64,
            types.boolean,
            types.UniTuple(types.int64, rows),
        )

        def codegen(context, builder, signature, args):
            _, a_tuple, w_addr, w_stride, k, n_cols, accumulate, outs = args
            vx = _Vectors(builder, double)
            a_rows = [builder.extract_value(a_tuple, r) for r in range(rows)]

            def emit(vectors):
                acc = [[cgutils.alloca_once_value(builder, vx.zero) for _ in range(vectors)] for _ in range(rows)]
                with cgutils.for_range(builder, k) as loop:
                    q = loop.index
                    w_row = vx.element(w_addr, builder.mul(q, w_stride))
                    w = [vx.load(w_row, v) for v in range(vectors)]
                    for r in range(rows):
                        a = vx.splat(vx.scalar(vx.element(a_rows[r], q)))
                        for v in range(vectors):
                            builder.store(vx.fma(a, w[v], builder.load(acc[r][v])), acc[r][v])
                full = builder.icmp_signed("==", n_cols, ir.Constant(_I64, vectors * vx.width))
                with builder.if_else(full, likely=True) as (whole, partial):
                    for branch, cols in ((whole, None), (partial, n_cols)):
                        with branch:
                            for r in range(rows):
                                out = builder.extract_value(outs, r)
                                for v in range(vectors):
                                    value = builder.load(acc[r][v])
                                    with builder.if_then(accumulate):
                                        vx.store(builder.fadd(vx.load(out, v, cols), value), out, v, cols)
                                    with builder.if_then(builder.not_(accumulate)):
                                        vx.store(value, out, v, cols)

            _for_vector_count(builder, n_cols, vx.width, emit)
            return context.get_dummy_value()

        return sig, codegen

    return panel


@intrinsic
def _bags(
    typingctx, marker, x_addr, enc_addr, stride, entries_addr, bag_ptr_addr, s0, count, n_in, with_enc, n_cols, dst_addr
):
    """For ``q < count``: ``dst[q, 0:n_cols] = sum_{p} x[j_p] (+ enc[k_p])`` over the pairs ``p`` of slot ``s =
    s0 + q``, ``bag_ptr[s] <= p < bag_ptr[s + 1]`` (int32 ``bag_ptr``), with ``j_p = entries[2 p]`` and ``k_p =
    entries[2 p + 1] - n_in`` (int32 entries; rows of ``x``, ``enc`` and ``dst`` ``stride`` elements apart,
    column 0 at the addresses); ``n_cols <= MAX_VECTORS L``. The slot loop is inside the specialised code:
    the vector count, the column mask and ``with_enc`` are branched on once per call, not per slot (most
    slots hold 1-3 pairs). The ``x`` row of term ``p + BAG_AHEAD`` is prefetched while term ``p`` is added,
    up to the last term of the call (the rows are scattered over ``x``: without it the loads wait on
    L3/DRAM one slot at a time)."""
    if not _float_array(marker):
        return None
    double = marker.dtype == types.float64
    sig = types.void(marker, *([types.int64] * 8), types.boolean, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        _, x_addr, enc_addr, stride, entries_addr, bag_ptr_addr, s0, count, n_in, with_enc, n_cols, dst_addr = args
        vx = _Vectors(builder, double)
        i32 = ir.IntType(32)
        four, two = ir.Constant(_I64, 4), ir.Constant(_I64, 2)

        def int32_at(base, index):
            p = builder.inttoptr(builder.add(base, builder.mul(index, four)), i32.as_pointer())
            return builder.sext(builder.load(p, align=4), _I64)

        p_end = int32_at(bag_ptr_addr, builder.add(s0, count))
        row_bytes = builder.mul(stride, ir.Constant(_I64, vx.size))

        def emit(vectors):
            acc = [cgutils.alloca_once_value(builder, vx.zero) for _ in range(vectors)]
            full = builder.icmp_signed("==", n_cols, ir.Constant(_I64, vectors * vx.width))
            with builder.if_else(full, likely=True) as (whole, partial):
                for branch, cols in ((whole, None), (partial, n_cols)):
                    with branch, builder.if_else(with_enc, likely=True) as (encoded, plain):
                        for case, enc in ((encoded, True), (plain, False)):
                            with case, cgutils.for_range(builder, count) as slots:
                                q = slots.index
                                s = builder.add(s0, q)
                                for v in range(vectors):
                                    builder.store(vx.zero, acc[v])
                                with cgutils.for_range_slice(
                                    builder,
                                    int32_at(bag_ptr_addr, s),
                                    int32_at(bag_ptr_addr, builder.add(s, ir.Constant(_I64, 1))),
                                    ir.Constant(_I64, 1),
                                ) as (p, _):
                                    two_p = builder.mul(p, two)
                                    later = builder.add(p, ir.Constant(_I64, BAG_AHEAD))
                                    with builder.if_then(builder.icmp_signed("<", later, p_end), likely=True):
                                        vx.prefetch(
                                            vx.element(
                                                x_addr,
                                                builder.mul(int32_at(entries_addr, builder.mul(later, two)), stride),
                                            ),
                                            vectors,
                                        )
                                    row = vx.element(x_addr, builder.mul(int32_at(entries_addr, two_p), stride))
                                    terms = [vx.load(row, v, cols) for v in range(vectors)]
                                    if enc:  # term = x[j] + enc[k]
                                        k = builder.sub(
                                            int32_at(entries_addr, builder.add(two_p, ir.Constant(_I64, 1))), n_in
                                        )
                                        enc_row = vx.element(enc_addr, builder.mul(k, stride))
                                        terms = [
                                            builder.fadd(t, vx.load(enc_row, v, cols)) for v, t in enumerate(terms)
                                        ]
                                    for v in range(vectors):
                                        builder.store(builder.fadd(builder.load(acc[v]), terms[v]), acc[v])
                                dst = builder.add(dst_addr, builder.mul(q, row_bytes))
                                for v in range(vectors):
                                    vx.store(builder.load(acc[v]), dst, v, cols)

        _for_vector_count(builder, n_cols, vx.width, emit)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _outer(
    typingctx,
    marker,
    f_addr,
    f_stride,
    index_addr,
    row0,
    n,
    b_addr,
    b_stride,
    b_index_addr,
    d_addr,
    d_stride,
    n_r,
    n_cols,
    ahead,
):
    """For ``r < n_r <= OUTER_ACCUMULATORS // V`` (``V = ceil(n_cols / L) <= MAX_VECTORS``) ``D[r, 0:n_cols] +=
    sum_{q < n} F[i_q, r] * B[j_q, 0:n_cols]`` with ``i_q = index[q]`` (int32 at ``index_addr``) or, if
    ``index_addr`` is 0, ``i_q = row0 + q``, and ``j_q = b_index[q]`` or ``q``; ``F``, ``B`` and ``D``
    row-major with strides ``f_stride``, ``b_stride``, ``d_stride`` (elements; addresses in bytes, element
    type of ``marker``). The rows of the terms ``n .. n + ahead - 1`` (the next chunk's) are prefetched
    while the first ``ahead`` terms are summed."""
    if not _float_array(marker):
        return None
    double = marker.dtype == types.float64
    sig = types.void(marker, *([types.int64] * 13))

    def codegen(context, builder, signature, args):
        (
            _,
            f_addr,
            f_stride,
            index_addr,
            row0,
            n,
            b_addr,
            b_stride,
            b_index_addr,
            d_addr,
            d_stride,
            n_r,
            n_cols,
            ahead,
        ) = args
        vx = _Vectors(builder, double)
        i32 = ir.IntType(32)
        last = builder.sub(n_r, ir.Constant(_I64, 1))

        def row_index(q, index, default):  # index[q] (int32) if ``index`` is not 0, else ``default``
            value = cgutils.alloca_once_value(builder, default)
            with builder.if_then(builder.icmp_signed("!=", index, ir.Constant(_I64, 0)), likely=True):
                p = builder.inttoptr(builder.add(index, builder.mul(q, ir.Constant(_I64, 4))), i32.as_pointer())
                builder.store(builder.sext(builder.load(p, align=4), _I64), value)
            return builder.load(value)

        def emit(vectors):
            rows = OUTER_ACCUMULATORS // vectors
            acc = [[cgutils.alloca_once_value(builder, vx.zero) for _ in range(vectors)] for _ in range(rows)]
            columns = [
                builder.select(builder.icmp_signed("<", ir.Constant(_I64, r), n_r), ir.Constant(_I64, r), last)
                for r in range(rows)
            ]  # rows past n_r read row n_r - 1, not stored
            full = builder.icmp_signed("==", n_cols, ir.Constant(_I64, vectors * vx.width))
            with builder.if_else(full, likely=True) as (whole, partial):
                for branch, cols in ((whole, None), (partial, n_cols)):
                    with branch, cgutils.for_range(builder, n) as loop:
                        q = loop.index
                        f_row = vx.element(
                            f_addr, builder.mul(row_index(q, index_addr, builder.add(row0, q)), f_stride)
                        )
                        b_row = vx.element(b_addr, builder.mul(row_index(q, b_index_addr, q), b_stride))
                        b = [vx.load(b_row, v, cols) for v in range(vectors)]
                        with builder.if_then(builder.icmp_signed("<", q, ahead), likely=False):
                            later = builder.add(q, n)
                            vx.prefetch(
                                vx.element(
                                    f_addr,
                                    builder.mul(row_index(later, index_addr, builder.add(row0, later)), f_stride),
                                ),
                                vectors,
                            )
                            vx.prefetch(
                                vx.element(b_addr, builder.mul(row_index(later, b_index_addr, later), b_stride)),
                                vectors,
                            )
                        for r in range(rows):
                            f = vx.splat(vx.scalar(vx.element(f_row, columns[r])))
                            for v in range(vectors):
                                builder.store(vx.fma(f, b[v], builder.load(acc[r][v])), acc[r][v])
            for r in range(rows):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, r), n_r)):
                    d_row = vx.element(d_addr, builder.mul(ir.Constant(_I64, r), d_stride))
                    for v in range(vectors):
                        vx.store(builder.fadd(vx.load(d_row, v, n_cols), builder.load(acc[r][v])), d_row, v, n_cols)

        _for_vector_count(builder, n_cols, vx.width, emit)
        return context.get_dummy_value()

    return sig, codegen


_PANEL = _panel_intrinsic(PANEL_ROWS)
_PANEL1 = _panel_intrinsic(1)


@nb.njit(nogil=True)
def outer_products(marker, f_addr, n_f, index_addr, row0, n, b_addr, c_b, d_addr, b_index_addr=0):
    """``D += F[i_q]^T B[j_q]`` summed over ``q < n``: ``D`` ``[n_f, c_b]``, ``F`` rows of ``n_f`` columns (``i_q
    = index[q]``, int32 at ``index_addr``, or ``row0 + q`` if ``index_addr`` is 0), ``B`` rows of ``c_b``
    columns (``j_q = b_index[q]`` at ``b_index_addr``, or ``q``); all row-major (addresses in bytes; element
    type of ``marker``)."""
    itemsize = marker.itemsize
    width = VECTOR_BYTES // itemsize
    for q0 in range(0, n, OUTER_CHUNK):
        nq = min(OUTER_CHUNK, n - q0)
        index = index_addr + 4 * q0 if index_addr != 0 else 0
        b_index = b_index_addr + 4 * q0 if b_index_addr != 0 else 0
        b_rows = b_addr if b_index_addr != 0 else b_addr + q0 * c_b * itemsize
        for c0 in range(0, c_b, MAX_VECTORS * width):
            m = min(c_b - c0, MAX_VECTORS * width)
            rows = OUTER_ACCUMULATORS // ((m + width - 1) // width)  # as in _outer
            for a0 in range(0, n_f, rows):
                f, b, d = f_addr + a0 * itemsize, b_rows + c0 * itemsize, d_addr + (a0 * c_b + c0) * itemsize
                first = a0 == 0 and c0 == 0 and (index_addr != 0 or b_index_addr != 0)
                ahead = min(OUTER_CHUNK, n - q0 - nq) if first else 0  # prefetch the next chunk's indexed rows
                _outer(marker, f, n_f, index, row0 + q0, nq, b, c_b, b_index, d, c_b, min(rows, n_f - a0), m, ahead)


@nb.njit(nogil=True)
def bag_sums(marker, x_addr, enc_addr, c, entries_addr, bag_ptr, n_in, with_enc, s0, count, dst_addr):
    """``dst[q] = sum_{pairs p of slot s0 + q} x[j_p] (+ enc[k_p])`` for ``q < count``: slot ``s`` has the
    pairs ``bag_ptr[s] : bag_ptr[s + 1]`` (at least one), pair ``p`` the int32 entries ``j_p = entries[2 p]``
    and ``n_in + k_p = entries[2 p + 1]``; ``x``, ``enc`` and ``dst`` are row-major with ``c`` columns
    (addresses in bytes; element type of ``marker``)."""
    itemsize = marker.itemsize
    width = VECTOR_BYTES // itemsize
    for c0 in range(0, c, MAX_VECTORS * width):
        _bags(
            marker,
            x_addr + c0 * itemsize,
            enc_addr + c0 * itemsize,
            c,
            entries_addr,
            bag_ptr.ctypes.data,
            s0,
            count,
            n_in,
            with_enc,
            min(c - c0, MAX_VECTORS * width),
            dst_addr + c0 * itemsize,
        )


@nb.njit(nogil=True, inline="always")
def _columns(marker, a_rows, w_addr, w_stride, k, c_out, accumulate, outs, itemsize):
    """All ``c_out`` columns of ``PANEL_ROWS`` rows (``a_rows`` -> ``outs``), ``MAX_VECTORS`` vectors per
    pass."""
    width = VECTOR_BYTES // itemsize
    for c0 in range(0, c_out, MAX_VECTORS * width):
        off = c0 * itemsize
        _PANEL(
            marker,
            a_rows,
            w_addr + off,
            w_stride,
            k,
            min(c_out - c0, MAX_VECTORS * width),
            accumulate,
            (outs[0] + off, outs[1] + off, outs[2] + off, outs[3] + off),
        )


@nb.njit(nogil=True, inline="always")
def _columns1(marker, a_row, w_addr, w_stride, k, c_out, accumulate, out, itemsize):
    """All ``c_out`` columns of one row."""
    width = VECTOR_BYTES // itemsize
    for c0 in range(0, c_out, MAX_VECTORS * width):
        off = c0 * itemsize
        _PANEL1(
            marker, (a_row,), w_addr + off, w_stride, k, min(c_out - c0, MAX_VECTORS * width), accumulate, (out + off,)
        )


@nb.njit(nogil=True, inline="always")
def _row(addr, index, s0, q, row_bytes):
    """The address of row ``index[s0 + q]`` (or of row ``q`` when ``index`` is empty) of rows ``row_bytes`` apart
    from ``addr``."""
    return addr + (index[s0 + q] if index.shape[0] > 0 else q) * row_bytes


@nb.njit(nogil=True, inline="always")
def _row_products(marker, a_addr, a_index, out_addr, out_index, s0, n, k, w_addr, w_stride, c_out, accumulate):
    """``out[o_q] (+)= A[a_q] @ W`` for ``q < n``, ``a_q = a_index[s0 + q]`` and ``o_q = out_index[s0 + q]``
    (or ``q`` for an empty index): the panels of ``PANEL_ROWS`` rows, then the rows left one by one."""
    itemsize = marker.itemsize
    a_bytes, row_bytes = k * itemsize, c_out * itemsize
    q = 0
    while q + PANEL_ROWS <= n:
        a_rows = (
            _row(a_addr, a_index, s0, q, a_bytes),
            _row(a_addr, a_index, s0, q + 1, a_bytes),
            _row(a_addr, a_index, s0, q + 2, a_bytes),
            _row(a_addr, a_index, s0, q + 3, a_bytes),
        )
        outs = (
            _row(out_addr, out_index, s0, q, row_bytes),
            _row(out_addr, out_index, s0, q + 1, row_bytes),
            _row(out_addr, out_index, s0, q + 2, row_bytes),
            _row(out_addr, out_index, s0, q + 3, row_bytes),
        )
        _columns(marker, a_rows, w_addr, w_stride, k, c_out, accumulate, outs, itemsize)
        q += PANEL_ROWS
    while q < n:
        _columns1(
            marker,
            _row(a_addr, a_index, s0, q, a_bytes),
            w_addr,
            w_stride,
            k,
            c_out,
            accumulate,
            _row(out_addr, out_index, s0, q, row_bytes),
            itemsize,
        )
        q += 1


@nb.njit(nogil=True)
def scatter_products(marker, a_addr, n, k, w_addr, w_stride, out_addr, c_out, rows, s0, accumulate):
    """``out[rows[s0 + q]] (+)= A[q] @ W`` for ``q < n``: ``A`` ``[n, k]`` row-major at ``a_addr``, ``W``
    ``[k, c_out]`` at ``w_addr`` with row stride ``w_stride`` (:func:`padded_weight`), ``out`` ``[*, c_out]``
    row-major at ``out_addr`` (addresses in bytes; element type of ``marker``). Repeated rows receive the
    sum of their products when ``accumulate``."""
    _row_products(marker, a_addr, rows[:0], out_addr, rows, s0, n, k, w_addr, w_stride, c_out, accumulate)


@nb.njit(nogil=True)
def pair_products(marker, x_addr, src, dst, s0, n, k, w_addr, w_stride, out_addr, c_out, accumulate):
    """``out[dst[s0 + q]] (+)= x[src[s0 + q]] @ W`` for ``q < n``: the rows of ``x`` (``[*, k]``) read in place
    (no gathered copy); otherwise as :func:`scatter_products`."""
    _row_products(marker, x_addr, src, out_addr, dst, s0, n, k, w_addr, w_stride, c_out, accumulate)


@nb.njit(nogil=True)
def dense_products(marker, a_addr, n, k, w_addr, w_stride, out_addr, c_out, accumulate):
    """``out[q] (+)= A[q] @ W`` for ``q < n`` (rows in order; arguments as in :func:`scatter_products`)."""
    none = np.empty(0, np.int32)
    _row_products(marker, a_addr, none, out_addr, none, 0, n, k, w_addr, w_stride, c_out, accumulate)


def padded_weight(weight: np.ndarray) -> np.ndarray:
    """``weight`` (``[..., C_in, C_out]``, C-contiguous) with its last axis zero-padded to
    :func:`padded_columns` (the array itself when no padding is needed)."""
    c_out = weight.shape[-1]
    c_pad = padded_columns(c_out, weight.itemsize)
    if c_pad == c_out:
        return weight
    out = np.zeros(weight.shape[:-1] + (c_pad,), weight.dtype)
    out[..., :c_out] = weight
    return out
