"""Numba CPU kernels: kernel-map construction (and the identity offset and mirrored half of a map).

Everything here works on numpy views of CPU tensors and is compiled lazily on first call
(``cache=True`` keeps the machine code on disk between processes); importing this module compiles
nothing. Sites are always 3-D here: 1-D and 2-D problems are lifted to 3-D by prepending axes of size 1
with kernel size 1 (which leaves the row-major offset numbering unchanged).

Submanifold maps (``in = out + dilation * (k - kernel_size // 2)``) are found along *lines*: sites
sorted by ``(b, c0, c1, c2)`` fall into runs of equal ``(b, c0, c1)``. For an output line and a
kernel row ``(k0, k1)`` the neighbour line ``(b, c0 + d0 (k0 - m0), c1 + d1 (k1 - m1))`` is found once
in the sorted line keys (a pointer per ``k0`` that only moves forward, as lines are visited in key
order), then a two-pointer sweep along ``c2`` emits every pair of that line pair (starting at the first
site whose window reaches the neighbour line, stopping where the neighbour line ends).
Cost: ``k0 * k1`` look-ups per line and O(1) per emitted pair, instead of ``K`` look-ups per site.

For odd kernels the map is symmetric (pair ``(i, o)`` at displacement ``+d`` is pair ``(o, i)`` at
``-d``), so only the offsets after the centre are searched; the centre is the identity and the
others are mirrored copies, which the map builder leaves to :func:`mirror_lower_half` on the first read
of its pair lists (``KernelMap.half_stored``: SW-LK's layout and backward read the offsets after the
centre in their place, so its forward never writes them). The work is
cut into fixed blocks of the (sorted) sites; per-block counts ``counts[block, k]`` give every block its
prefix-sum position in each offset. Strided builders and
dense submanifold maps run two passes (count, then fill in place); sparse submanifold maps (at most
``CpuTuning.map_one_pass_max_pairs_per_site`` pairs per site, counted on a sample of lines) run the sweep once,
emitting ``(k, in, out)`` into per-chunk buffers while counting, then place the buffered pairs (the
sweep is the costly part on LiDAR-like scans). Either way the pair order is
independent of the thread count: offset-major, then by block, then by sorted output (submanifold)
or sorted input (regular / transposed).

Threading: the kernels themselves are serial and release the GIL (``nogil``). With more than one thread,
the one-pass submanifold sweep runs on torch's own OpenMP team (:mod:`.team`): its chunks of blocks
(``CpuTuning.map_chunks_per_thread`` per thread) sweep into buffers sized from the sampled lines of each chunk (a
chunk's density differs from the scene's on LiDAR scans), and a chunk whose buffers were short is swept
again (the pairs are identical to the serial sweep's); the team then places the buffered pairs and fills the
mirrored offsets. The two passes (count, fill) of a dense submanifold map that is large enough to split
(``CpuTuning.map_split_min_pairs``) run on the team too, chunk by chunk. The argument blocks of the three team
bodies are declared in :mod:`.arg_blocks`. The strided builders split large maps into chunks that a short-lived
pool of Python threads takes one at a time, so uneven chunks balance out. No numba threading layer (OpenMP/TBB)
is used: on a small machine a second OpenMP runtime next to torch's spins against it and runs far slower than
serial code. The inner loops index through :data:`.array_index.uidx`
(no negative-index fix-up per access).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from typing import Sequence, Tuple

import numba as nb
import numpy as np
import torch
from torch import Tensor

from ..coords import decode, encode
from ..geometry import ConvGeometry
from . import team
from .arg_blocks import MapLines, MapPass, MapPlace, MapSweep, PlaceChunk, SweepChunk, open_block, reads
from .array_index import uidx
from .tuning import DEFAULT_TUNING, CpuTuning

_COUNT, _EMIT, _FILL = 0, 1, 2  # modes of the submanifold line sweep


def _run_parallel(calls: list, threads: int) -> list:
    """Run ``fn(*args)`` for every ``(fn, args)`` of ``calls`` on ``threads`` workers: the calling thread
    and a short-lived pool of Python threads, each taking the next call not yet started, so uneven calls
    balance out (the functions must be ``nogil`` numba kernels writing disjoint data). Returns their
    results in order."""
    threads = min(int(threads), len(calls))
    if threads <= 1:
        return [fn(*args) for fn, args in calls]
    results = [None] * len(calls)
    order = iter(range(len(calls)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(order, None)
            if i is None:
                return
            fn, args = calls[i]
            results[i] = fn(*args)

    with ThreadPoolExecutor(threads - 1) as pool:
        futures = [pool.submit(work) for _ in range(threads - 1)]
        work()
        for f in futures:
            f.result()
    return results


def _split_threads(threads: int, pairs: float, tuning: CpuTuning) -> int:
    """The threads a builder uses for about ``pairs`` pairs: ``threads``, or 1 below ``tuning.map_split_min_pairs``."""
    return int(threads) if pairs >= tuning.map_split_min_pairs else 1


def _num_chunks(num_blocks: int, threads: int, per_thread: int) -> int:
    """Chunks of blocks for ``threads`` workers: one when serial, else ``per_thread`` per thread."""
    return max(1, min(num_blocks, 1 if threads <= 1 else int(threads) * per_thread))


def _chunk_cuts(num_blocks: int, threads: int, per_thread: int) -> np.ndarray:
    """Block boundaries ``[C + 1]`` (int64) of the :func:`_num_chunks` contiguous chunks of ``[0, num_blocks)``."""
    chunks = _num_chunks(num_blocks, threads, per_thread)
    return np.array([num_blocks * t // chunks for t in range(chunks + 1)], np.int64)


def _run_blocks(kernel, num_blocks: int, threads: int, per_thread: int, *args) -> list:
    """Call ``kernel(blk_lo, blk_hi, *args)`` over ``[0, num_blocks)`` cut into :func:`_chunk_cuts`
    chunks, run on ``threads`` workers (:func:`_run_parallel`). Returns ``[(blk_lo, blk_hi, result)]`` per
    chunk."""
    cuts = _chunk_cuts(num_blocks, threads, per_thread).tolist()
    results = _run_parallel([(kernel, (lo, hi, *args)) for lo, hi in zip(cuts[:-1], cuts[1:])], threads)
    return [(cuts[t], cuts[t + 1], r) for t, r in enumerate(results)]


# --------------------------------------------------------------------------------------------------
# sorted sites -> lines
# --------------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _lines(sorted_coords: np.ndarray, shape: np.ndarray):
    """Runs of equal ``(b, c0, c1)`` in ``sorted_coords [N, 4]``: ``(line_start [L + 1], line_key [L])``
    with ``line_key = (b * s0 + c0) * s1 + c1``."""
    n = sorted_coords.shape[0]
    num = 0
    for i in range(n):
        if (
            i == 0
            or sorted_coords[i, 0] != sorted_coords[i - 1, 0]
            or sorted_coords[i, 1] != sorted_coords[i - 1, 1]
            or sorted_coords[i, 2] != sorted_coords[i - 1, 2]
        ):
            num += 1
    start = np.empty(num + 1, np.int64)
    key = np.empty(num, np.int64)
    m = 0
    for i in range(n):
        if (
            i == 0
            or sorted_coords[i, 0] != sorted_coords[i - 1, 0]
            or sorted_coords[i, 1] != sorted_coords[i - 1, 1]
            or sorted_coords[i, 2] != sorted_coords[i - 1, 2]
        ):
            start[m] = i
            key[m] = (sorted_coords[i, 0] * shape[0] + sorted_coords[i, 1]) * shape[1] + sorted_coords[i, 2]
            m += 1
    start[num] = n
    return start, key


def _balanced_blocks(weights_start: np.ndarray, num_blocks: int) -> np.ndarray:
    """Split items ``0..L`` (item ``l`` spans ``weights_start[l]:weights_start[l+1]``) into
    ``num_blocks`` contiguous blocks of about equal total span; returns ``L``-indices ``[B + 1]``."""
    total = int(weights_start[-1])
    targets = (np.arange(num_blocks + 1, dtype=np.int64) * total) // num_blocks
    cut = np.searchsorted(weights_start, targets, side="left").astype(np.int64)
    cut[0], cut[-1] = 0, len(weights_start) - 1
    return np.maximum.accumulate(cut)


# --------------------------------------------------------------------------------------------------
# submanifold maps
# --------------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True, inline="always")
def _sweep_line(line, ptr, line_start, line_key, cz, perm, shape, ksize, dil, row, half, mode, kbuf, ibuf, obuf, n):
    """The pairs of one output line, by ``mode``: ``_COUNT`` (``row[k] += 1``), ``_EMIT`` (also append
    ``(k, in, out)`` to the buffers from position ``n``, which must have room for ``line length x
    most pairs per site`` more) or ``_FILL`` (write ``in``/``out`` at the cursor ``row[k]`` of
    ``ibuf``/``obuf``, the final pair arrays, and advance it). Returns the new ``n``. ``ptr[i0]``:
    the neighbour-line cursor per kernel row, carried from line to line (target keys never
    decrease)."""
    s0, s1 = shape[0], shape[1]
    k0, k1, k2 = ksize[0], ksize[1], ksize[2]
    m0, m1, m2 = k0 // 2, k1 // 2, k2 // 2
    d0, d1, d2 = dil[0], dil[1], dil[2]
    num_lines = line_key.shape[0]
    lk = line_key[line]
    y = lk % s1
    bx = lk // s1
    x = bx % s0
    b = bx // s0
    ls, le = line_start[line], line_start[line + 1]
    for i0 in range(m0 if half else 0, k0):
        xn = x + (i0 - m0) * d0
        if xn < 0 or xn >= s0:
            continue
        rowbase = (b * s0 + xn) * s1
        ylo = y if (half and i0 == m0) else max(y - m1 * d1, 0)
        yhi = min(y + (k1 - 1 - m1) * d1, s1 - 1)
        target = rowbase + ylo
        m = ptr[i0]
        if m < 0:
            m = np.searchsorted(line_key, target)
        else:
            while m < num_lines and line_key[m] < target:
                m += 1
        ptr[i0] = m
        while m < num_lines and line_key[m] <= rowbase + yhi:
            uy = line_key[m] - rowbase - y + m1 * d1  # >= 0: no sign branches in % and //
            if d1 == 1 or uy % d1 == 0:
                ky = uy if d1 == 1 else uy // d1
                kbase = (i0 * k1 + ky) * k2
                same_line = half and i0 == m0 and ky == m1
                ms, me = line_start[m], line_start[m + 1]
                j = ms
                first = ls  # the sites whose window ends below the neighbour line's first site pair with nothing
                reach = cz[uidx(ms)] - (k2 - 1 - m2) * d2
                while first < le and cz[uidx(first)] < reach:
                    first += 1
                for p in range(first, le):
                    z = cz[uidx(p)]
                    zb = z - m2 * d2
                    zlo = z + d2 if same_line else zb
                    zhi = z + (k2 - 1 - m2) * d2
                    while j < me and cz[uidx(j)] < zlo:
                        j += 1
                    if j == me:  # the neighbour line ends below this site's window, and so below the next ones'
                        break
                    po = perm[uidx(p)]
                    jj = j
                    while jj < me and cz[uidx(jj)] <= zhi:
                        uz = cz[uidx(jj)] - zb
                        if d2 == 1 or uz % d2 == 0:
                            k = kbase + (uz if d2 == 1 else uz // d2)
                            if mode == _FILL:
                                pos = row[uidx(k)]
                                ibuf[uidx(pos)] = perm[uidx(jj)]
                                obuf[uidx(pos)] = po
                                row[uidx(k)] = pos + 1
                            else:
                                if mode == _EMIT:
                                    kbuf[uidx(n)] = k
                                    ibuf[uidx(n)] = perm[uidx(jj)]
                                    obuf[uidx(n)] = po
                                    n += 1
                                row[uidx(k)] += 1
                        jj += 1
            m += 1
    return n


@nb.njit(cache=True, nogil=True)
def _most_pairs_per_site(ksize, half, num_sites):
    """The most pairs the sweep can emit for one output site: the (half) window, at most ``num_sites``."""
    kv = ksize[0] * ksize[1] * ksize[2]
    return min(kv // 2 + 1 if half else kv, num_sites)


@nb.njit(cache=True, nogil=True)
def _subm_sweep_into(
    blk_lo, blk_hi, line_start, line_key, cz, perm, shape, ksize, dil, blocks, table, half, kbuf, ibuf, obuf, ends
):
    """``_EMIT`` the submanifold pairs of the output lines of blocks ``[blk_lo, blk_hi)`` in sweep
    order into ``(kbuf, ibuf, obuf)`` = ``(k, pair_in, pair_out)`` (block ``blk`` owns
    ``[ends[blk - blk_lo - 1], ends[blk - blk_lo])``) and count ``table[blk, k] += 1``. Returns False,
    with these blocks' ``table`` rows partly counted, when the buffers may be too small for the next line.

    ``half``: only offsets after the centre (lexicographically positive displacement) are visited;
    the caller mirrors them (valid for odd kernel sizes)."""
    per_site = _most_pairs_per_site(ksize, half, perm.shape[0])
    ptr = np.empty(ksize[0], np.int64)
    n = 0
    for blk in range(blk_lo, blk_hi):
        row = table[blk]
        ptr[:] = -1
        for line in range(blocks[blk], blocks[blk + 1]):
            if n + (line_start[line + 1] - line_start[line]) * per_site > kbuf.shape[0]:
                return False
            n = _sweep_line(
                line, ptr, line_start, line_key, cz, perm, shape, ksize, dil, row, half, _EMIT, kbuf, ibuf, obuf, n
            )
        ends[blk - blk_lo] = n
    return True


@nb.njit(cache=True, nogil=True)
def _subm_sweep(blk_lo, blk_hi, line_start, line_key, cz, perm, shape, ksize, dil, blocks, table, half, capacity):
    """:func:`_subm_sweep_into` buffers of ``capacity`` entries, allocated here and doubled (the blocks
    swept again) until they suffice: returns ``(k, pair_in, pair_out, ends)``."""
    capacity = max(capacity, 16)
    while True:
        kbuf = np.empty(capacity, np.int32)
        ibuf = np.empty(capacity, perm.dtype)
        obuf = np.empty(capacity, perm.dtype)
        ends = np.empty(blk_hi - blk_lo, np.int64)
        if _subm_sweep_into(
            blk_lo,
            blk_hi,
            line_start,
            line_key,
            cz,
            perm,
            shape,
            ksize,
            dil,
            blocks,
            table,
            half,
            kbuf,
            ibuf,
            obuf,
            ends,
        ):
            return kbuf, ibuf, obuf, ends
        table[blk_lo:blk_hi] = 0
        capacity *= 2


_SWEEP_COLUMNS = len(SweepChunk)  # words of a row of the sweep's chunk table


@nb.njit(nogil=True, inline="always")
def _team_line_views(h):
    """The arrays named by the :data:`.arg_blocks.MapLines` words of ``h``: ``line_start``, ``line_key``, ``cz``,
    ``shape``, ``ksize``, ``dil``, ``blocks``, ``table [blocks, K]`` and ``cuts [chunks + 1]``."""
    num_lines, num_sites, nblk = h[MapLines.NUM_LINES], h[MapLines.NUM_SITES], h[MapLines.NUM_BLOCKS]
    line_start = nb.carray(team.int64_pointer(h[MapLines.LINE_START]), (num_lines + 1,))
    line_key = nb.carray(team.int64_pointer(h[MapLines.LINE_KEY]), (num_lines,))
    cz = nb.carray(team.int64_pointer(h[MapLines.CZ]), (num_sites,))
    shape = nb.carray(team.int64_pointer(h[MapLines.SHAPE]), (3,))
    ksize = nb.carray(team.int64_pointer(h[MapLines.KSIZE]), (3,))
    dil = nb.carray(team.int64_pointer(h[MapLines.DIL]), (3,))
    blocks = nb.carray(team.int64_pointer(h[MapLines.BLOCKS]), (nblk + 1,))
    table = nb.carray(team.int64_pointer(h[MapLines.TABLE]), (nblk, h[MapLines.K]))
    cuts = nb.carray(team.int64_pointer(h[MapLines.CUTS]), (h[MapLines.NUM_CHUNKS] + 1,))
    return line_start, line_key, cz, shape, ksize, dil, blocks, table, cuts


@reads(MapSweep)
def _team_sweep_body(block):
    """Torch's OpenMP team runs the submanifold sweep of :func:`_sweep_on_team`: thread ``t`` of ``T``
    sweeps chunks ``t, t + T, ...`` into their preallocated buffers (``ok[c] = 0`` where they were short).
    Argument block: :data:`.arg_blocks.MapSweep`; a row of ``chunks`` holds the :class:`.arg_blocks.SweepChunk`
    columns (the addresses of the chunk's int32 ``k``/``in``/``out`` buffers and of its int64 ``ends``, and the
    buffers' capacity)."""
    h, ok_block = open_block(block, MapSweep.SIZE, MapSweep.FINGERPRINT)
    if not ok_block:
        return
    line_start, line_key, cz, shape, ksize, dil, blocks, table, cuts = _team_line_views(h)
    num_chunks = h[MapSweep.NUM_CHUNKS]
    rows = nb.carray(team.int32_pointer(h[MapSweep.ROWS]), (h[MapSweep.NUM_SITES],))
    meta = nb.carray(team.int64_pointer(h[MapSweep.CHUNKS]), (num_chunks, _SWEEP_COLUMNS))
    ok = nb.carray(team.int64_pointer(h[MapSweep.OK]), (num_chunks,))
    half = h[MapSweep.HALF] != 0
    for c in range(team.omp_get_thread_num(), num_chunks, team.omp_get_num_threads()):
        lo, hi, cap = cuts[c], cuts[c + 1], meta[c, SweepChunk.CAPACITY]
        kbuf = nb.carray(team.int32_pointer(meta[c, SweepChunk.KBUF]), (cap,))
        ibuf = nb.carray(team.int32_pointer(meta[c, SweepChunk.IBUF]), (cap,))
        obuf = nb.carray(team.int32_pointer(meta[c, SweepChunk.OBUF]), (cap,))
        ends = nb.carray(team.int64_pointer(meta[c, SweepChunk.ENDS]), (hi - lo,))
        done = _subm_sweep_into(
            lo, hi, line_start, line_key, cz, rows, shape, ksize, dil, blocks, table, half, kbuf, ibuf, obuf, ends
        )
        ok[c] = 1 if done else 0


def _chunk_capacity(density: "_DensitySample", line_start, blocks, blk_lo: int, blk_hi: int, tuning: CpuTuning) -> int:
    """Emission buffer entries for the blocks ``[blk_lo, blk_hi)``: their sites times the sampled pairs per
    site of their lines (:meth:`_DensitySample.per_site`) times ``tuning.map_buffer_headroom``, plus
    ``tuning.map_buffer_slack`` (pages never written cost nothing)."""
    line_lo, line_hi = int(blocks[blk_lo]), int(blocks[blk_hi])
    sites = int(line_start[line_hi] - line_start[line_lo])
    return int(tuning.map_buffer_headroom * density.per_site(line_lo, line_hi) * sites) + tuning.map_buffer_slack


def _sweep_on_team(
    nblk: int,
    threads: int,
    line_start,
    line_key,
    cz,
    rows,
    shape,
    ksize,
    dil,
    blocks,
    counts,
    half: bool,
    density: "_DensitySample",
    per_thread: int,
    tuning: CpuTuning,
) -> list:
    """The one-pass submanifold sweep split over ``threads`` threads of torch's OpenMP team
    (:func:`_team_sweep_body`), in :func:`_num_chunks` chunks with buffers of :func:`_chunk_capacity`; a chunk
    whose buffers were short is swept again here with growing buffers. ``rows`` must be int32. Returns
    ``[(blk_lo, blk_hi, (k, in, out, ends))]`` like :func:`_run_blocks` of :func:`_subm_sweep`."""
    cuts = _chunk_cuts(nblk, threads, per_thread)
    chunks = cuts.shape[0] - 1
    meta = np.empty((chunks, len(SweepChunk)), np.int64)
    buffers = []
    for c in range(chunks):
        cap = _chunk_capacity(density, line_start, blocks, int(cuts[c]), int(cuts[c + 1]), tuning)
        kbuf, ibuf, obuf = np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap, np.int32)
        ends = np.empty(int(cuts[c + 1] - cuts[c]), np.int64)
        meta[c, SweepChunk.KBUF], meta[c, SweepChunk.IBUF] = kbuf.ctypes.data, ibuf.ctypes.data
        meta[c, SweepChunk.OBUF], meta[c, SweepChunk.ENDS] = obuf.ctypes.data, ends.ctypes.data
        meta[c, SweepChunk.CAPACITY] = cap
        buffers.append((kbuf, ibuf, obuf, ends))
    ok = np.zeros(chunks, np.int64)
    block = MapSweep.pack(
        num_lines=line_key.shape[0],
        num_sites=cz.shape[0],
        num_blocks=nblk,
        k=counts.shape[1],
        half=half,
        num_chunks=chunks,
        line_start=line_start,
        line_key=line_key,
        cz=cz,
        rows=rows,
        shape=np.ascontiguousarray(shape, np.int64),
        ksize=np.ascontiguousarray(ksize, np.int64),
        dil=np.ascontiguousarray(dil, np.int64),
        blocks=blocks,
        table=counts,
        cuts=cuts,
        chunks=meta,
        ok=ok,
    )
    team.run_on_team(_team_sweep_body, block, threads)
    emitted = []
    for c in range(chunks):
        lo, hi = int(cuts[c]), int(cuts[c + 1])
        if not ok[c]:
            counts[lo:hi] = 0
            buffers[c] = _subm_sweep(
                lo,
                hi,
                line_start,
                line_key,
                cz,
                rows,
                shape,
                ksize,
                dil,
                blocks,
                counts,
                half,
                2 * int(meta[c, SweepChunk.CAPACITY]),
            )
        emitted.append((lo, hi, buffers[c]))
    return emitted


