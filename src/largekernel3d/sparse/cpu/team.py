"""Row scatter-adds run in parallel on *torch's own* OpenMP team.

The scatter-add of gather-GEMM-scatter (``out[idx[r]] += buf[r]``) is memory-bound and used to run on one
thread while torch's other OpenMP workers spun idle after the GEMM. A thread pool of our own (numba's
OpenMP/TBB layers, Python threads) competes with those spinning workers on a small machine and runs slower
than the serial loop. Instead, this module hands a numba ``cfunc`` to ``GOMP_parallel`` of the libgomp
that torch itself loaded, so the very threads that ran the GEMM run the scatter, with no second pool.

Race freedom without atomics: every call gets *segments* of rows within which the destination rows are
distinct (one kernel offset of a kernel map, one group block of SW-LK slots). Each segment is cut into one
contiguous part per thread, and the team waits at a barrier before the next segment (destinations may
repeat across segments)::

    for each segment [s, e):   thread t of T adds rows  s + (e - s) t / T  ...  s + (e - s) (t + 1) / T

The result is bitwise identical to the serial loop (each row receives the same additions in the same
order). Every body reads its int64 argument block through the words of its declaration in :mod:`.arg_blocks`;
:func:`run_on_team` checks the block against that declaration before the team starts.

Available where torch runs on GNU libgomp (the Linux wheels); elsewhere, with one thread, or for segments
too short to split, :func:`scatter_add_segments` runs the serial numba loop. Nothing is loaded or compiled
at import: on first use the library is found, its entry points are registered with LLVM by name, and the
kernel is compiled (once, for its four dtype variants) or loaded from numba's disk cache.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Callable, Optional, Sequence, Tuple

import numba as nb
import numpy as np
import torch
from numba import types
from numba.core.extending import intrinsic


from .arg_blocks import TeamScatter, open_block, reads

# libgomp's entry points, called by name: :func:`_torch_libgomp` registers torch's addresses for these
# names with LLVM before the kernel is compiled or loaded, so the machine code can be cached on disk.
_LIBGOMP_SYMBOLS = ("omp_get_thread_num", "omp_get_num_threads", "GOMP_barrier")
omp_get_thread_num = types.ExternalFunction("omp_get_thread_num", types.intc())
omp_get_num_threads = types.ExternalFunction("omp_get_num_threads", types.intc())
gomp_barrier = types.ExternalFunction("GOMP_barrier", types.void())


@functools.lru_cache(maxsize=None)
def _torch_libgomp() -> Optional[ctypes.CDLL]:
    """The GNU OpenMP runtime that torch loaded (a ``libgomp`` mapped from torch's ``lib`` folder), with
    its entry points registered for the team kernel, or ``None`` (another OpenMP runtime, or no
    ``/proc/self/maps``)."""
    import llvmlite.binding as llvm

    torch_lib = os.path.join(os.path.dirname(os.path.realpath(torch.__file__)), "lib")
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        if os.path.dirname(os.path.realpath(path)) == torch_lib:
            lib = ctypes.CDLL(path)
            lib.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            lib.GOMP_parallel.restype = None
            for name in _LIBGOMP_SYMBOLS:
                llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
            return lib
    return None


def _pointer_intrinsic(dtype):
    """An intrinsic turning an int64 address into a typed pointer (for ``numba.carray``)."""

    @intrinsic
    def to_pointer(typingctx, address):
        sig = types.CPointer(dtype)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return sig, codegen

    return to_pointer


# typed pointers from int64 addresses, for ``numba.carray`` views inside team bodies
float32_pointer, float64_pointer = _pointer_intrinsic(types.float32), _pointer_intrinsic(types.float64)
int32_pointer, int64_pointer = _pointer_intrinsic(types.int32), _pointer_intrinsic(types.int64)
uint64_pointer = _pointer_intrinsic(types.uint64)


@nb.njit(nogil=True)
def _team_segments(buf, idx, start, seg, out):
    """One team thread's share: its part of every segment, a barrier between segments."""
    t, nt = omp_get_thread_num(), omp_get_num_threads()
    num_segments = seg.shape[0] // 2
    for q in range(num_segments):
        s, e = seg[2 * q], seg[2 * q + 1]
        for r in range(s + (e - s) * t // nt, s + (e - s) * (t + 1) // nt):
            o = idx[start + r]
            for j in range(out.shape[1]):
                out[o, j] += buf[r, j]
        if q + 1 < num_segments:
            gomp_barrier()


@reads(TeamScatter)
def _team_body(block):
    """The ``GOMP_parallel`` body of :func:`scatter_add_segments` (argument block: :data:`.arg_blocks.TeamScatter`;
    ``buf`` / ``out`` float32 or float64 by ``double``, ``idx`` int32 or int64 by ``index64``, ``segments`` the
    ``(s, e)`` pairs)."""
    h, ok = open_block(block, TeamScatter.SIZE, TeamScatter.FINGERPRINT)
    if not ok:
        return
    rows, channels, start = h[TeamScatter.OUT_ROWS], h[TeamScatter.CHANNELS], h[TeamScatter.IDX_START]
    num_segments = h[TeamScatter.NUM_SEGMENTS]
    seg = nb.carray(int64_pointer(h[TeamScatter.SEGMENTS]), (2 * num_segments,))
    end = seg[2 * num_segments - 1]  # segments ascend: the last one ends last
    buf_addr, idx_addr, out_addr = h[TeamScatter.BUF], h[TeamScatter.IDX], h[TeamScatter.OUT]
    if h[TeamScatter.DOUBLE] == 0:
        buf = nb.carray(float32_pointer(buf_addr), (end, channels))
        out = nb.carray(float32_pointer(out_addr), (rows, channels))
        if h[TeamScatter.INDEX64] == 0:
            _team_segments(buf, nb.carray(int32_pointer(idx_addr), (start + end,)), start, seg, out)
        else:
            _team_segments(buf, nb.carray(int64_pointer(idx_addr), (start + end,)), start, seg, out)
    else:
        buf = nb.carray(float64_pointer(buf_addr), (end, channels))
        out = nb.carray(float64_pointer(out_addr), (rows, channels))
        if h[TeamScatter.INDEX64] == 0:
            _team_segments(buf, nb.carray(int32_pointer(idx_addr), (start + end,)), start, seg, out)
        else:
            _team_segments(buf, nb.carray(int64_pointer(idx_addr), (start + end,)), start, seg, out)


@functools.lru_cache(maxsize=None)
def _compiled(body: Callable) -> int:
    """Address of ``body`` compiled as a ``void(int64 *)`` C function (on first use, then loaded from numba's
    disk cache; :func:`_torch_libgomp` has registered libgomp's symbols by then)."""
    return nb.cfunc(types.void(types.CPointer(types.int64)), nopython=True, cache=True)(body).address


def run_on_team(body: Callable, block: np.ndarray, threads: int) -> None:
    """Run ``body(block)`` on ``threads`` threads of torch's OpenMP team (``GOMP_parallel``) and return when
    all are done. ``body`` is a module-level function, compiled once as a cached ``cfunc``, marked with the
    declaration of its argument block (:func:`.arg_blocks.reads`); ``block`` is that declaration's ``pack``
    (addresses and sizes; views via ``numba.carray`` and the pointer intrinsics here). The block is checked
    against the declaration before the team starts (``TypeError`` / ``ValueError``), and a body compiled against
    another layout of it (a stale disk cache) raises ``RuntimeError`` after the team returns, having touched no
    array. The body splits the work by :data:`omp_get_thread_num`. Only when :func:`team_available`."""
    declaration = getattr(body, "arg_block", None)
    if declaration is None:
        raise TypeError(
            f"OpenMP body {getattr(body, '__name__', body)!r} declares no argument block: mark it "
            "with @arg_blocks.reads(<declaration>)"
        )
    declaration.check(block)
    lib = _torch_libgomp()
    lib.GOMP_parallel(_compiled(body), block.ctypes.data, int(threads), 0)
    if int(block[declaration.CHECK]) != int(declaration.FINGERPRINT):
        raise RuntimeError(
            f"OpenMP body {body.__name__!r} was compiled against another layout of argument block "
            f"{declaration.block_name!r} (a stale numba cache): delete the __pycache__ folder of "
            f"{body.__module__} and run again"
        )


@nb.njit(cache=True, nogil=True)
def _scatter_serial(buf, idx, start, segments, out):
    c = out.shape[1]
    for q in range(segments.shape[0]):
        for r in range(segments[q, 0], segments[q, 1]):
            o = idx[start + r]
            for j in range(c):
                out[o, j] += buf[r, j]


def team_available() -> bool:
    """True when torch runs on GNU libgomp here, so :func:`scatter_add_segments` can use its team."""
    return _torch_libgomp() is not None


def scatter_add_segments(
    buf: np.ndarray,
    idx: np.ndarray,
    start: int,
    segments: Sequence[Tuple[int, int]],
    out: np.ndarray,
    threads: int,
    min_parallel_rows: int,
) -> None:
    """``out[idx[start + r]] += buf[r]`` for every ``r`` of every segment ``[s, e)`` (rows of ``buf``),
    segments in order, ascending and disjoint; within a segment the destinations
    ``idx[start + s : start + e]`` must be distinct.

    ``buf`` ``[>= e_max, C]`` and ``out`` ``[N, C]`` are C-contiguous float32/float64 arrays of one dtype,
    ``idx`` a contiguous int32/int64 array. With ``threads > 1``, torch's libgomp and at least
    ``min_parallel_rows`` rows (``CpuTuning.scatter_min_parallel_rows``: a parallel region costs a few µs), each
    segment is split over ``threads`` threads of torch's OpenMP team;
    otherwise the serial loop runs. Either way the result is the same, bit for bit."""
    seg = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
    if seg.shape[0] == 0:
        return
    rows = int((seg[:, 1] - seg[:, 0]).sum())
    if threads <= 1 or rows < min_parallel_rows or not team_available():
        _scatter_serial(buf, idx, start, seg, out)
        return
    if not (buf.flags.c_contiguous and out.flags.c_contiguous and idx.flags.c_contiguous and buf.dtype == out.dtype):
        raise ValueError("scatter_add_segments needs C-contiguous buf/out of one dtype and a contiguous idx")
    block = TeamScatter.pack(
        double=buf.dtype == np.float64,
        index64=idx.dtype == np.int64,
        out_rows=out.shape[0],
        channels=out.shape[1],
        idx_start=start,
        num_segments=seg.shape[0],
        buf=buf,
        idx=idx,
        out=out,
        segments=seg,
    )
    run_on_team(_team_body, block, threads)