@nb.njit(cache=True, nogil=True)
def _subm_pass(
    blk_lo, blk_hi, line_start, line_key, cz, perm, shape, ksize, dil, blocks, table, pair_in, pair_out, mode, half
):
    """``_COUNT`` (``table[blk, k] += 1``) or ``_FILL`` (``table`` holds each block's write cursor per
    offset) the submanifold pairs of the output lines of blocks ``[blk_lo, blk_hi)``."""
    ptr = np.empty(ksize[0], np.int64)
    kdummy = np.empty(0, np.int32)
    for blk in range(blk_lo, blk_hi):
        row = table[blk]
        ptr[:] = -1
        for line in range(blocks[blk], blocks[blk + 1]):
            _sweep_line(
                line,
                ptr,
                line_start,
                line_key,
                cz,
                perm,
                shape,
                ksize,
                dil,
                row,
                half,
                mode,
                kdummy,
                pair_in,
                pair_out,
                0,
            )


@reads(MapPass)
def _team_pass_body(block):
    """Torch's OpenMP team runs one pass of the two-pass submanifold sweep (:func:`_pass_on_team`): thread ``t`` of
    ``T`` runs :func:`_subm_pass` on chunks ``t, t + T, ...`` of the blocks (each block writes only its own
    ``table`` row, and in ``_FILL`` mode only its own cursor ranges of the pair arrays). Argument block:
    :data:`.arg_blocks.MapPass`."""
    h, ok = open_block(block, MapPass.SIZE, MapPass.FINGERPRINT)
    if not ok:
        return
    line_start, line_key, cz, shape, ksize, dil, blocks, table, cuts = _team_line_views(h)
    num_chunks, num_pairs = h[MapPass.NUM_CHUNKS], h[MapPass.NUM_PAIRS]
    perm = nb.carray(team.int64_pointer(h[MapPass.PERM]), (h[MapPass.NUM_SITES],))
    pair_in = nb.carray(team.int64_pointer(h[MapPass.PAIR_IN]), (num_pairs,))
    pair_out = nb.carray(team.int64_pointer(h[MapPass.PAIR_OUT]), (num_pairs,))
    mode, half = h[MapPass.MODE], h[MapPass.HALF] != 0
    for c in range(team.omp_get_thread_num(), num_chunks, team.omp_get_num_threads()):
        _subm_pass(
            cuts[c],
            cuts[c + 1],
            line_start,
            line_key,
            cz,
            perm,
            shape,
            ksize,
            dil,
            blocks,
            table,
            pair_in,
            pair_out,
            mode,
            half,
        )


def _pass_on_team(
    nblk: int,
    threads: int,
    per_thread: int,
    line_start,
    line_key,
    cz,
    perm,
    shape,
    ksize,
    dil,
    blocks,
    table,
    pair_in,
    pair_out,
    mode: int,
    half: bool,
) -> None:
    """:func:`_subm_pass` over the blocks ``[0, nblk)`` in :func:`_chunk_cuts` chunks on ``threads`` threads of
    torch's OpenMP team (:func:`_team_pass_body`) instead of a pool of Python threads next to torch's spinning
    workers; the same counts and pairs as the serial pass. ``perm``, ``pair_in``, ``pair_out``: int64."""
    cuts = _chunk_cuts(nblk, threads, per_thread)
    block = MapPass.pack(
        num_lines=line_key.shape[0],
        num_sites=cz.shape[0],
        num_blocks=nblk,
        k=table.shape[1],
        half=half,
        mode=mode,
        num_chunks=cuts.shape[0] - 1,
        num_pairs=pair_in.shape[0],
        line_start=line_start,
        line_key=line_key,
        cz=cz,
        perm=perm,
        shape=np.ascontiguousarray(shape, np.int64),
        ksize=np.ascontiguousarray(ksize, np.int64),
        dil=np.ascontiguousarray(dil, np.int64),
        blocks=blocks,
        table=table,
        cuts=cuts,
        pair_in=pair_in,
        pair_out=pair_out,
    )
    team.run_on_team(_team_pass_body, block, threads)


@nb.njit(cache=True, nogil=True)
def _place(blk_lo, blk_hi, kbuf, ibuf, obuf, ends, cursors, pair_in, pair_out):
    """Write the emitted pairs of blocks ``[blk_lo, blk_hi)`` (from :func:`_subm_sweep`) at their
    offset-major positions (``cursors[blk, k]``: block ``blk``'s first slot in offset ``k``)."""
    t = 0
    for blk in range(blk_lo, blk_hi):
        row = cursors[blk]
        end = ends[blk - blk_lo]
        while t < end:
            k = uidx(kbuf[uidx(t)])
            pos = row[k]
            pair_in[uidx(pos)] = ibuf[uidx(t)]
            pair_out[uidx(pos)] = obuf[uidx(t)]
            row[k] = pos + 1
            t += 1


@nb.njit(cache=True, nogil=True)
def _mirror_range(pair_in, pair_out, starts, lo, hi):
    """Positions ``[lo, hi)`` of the offsets up to the centre: the centre offset ``K // 2`` holds the identity
    pairs ``(r, r)`` in row order (so compute can treat it as a dense GEMM); every offset ``k`` before it
    mirrors ``K - 1 - k`` (pair ``(i, o)`` at displacement ``+d`` is pair ``(o, i)`` at ``-d``)."""
    kv = starts.shape[0] - 1
    c = kv // 2
    k = 0
    while k < c and starts[k + 1] <= lo:
        k += 1
    p = lo
    while p < hi:
        end = min(hi, starts[k + 1])
        if k == c:
            for q in range(p, end):
                pair_in[uidx(q)] = q - starts[c]
                pair_out[uidx(q)] = q - starts[c]
        else:
            shift = starts[kv - 1 - k] - starts[k]
            for q in range(p, end):
                pair_in[uidx(q)] = pair_out[uidx(q + shift)]
                pair_out[uidx(q)] = pair_in[uidx(q + shift)]
        p = end
        k += 1


def _mirror_bounds(starts, lower_half: bool) -> tuple:
    """The positions :func:`_mirror_range` fills after the sweep: the centre offset, and (``lower_half``) the
    offsets before it."""
    centre = (starts.shape[0] - 1) // 2
    return int(starts[0 if lower_half else centre]), int(starts[centre + 1])


def mirror_lower_half(pair_in: np.ndarray, pair_out: np.ndarray, starts: np.ndarray, threads: int = 1) -> None:
    """Fill the offsets before the centre of a symmetric map that :func:`submanifold_pairs` built with
    ``lower_half=False`` (each the mirror of ``K - 1 - k``), on torch's team when ``threads > 1``."""
    hi = int(starts[(starts.shape[0] - 1) // 2])
    if threads > 1 and team.team_available():
        _place_on_team([], threads, np.zeros((0, starts.shape[0] - 1), np.int64), pair_in, pair_out, starts, (0, hi))
    else:
        _mirror_range(pair_in, pair_out, starts, 0, hi)


_PLACE_COLUMNS = len(PlaceChunk)  # words of a row of the placement's chunk table


@reads(MapPlace)
def _team_place_body(block):
    """Torch's OpenMP team places the swept pairs (:func:`_place_on_team`): thread ``t`` of ``T`` places
    chunks ``t, t + T, ...``; after a barrier (``mirror``) each thread fills its share of the positions up to
    the centre offset (:func:`_mirror_range`). Argument block: :data:`.arg_blocks.MapPlace`; a row of ``chunks``
    holds the :class:`.arg_blocks.PlaceChunk` columns (``blk_lo``, ``blk_hi`` and the addresses of the chunk's
    int32 ``k``/``in``/``out`` buffers and of its int64 ``ends``); ``[mirror_lo, mirror_hi)`` the positions to
    mirror (none if empty)."""
    h, ok = open_block(block, MapPlace.SIZE, MapPlace.FINGERPRINT)
    if not ok:
        return
    nblk, kv, num_pairs, num_chunks = (
        h[MapPlace.NUM_BLOCKS],
        h[MapPlace.K],
        h[MapPlace.NUM_PAIRS],
        h[MapPlace.NUM_CHUNKS],
    )
    cursors = nb.carray(team.int64_pointer(h[MapPlace.CURSORS]), (nblk, kv))
    pair_in = nb.carray(team.int64_pointer(h[MapPlace.PAIR_IN]), (num_pairs,))
    pair_out = nb.carray(team.int64_pointer(h[MapPlace.PAIR_OUT]), (num_pairs,))
    starts = nb.carray(team.int64_pointer(h[MapPlace.STARTS]), (kv + 1,))
    meta = nb.carray(team.int64_pointer(h[MapPlace.CHUNKS]), (num_chunks, _PLACE_COLUMNS))
    t, nt = team.omp_get_thread_num(), team.omp_get_num_threads()
    for c in range(t, num_chunks, nt):
        lo, hi = meta[c, PlaceChunk.BLK_LO], meta[c, PlaceChunk.BLK_HI]
        ends = nb.carray(team.int64_pointer(meta[c, PlaceChunk.ENDS]), (hi - lo,))
        end = ends[hi - lo - 1]
        _place(
            lo,
            hi,
            nb.carray(team.int32_pointer(meta[c, PlaceChunk.KBUF]), (end,)),
            nb.carray(team.int32_pointer(meta[c, PlaceChunk.IBUF]), (end,)),
            nb.carray(team.int32_pointer(meta[c, PlaceChunk.OBUF]), (end,)),
            ends,
            cursors,
            pair_in,
            pair_out,
        )
    lo, hi = h[MapPlace.MIRROR_LO], h[MapPlace.MIRROR_HI]
    if hi > lo:
        team.gomp_barrier()
        _mirror_range(pair_in, pair_out, starts, lo + (hi - lo) * t // nt, lo + (hi - lo) * (t + 1) // nt)


def _place_on_team(emitted: list, threads: int, cursors, pair_in, pair_out, starts, mirror: tuple) -> None:
    """:func:`_place` of every chunk of ``emitted`` (int32 buffers, from :func:`_sweep_on_team`), then
    :func:`_mirror_range` of the positions ``mirror = (lo, hi)``, on ``threads`` threads of torch's OpenMP team
    (:func:`_team_place_body`)."""
    chunks = [(lo, hi, bufs) for lo, hi, bufs in emitted if hi > lo]
    meta = np.empty((len(chunks), len(PlaceChunk)), np.int64)
    for c, (lo, hi, (kbuf, ibuf, obuf, ends)) in enumerate(chunks):
        meta[c, PlaceChunk.BLK_LO], meta[c, PlaceChunk.BLK_HI] = lo, hi
        meta[c, PlaceChunk.KBUF], meta[c, PlaceChunk.IBUF] = kbuf.ctypes.data, ibuf.ctypes.data
        meta[c, PlaceChunk.OBUF], meta[c, PlaceChunk.ENDS] = obuf.ctypes.data, ends.ctypes.data
    block = MapPlace.pack(
        num_blocks=cursors.shape[0],
        k=cursors.shape[1],
        num_pairs=pair_in.shape[0],
        num_chunks=meta.shape[0],
        mirror_lo=mirror[0],
        mirror_hi=mirror[1],
        cursors=cursors,
        pair_in=pair_in,
        pair_out=pair_out,
        starts=starts,
        chunks=meta,
    )
    team.run_on_team(_team_place_body, block, threads)


@nb.njit(cache=True, nogil=True)
def _sampled_pairs(line_start, line_key, cz, perm, shape, ksize, dil, half, step):
    """``(pairs [S], sites [S])`` of the output lines ``0, step, 2 step, ...``, counted (``_COUNT``: nothing
    is written)."""
    ptr = np.empty(ksize[0], np.int64)
    counts = np.zeros(ksize[0] * ksize[1] * ksize[2], np.int64)
    empty = np.empty(0, perm.dtype)
    num = (line_key.shape[0] + step - 1) // step
    pairs = np.zeros(num, np.int64)
    sites = np.zeros(num, np.int64)
    for s in range(num):
        line = s * step
        ptr[:] = -1
        counts[:] = 0
        _sweep_line(
            line,
            ptr,
            line_start,
            line_key,
            cz,
            perm,
            shape,
            ksize,
            dil,
            counts,
            half,
            _COUNT,
            np.empty(0, np.int32),
            empty,
            empty,
            0,
        )
        pairs[s] = counts.sum()
        sites[s] = line_start[line + 1] - line_start[line]
    return pairs, sites


class _DensitySample:
    """Pairs per site (of the half window when ``half``) counted on ``sampled_lines`` output lines spread
    evenly over the sorted sites, for the whole map or a range of lines (a chunk's emission buffers are sized
    from its own lines: on LiDAR scans a chunk's density can differ much from the mean)."""

    def __init__(self, line_start, line_key, cz, perm, shape, ksize, dil, half, sampled_lines: int) -> None:
        self.step = max(1, line_key.shape[0] // sampled_lines)
        self.pairs, self.sites = _sampled_pairs(line_start, line_key, cz, perm, shape, ksize, dil, half, self.step)
        self.mean = self.pairs.sum() / max(int(self.sites.sum()), 1)

    def per_site(self, line_lo: int, line_hi: int) -> float:
        """The pairs per site of the sampled lines in ``[line_lo, line_hi)``, at least the mean (a chunk
        with few sampled lines is not trusted to be sparser than the scene)."""
        lo, hi = -(-line_lo // self.step), -(-line_hi // self.step)
        sites = int(self.sites[lo:hi].sum())
        return max(self.mean, self.pairs[lo:hi].sum() / sites) if sites else self.mean


def _cursors(counts: np.ndarray, per_offset: np.ndarray):
    """Offset-major write cursors ``[B, K]`` and offset starts ``[K + 1]`` from per-block counts and
    the total pairs per offset."""
    starts = np.zeros(counts.shape[1] + 1, np.int64)
    np.cumsum(per_offset, out=starts[1:])
    within = np.cumsum(counts, axis=0) - counts
    return starts[:-1][None, :] + within, starts


def _two_pass_sweep(
    on_team: bool,
    nblk: int,
    threads: int,
    team_threads: int,
    per_thread: int,
    sweep_args: tuple,
    table,
    pair_in,
    pair_out,
    mode: int,
) -> None:
    """One pass (``mode`` ``_COUNT`` into ``table``, or ``_FILL`` at ``table``'s cursors into ``pair_in`` /
    ``pair_out``) of the two-pass build over all blocks: on torch's team when ``on_team``, else on
    :func:`_run_blocks`'s pool. ``sweep_args``: ``(line_start, line_key, cz, perm, shape, ksize, dil, blocks)``."""
    half = bool(np.all(sweep_args[5] % 2 == 1))
    if pair_in is None:
        pair_in = pair_out = np.zeros(0, np.int64)
    if on_team:
        _pass_on_team(nblk, team_threads, per_thread, *sweep_args, table, pair_in, pair_out, mode, half)
    else:
        _run_blocks(_subm_pass, nblk, threads, per_thread, *sweep_args, table, pair_in, pair_out, mode, half)


def submanifold_pairs(
    sorted_coords: np.ndarray,
    perm: np.ndarray,
    shape: np.ndarray,
    ksize: np.ndarray,
    dil: np.ndarray,
    threads: int = 1,
    lower_half: bool = True,
    tuning: CpuTuning = DEFAULT_TUNING,
):
    """Submanifold pairs of 3-D sites.

    Args:
        sorted_coords: int64 ``[N, 4]`` sites ``(b, c0, c1, c2)`` sorted lexicographically, unique.
        perm: int64 ``[N]``, the original row of each sorted site.
        shape, ksize, dil: int64 ``[3]`` grid size, kernel size and dilation.
        threads: most threads to split the work over (maps of fewer than ``tuning.map_split_min_pairs`` estimated
            pairs use one).
        lower_half: for odd kernels, False leaves the offsets before the centre unwritten (allocated but
            never touched), for :func:`mirror_lower_half` to fill when they are read (SW-LK's layout reads
            the offsets after the centre in their place).

    Returns:
        ``(pair_in, pair_out, offset_starts)``: int64 ``[P]``, int64 ``[P]`` (original rows,
        offset-major) and int64 ``[K + 1]``. Within an offset pairs are sorted by output site; for odd
        kernels the offsets before the centre are mirrored from those after it and sorted by input.
    """
    kv = int(np.prod(ksize))
    if sorted_coords.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(kv + 1, np.int64)
    line_start, line_key = _lines(sorted_coords, shape)
    blocks = _balanced_blocks(line_start, min(tuning.map_blocks, line_key.shape[0]))
    cz = np.ascontiguousarray(sorted_coords[:, 3])
    counts = np.zeros((blocks.shape[0] - 1, kv), np.int64)
    nblk = blocks.shape[0] - 1
    half = bool(np.all(ksize % 2 == 1))
    rows = perm.astype(np.int32) if perm.shape[0] < 2**31 else perm  # half the bytes in the buffers
    density = _DensitySample(line_start, line_key, cz, rows, shape, ksize, dil, half, tuning.map_sampled_lines)
    per_site = density.mean
    one_pass = per_site <= tuning.map_one_pass_max_pairs_per_site
    per_thread = tuning.map_chunks_per_thread
    on_team = one_pass and threads > 1 and rows.dtype == np.int32 and team.team_available()
    team_threads, threads = threads, _split_threads(threads, (1.0 + per_site) * cz.shape[0], tuning)
    passes_on_team = (
        not one_pass and threads > 1 and perm.dtype == np.int64 and perm.flags.c_contiguous and team.team_available()
    )
    sweep_args = (line_start, line_key, cz, perm, shape, ksize, dil, blocks)
    if on_team:  # torch's own threads sweep: no second pool, so small maps gain too
        emitted = _sweep_on_team(
            nblk,
            team_threads,
            line_start,
            line_key,
            cz,
            rows,
            shape,
            ksize,
            dil,
            blocks,
            counts,
            half,
            density,
            per_thread,
            tuning,
        )
    elif one_pass:  # one sweep into per-chunk buffers (sized from the sample; they grow if short)
        cuts = _chunk_cuts(nblk, threads, per_thread).tolist()
        calls = [
            (
                _subm_sweep,
                (
                    lo,
                    hi,
                    line_start,
                    line_key,
                    cz,
                    rows,
                    shape,
                    ksize,
                    dil,
                    blocks,
                    counts,
                    half,
                    _chunk_capacity(density, line_start, blocks, lo, hi, tuning),
                ),
            )
            for lo, hi in zip(cuts[:-1], cuts[1:])
        ]
        emitted = [(lo, hi, r) for lo, hi, r in zip(cuts[:-1], cuts[1:], _run_parallel(calls, threads))]
    else:  # two passes (count, fill): on torch's own threads where it can (no second pool)
        _two_pass_sweep(passes_on_team, nblk, threads, team_threads, per_thread, sweep_args, counts, None, None, _COUNT)
    per_offset = counts.sum(axis=0)
    if half:
        per_offset[kv // 2] = sorted_coords.shape[0]
        per_offset[: kv // 2] = per_offset[::-1][: kv // 2]
    cursors, starts = _cursors(counts, per_offset)
    total = int(starts[-1])
    pair_in = np.empty(total, np.int64)
    pair_out = np.empty(total, np.int64)
    cursors = np.ascontiguousarray(cursors)
    mirror = _mirror_bounds(starts, lower_half) if half else (0, 0)
    if on_team:  # placed and mirrored by the team too
        _place_on_team(emitted, team_threads, cursors, pair_in, pair_out, starts, mirror)
        return pair_in, pair_out, starts
    if one_pass:
        _run_parallel([(_place, (lo, hi, *bufs, cursors, pair_in, pair_out)) for lo, hi, bufs in emitted], threads)
    else:
        _two_pass_sweep(
            passes_on_team, nblk, threads, team_threads, per_thread, sweep_args, cursors, pair_in, pair_out, _FILL
        )
    _mirror_range(pair_in, pair_out, starts, *mirror)
    return pair_in, pair_out, starts


# --------------------------------------------------------------------------------------------------
# regular and transposed maps: candidate outputs per (input, offset)
# --------------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True, inline="always")
def _strided_target(c, i, stride, pad, dil, transposed, size):
    """The output coordinate that input coordinate ``c`` reaches through kernel position ``i`` on one
    axis (regular: ``(c + pad - dil * i) / stride``, exact division only; transposed:
    ``stride * c - pad + dil * i``), or ``-1`` when there is none inside ``[0, size)``."""
    if transposed:
        q = stride * c - pad + dil * i
    else:
        n = c + pad - dil * i
        if n < 0 or n % stride != 0:
            return -1
        q = n // stride
    return q if 0 <= q < size else -1


@nb.njit(cache=True, nogil=True)
def _strided_pass(
    blk_lo, blk_hi, coords, out_shape, ksize, stride, pad, dil, transposed, blocks, table, cand_key, cand_in, fill
):
    """Count or write, per input row and offset, the output key it reaches: regular
    ``q = (c + pad - dil * k) / stride`` (exact division only), transposed ``q = stride * c - pad + dil * k``;
    ``q`` must lie in ``out_shape``."""
    t0, t1, t2 = out_shape[0], out_shape[1], out_shape[2]
    k0, k1, k2 = ksize[0], ksize[1], ksize[2]
    for blk in range(blk_lo, blk_hi):
        row = table[blk]
        for i in range(blocks[blk], blocks[blk + 1]):
            b = coords[i, 0]
            for i0 in range(k0):
                q0 = _strided_target(coords[i, 1], i0, stride[0], pad[0], dil[0], transposed, t0)
                if q0 < 0:
                    continue
                for i1 in range(k1):
                    q1 = _strided_target(coords[i, 2], i1, stride[1], pad[1], dil[1], transposed, t1)
                    if q1 < 0:
                        continue
                    for i2 in range(k2):
                        q2 = _strided_target(coords[i, 3], i2, stride[2], pad[2], dil[2], transposed, t2)
                        if q2 < 0:
                            continue
                        k = (i0 * k1 + i1) * k2 + i2
                        if fill:
                            pos = row[k]
                            cand_key[pos] = ((b * t0 + q0) * t1 + q1) * t2 + q2
                            cand_in[pos] = i
                            row[k] = pos + 1
                        else:
                            row[k] += 1


def strided_candidates(
    coords: np.ndarray,
    out_shape: np.ndarray,
    ksize: np.ndarray,
    stride: np.ndarray,
    pad: np.ndarray,
    dil: np.ndarray,
    transposed: bool,
    threads: int = 1,
    tuning: CpuTuning = DEFAULT_TUNING,
):
    """Offset-major ``(cand_key, cand_in, offset_starts)`` of a regular (or transposed) map: for every
    input row ``i`` and offset ``k`` reaching an output site, that site's key
    ``((b * t0 + q0) * t1 + q1) * t2 + q2`` and ``i``; within an offset, rows ascend."""
    kv = int(np.prod(ksize))
    n = coords.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(kv + 1, np.int64)
    blocks = np.linspace(0, n, min(tuning.map_blocks, n) + 1).astype(np.int64)
    per_thread = tuning.map_chunks_per_thread
    counts = np.zeros((blocks.shape[0] - 1, kv), np.int64)
    # expected candidates per row: every offset (transposed), or prod(k / s) (regular: exact divisions only)
    threads = _split_threads(threads, n * (kv if transposed else float(np.prod(ksize / stride))), tuning)
    empty = np.zeros(0, np.int64)
    nblk = blocks.shape[0] - 1
    _run_blocks(
        _strided_pass,
        nblk,
        threads,
        per_thread,
        coords,
        out_shape,
        ksize,
        stride,
        pad,
        dil,
        transposed,
        blocks,
        counts,
        empty,
        empty,
        False,
    )
    cursors, starts = _cursors(counts, counts.sum(axis=0))
    total = int(starts[-1])
    cand_key = np.empty(total, np.int64)
    cand_in = np.empty(total, np.int64)
    _run_blocks(
        _strided_pass,
        nblk,
        threads,
        per_thread,
        coords,
        out_shape,
        ksize,
        stride,
        pad,
        dil,
        transposed,
        blocks,
        np.ascontiguousarray(cursors),
        cand_key,
        cand_in,
        True,
    )
    return cand_key, cand_in, starts


# --------------------------------------------------------------------------------------------------
# the identity offset
# --------------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def is_identity(pair_in, pair_out, start, stop):
    """True when ``pair_in[start + r] == pair_out[start + r] == r`` for every ``r < stop - start``."""
    for r in range(stop - start):
        if pair_in[start + r] != r or pair_out[start + r] != r:
            return False
    return True


def identity_offset(kmap) -> int:
    """The offset whose pairs are exactly ``(r, r)`` for every row ``r`` in order (the centre of a
    submanifold map with an odd kernel, as both builders write it), or ``-1`` (memoised on the map). Its
    product needs no gather/scatter: it is one dense GEMM that also initialises the accumulator."""
    return kmap.derived("identity_offset", lambda: _find_identity_offset(kmap))


def _find_identity_offset(kmap) -> int:
    kv = kmap.kernel_volume
    if kmap.num_in != kmap.num_out or kv % 2 == 0 or kmap.num_in == 0:
        return -1
    c = kv // 2
    s, e = kmap.offset_starts[c], kmap.offset_starts[c + 1]
    pair_in, pair_out = kmap.stored_pairs()  # the centre is stored on every map
    if e - s != kmap.num_in or not is_identity(pair_in.detach().numpy(), pair_out.detach().numpy(), s, e):
        return -1
    return c


# --------------------------------------------------------------------------------------------------
# torch tensors in, torch tensors out: the builders of :mod:`..kernel_map` call these
# --------------------------------------------------------------------------------------------------


def _lift3(indices: Tensor, spatial_shape: Sequence[int], geometry: ConvGeometry):
    """numpy int64 views lifted to 3 spatial axes (size-1 axes with kernel 1 prepended): sites
    ``[N, 4]``, then a dict of int64 ``[3]`` arrays for shape/kernel/stride/padding/dilation."""
    lead = 3 - len(spatial_shape)
    idx = indices.to(torch.int64)
    if lead:
        idx = torch.cat([idx[:, :1], idx.new_zeros((idx.shape[0], lead)), idx[:, 1:]], dim=1)

    def arr(values: Sequence[int], fill: int) -> np.ndarray:
        return np.array([fill] * lead + [int(v) for v in values], dtype=np.int64)

    params = dict(
        shape=arr(spatial_shape, 1),
        ksize=arr(geometry.kernel_size, 1),
        stride=arr(geometry.stride, 1),
        pad=arr(geometry.padding, 0),
        dil=arr(geometry.dilation, 1),
    )
    return idx.contiguous(), params


def submanifold_map_pairs(
    indices: Tensor, spatial_shape: Sequence[int], geometry: ConvGeometry, tuning: CpuTuning = DEFAULT_TUNING
) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    """``(pair_in, pair_out, offset_starts)`` of a submanifold map of CPU ``indices`` (1 to 3 spatial axes);
    on odd kernels the offsets before the centre are left unwritten (the caller stores half a map)."""
    idx, prm = _lift3(indices, spatial_shape, geometry)
    keys = encode(idx[:, 0], idx[:, 1:], tuple(prm["shape"].tolist()))
    if keys.numel() > 1 and not bool((keys[1:] > keys[:-1]).all()):
        keys, perm = torch.sort(keys)
        idx = idx.index_select(0, perm)
    else:
        perm = torch.arange(idx.shape[0], dtype=torch.int64)
    pair_in, pair_out, starts = submanifold_pairs(
        idx.numpy(),
        perm.numpy(),
        prm["shape"],
        prm["ksize"],
        prm["dil"],
        torch.get_num_threads(),
        lower_half=False,
        tuning=tuning,
    )
    return torch.from_numpy(pair_in), torch.from_numpy(pair_out), tuple(int(s) for s in starts)


def strided_map_pairs(
    indices: Tensor,
    spatial_shape: Sequence[int],
    out_shape: Sequence[int],
    geometry: ConvGeometry,
    transposed: bool,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> Tuple[Tensor, Tensor, Tensor, Tuple[int, ...]]:
    """``(out_sites, pair_in, pair_out, offset_starts)`` of a regular (or ``transposed``) map of CPU ``indices``:
    the output sites sorted by key, int32 ``[N_out, 1 + D]``."""
    idx, prm = _lift3(indices, spatial_shape, geometry)
    lead = 3 - len(spatial_shape)
    out3 = np.array([1] * lead + [int(s) for s in out_shape], dtype=np.int64)
    cand_key, pair_in, starts = strided_candidates(
        idx.numpy(),
        out3,
        prm["ksize"],
        prm["stride"],
        prm["pad"],
        prm["dil"],
        transposed,
        torch.get_num_threads(),
        tuning,
    )
    uniq, pair_out = torch.unique(torch.from_numpy(cand_key), sorted=True, return_inverse=True)
    out_sites = decode(uniq, tuple(out3.tolist()))
    if lead:
        out_sites = torch.cat([out_sites[:, :1], out_sites[:, 1 + lead :]], dim=1).contiguous()
    return out_sites, torch.from_numpy(pair_in), pair_out, tuple(int(s) for s in starts)
