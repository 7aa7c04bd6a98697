"""Group aggregation: the neighbour sums behind spatial-wise (group-shared) large-kernel convolution.

For a kernel map with pairs ``(j, i)`` per kernel offset ``k`` (input row ``j`` is the neighbour of
output row ``i`` at offset ``k``), a grouping ``g(k)`` of the offsets into ``G`` groups and an optional
per-offset encoding ``E [K, C]``::

    A[i, g, :] = sum_{k : g(k) = g}  sum_{(j, i) in pairs(k)}  ( x[j, :] + E[k, :] )       (group_aggregate)
    out[i, :]  = sum_g  A[i, g, :] @ W[g]                                                  (group_conv)

Backward, for upstream gradients ``dA`` (``dA[i, g] = dOut[i] W[g]^T`` for ``group_conv``)::

    dx[j] = sum_k sum_{(j, i) in pairs(k)} dA[i, g(k)]        dE[k] = sum_{(j, i) in pairs(k)} dA[i, g(k)]
    dW[g] = sum_i A[i, g]^T dOut[i]

The aggregation costs ``pairs x C`` additions each way; the weights cost ``G`` GEMM-equivalents, never ``K``.

Implementation: every pair is assigned a *slot* (a row of ``A``). ``group_aggregate`` uses dense slots
``i * G + g`` (``A`` is ``[N, G, C]``). On the CPU, ``group_conv`` uses compact slots: only the
``(i, g)`` with at least one active neighbour get a row (on LiDAR scans about 7 of the 27 groups of a 7^3
window are non-empty), stored group-major so that group ``g`` is one contiguous block ``A_g``; then
``A_g @ W[g]`` is one GEMM per group (in chunks), added into the output rows. Where torch runs on
libgomp, those products run fused per thread and row block on torch's team instead (bag sums, products
and row adds of a block in one thread's cache, in SIMD registers; :mod:`.fused_groups`).

The sums themselves are *embedding bags* (``torch.nn.functional.embedding_bag(mode="sum")``, FBGEMM's
vectorised kernels on the CPU, run on torch's own threads): with the table ``[x; E]`` (rows ``j`` and
``N_in + k``), slot ``s`` is the bag of the rows ``j`` and ``N_in + k`` of its pairs, so every slot is
summed once, output-stationary, and written once. ``group_conv``'s backward pass on a symmetric map with
a mirror-symmetric grouping (every SW-LK layer) is the same chunked product with mirrored, transposed
weights (see :class:`GroupConvFunction`; KITTI 7^3 fwd+bwd at 2 threads 184-264 -> 137 ms), and the weight
gradient comes from the same bags of ``dOut`` in that pass instead of from an ``A`` kept by the forward
(KITTI 7^3 32 -> 32 fwd+bwd at 2 threads 104-112 -> 71-73 ms); otherwise it
uses bags too: ``dx[j]`` is the bag of the slots of input row ``j``'s pairs, ``dE[k]`` the bag of the
slots of offset ``k``'s pairs. The bag
layouts (counting sorts of the pairs by slot and by input row, in numba) are built once per kernel map
and grouping and memoised on the map; the compact one group by group, together with its bag entries
(:func:`_compact_layout`: a per-row count array that stays in cache, no ``[G, N]`` matrices, 2x faster on
KITTI 7^3; the rows with pairs found from a bitset, and the group's pairs read twice while in cache: 9.0
-> 7.8 ms at 1 thread; indexed through :data:`.array_index.uidx`: 7.2-7.4 -> 5.4-5.8 ms), and from
``_TEAM_LAYOUT_MIN_PAIRS`` pairs split by group ranges over torch's own OpenMP team (KITTI 7^3 at 2
threads 8.9 -> 5.2 ms). On a symmetric map the compact layout and the
backward's per-offset sums read the offsets before the centre as the mirrors of those after it
(:func:`_offset_pairs`), so a lazily mirrored map (``KernelMap.mirror_lazily``) is never filled. Nothing here
starts threads of its own: a second thread pool next to torch's OpenMP workers (which spin for
milliseconds after every parallel region) was measured to slow both down on a 2-core machine.

Backends (:func:`choose_backend`): ``"numba"`` (CPU float32/float64) and ``"torch"`` (any device/dtype:
``index_add_`` over dense slots, then one GEMM ``A.reshape(N, G C) @ W.reshape(G C, C_out)``).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numba as nb
import numpy as np
import torch
import torch.nn.functional as F
from numba.cpython.unsafe.numbers import trailing_zeros
from torch import Tensor

from . import fused_groups, host_memory, openmp_team, simd_products
from .array_index import uidx
from .kernel_map import KernelMap
from .validation import check_group_index, check_kernel_map, check_same_device, check_tensor

BACKENDS = ("numba", "torch")
# Pairs processed at once by the torch path (bounds the temporary [pairs, C] buffer).
_TORCH_PAIR_CHUNK = 1 << 21
# Rows per GEMM of group_conv's backward loop: the weight gradient, and the gradient of A where it is formed
# (non-symmetric maps or groupings).
_GEMM_CHUNK = 1 << 16
# Inference steps of this many bytes of A (or Y) rows stay in cache between the aggregation, the GEMM and
# the row adds, and bound the temporaries: KITTI 7^3 (32 channels) cached forward 0-15 % faster (in 6 of 8
# alternating runs at 1 and 2 threads) with 8-16 k rows than with whole group blocks (25 k rows) or 32 k.
_INFERENCE_CHUNK_BYTES = 1 << 21
_MIN_INFERENCE_CHUNK_ROWS = 1024
# The compact slot layout (numbering, bag entries) is split over torch's OpenMP team from this many pairs.
_TEAM_LAYOUT_MIN_PAIRS = 200_000


# ---------------------------------------------------------------------------------------------------------
# numba kernels: serial, nogil, compiled on first call (lazily) and cached on disk.
@nb.njit(cache=True, nogil=True)
def _csr(key, n):
    """Stable counting sort of pair indices by ``key`` row: ``ptr [n + 1]`` and ``perm [P]``."""
    num = key.shape[0]
    ptr = np.zeros(n + 1, np.int64)
    for p in range(num):
        ptr[key[p] + 1] += 1
    for r in range(n):
        ptr[r + 1] += ptr[r]
    fill = ptr[:-1].copy()
    perm = np.empty(num, np.int64)
    for p in range(num):
        r = key[p]
        perm[fill[r]] = p
        fill[r] += 1
    return ptr, perm


@nb.njit(cache=True, nogil=True, inline="always")
def _put_entry(entries, q, j, table_row, with_encoding):
    """Bag entry ``q``: input row ``j``, or (``with_encoding``) the pair ``(j, table_row)`` at ``2q, 2q + 1``."""
    if with_encoding:
        entries[uidx(2 * q)] = j
        entries[uidx(2 * q + 1)] = table_row
    else:
        entries[uidx(q)] = j


@nb.njit(cache=True, nogil=True)
def _fill_bags(pair_in, slot, starts, bag_ptr, num_in, with_encoding, entries):
    """The bag entries in slot order (dense layout, ``slot[p]`` the slot of pair ``p``; stable: offsets
    ascending within a slot): ``pair_in`` of every pair or (``with_encoding``) the pairs
    ``(pair_in, num_in + k)`` interleaved."""
    cursor = bag_ptr[:-1].copy()
    for k in range(starts.shape[0] - 1):
        for p in range(starts[k], starts[k + 1]):
            s = slot[p]
            q = cursor[s]
            cursor[s] = q + 1
            _put_entry(entries, q, pair_in[p], num_in + k, with_encoding)


@nb.njit(cache=True, nogil=True, inline="always")
def _offset_pairs(pair_in, pair_out, starts, k, mirrored):
    """``(ins, outs, lo, hi)``: offset ``k``'s pairs are ``(ins[p], outs[p])`` for ``lo <= p < hi``; with
    ``mirrored`` (a symmetric map read through :meth:`.KernelMap.stored_pairs`) an offset before the centre
    is read as offset ``K - 1 - k`` with input and output swapped."""
    kv = starts.shape[0] - 1
    if mirrored and k < kv // 2:
        m = kv - 1 - k
        return pair_out, pair_in, starts[m], starts[m + 1]
    return pair_in, pair_out, starts[k], starts[k + 1]


@nb.njit(cache=True, nogil=True, inline="always")
def _fill_group_entries(pair_in, pair_out, starts, offsets, offset_ptr, g, cursor, num_in, with_encoding, entries,
                        mirrored):
    """Group ``g``'s bag entries (:func:`_put_entry`), every pair at its output row's write cursor
    ``cursor[i]`` (advanced), its offsets in ``offsets`` order (``mirrored``: see :func:`_offset_pairs`)."""
    for t in range(offset_ptr[g], offset_ptr[g + 1]):
        k = offsets[t]
        ins, outs, lo, hi = _offset_pairs(pair_in, pair_out, starts, k, mirrored)
        for p in range(lo, hi):
            i = uidx(outs[uidx(p)])
            q = cursor[i]
            cursor[i] = q + 1
            _put_entry(entries, q, ins[uidx(p)], num_in + k, with_encoding)


@nb.njit(cache=True, nogil=True)
def _compact_layout(pair_in, pair_out, starts, offsets, offset_ptr, g_lo, g_hi, s, count, seen, rows, bag_ptr, gstart,
                    num_in, entries, mirrored):
    """The compact layout of groups ``[g_lo, g_hi)`` with its bag entries, one group at a time (group ``g``
    owns the offsets ``offsets[offset_ptr[g]:offset_ptr[g + 1]]``), so that the group's pairs are still in
    cache when they are read the second time:

    1. count the pairs of every output row into ``count`` and mark the rows in the bitset ``seen``;
    2. number the marked rows in ascending order from slot ``s`` (``rows[s] = i``, ``bag_ptr[s + 1] =
       bag_ptr[s] + pairs of (g, i)``, ``gstart[g + 1]`` = end of group ``g``'s block), visiting only the
       set bits (not all ``num_out`` rows: most groups have few of them); ``count[i]`` becomes the row's
       bag cursor;
    3. write the entries ``(pair_in, num_in + k)`` of every pair at its row's cursor (a slot's pairs by
       offset, in ``offsets`` order).

    ``count`` (``[num_out]``) and ``seen`` (uint64 ``[ceil(num_out / 64)]``) are zeros on entry and left
    zero; ``bag_ptr[s]`` must hold the bag position of slot ``s``. ``mirrored``: the pairs are read as in
    :func:`_offset_pairs`. Returns the slot after the last."""
    one = np.uint64(1)
    for g in range(g_lo, g_hi):
        first = s
        for t in range(offset_ptr[g], offset_ptr[g + 1]):
            ins, outs, lo, hi = _offset_pairs(pair_in, pair_out, starts, offsets[t], mirrored)
            for p in range(lo, hi):
                i = outs[uidx(p)]
                count[uidx(i)] += 1
                seen[uidx(i >> 6)] |= one << np.uint64(i & 63)
        pos = bag_ptr[s]
        for w in range(seen.shape[0]):
            word = seen[w]
            if word == 0:
                continue
            seen[w] = 0
            while word != 0:
                i = w * 64 + np.int64(trailing_zeros(word))
                word &= word - one
                c = count[uidx(i)]
                count[uidx(i)] = pos
                rows[uidx(s)] = i
                pos += c
                bag_ptr[uidx(s + 1)] = pos
                s += 1
        gstart[g + 1] = s
        _fill_group_entries(pair_in, pair_out, starts, offsets, offset_ptr, g, count, num_in, True, entries,
                            mirrored)
        for r in range(first, s):
            count[uidx(rows[uidx(r)])] = 0
    return s


@nb.njit(cache=True, nogil=True)
def _compact_bags(pair_in, pair_out, starts, offsets, offset_ptr, g_lo, g_hi, rows, bag_ptr, gstart, cursor, num_in,
                  with_encoding, entries, mirrored):
    """The bag entries of groups ``[g_lo, g_hi)`` of the compact layout of :func:`_compact_layout`, in slot
    order (stable: a slot's pairs by offset, in ``offsets`` order): ``pair_in`` of every pair or
    (``with_encoding``) the pairs ``(pair_in, num_in + k)`` interleaved. One group at a time, through the
    per-row write cursor ``cursor [num_out]`` (scratch); ``mirrored`` as in :func:`_offset_pairs`."""
    for g in range(g_lo, g_hi):
        for s in range(gstart[g], gstart[g + 1]):
            cursor[rows[s]] = bag_ptr[s]
        _fill_group_entries(pair_in, pair_out, starts, offsets, offset_ptr, g, cursor, num_in, with_encoding, entries,
                            mirrored)


@nb.njit(cache=True, nogil=True)
def _compact_pair_slots(pair_in, pair_out, starts, offsets, offset_ptr, rows, gstart, num_out, slot, mirrored):
    """``slot[p]`` = the compact slot of every pair ``p`` (group by group, through a per-row table). A pair
    read mirrored (:func:`_offset_pairs`) keeps the position its mirror copy has in the complete map."""
    slot_of_row = np.empty(num_out, slot.dtype)
    for g in range(offset_ptr.shape[0] - 1):
        for s in range(gstart[g], gstart[g + 1]):
            slot_of_row[rows[s]] = s
        for t in range(offset_ptr[g], offset_ptr[g + 1]):
            k = offsets[t]
            ins, outs, lo, hi = _offset_pairs(pair_in, pair_out, starts, k, mirrored)
            for p in range(lo, hi):
                slot[starts[k] + p - lo] = slot_of_row[outs[p]]


@nb.njit(cache=True, nogil=True)
def _pair_inputs(pair_in, pair_out, starts, mirrored):
    """int64 ``[P]``: the input row of every pair of the complete map (a copy; ``mirrored`` as in
    :func:`_offset_pairs`)."""
    inputs = np.empty(pair_in.shape[0], np.int64)
    for k in range(starts.shape[0] - 1):
        ins, outs, lo, hi = _offset_pairs(pair_in, pair_out, starts, k, mirrored)
        for p in range(lo, hi):
            inputs[starts[k] + p - lo] = ins[p]
    return inputs


@nb.njit(cache=True, nogil=True)
def _slots_below(rows, gstart, r):
    """The slots (of all groups) whose row is below ``r``: a group's rows ascend, so one binary search each."""
    total = 0
    for g in range(gstart.shape[0] - 1):
        total += np.searchsorted(rows[gstart[g]:gstart[g + 1]], r)
    return total


@nb.njit(cache=True, nogil=True)
def _part_rows(rows, gstart, n, parts):
    """int64 ``[parts + 1]``: row cuts ``0 = r_0 <= ... <= r_parts = n`` with ``r_t`` the smallest row that has
    at least ``t / parts`` of the slots below it (bisection over :func:`_slots_below`, never a pass over the
    slots: 0.6 ms on KITTI 7^3's 0.66 M slots before)."""
    cuts = np.empty(parts + 1, np.int64)
    cuts[0], cuts[parts] = 0, n
    for t in range(1, parts):
        target = gstart[gstart.shape[0] - 1] * t / parts
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if _slots_below(rows, gstart, mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        cuts[t] = lo
    return cuts


@nb.njit(cache=True, nogil=True)
def _block_ranges(rows, gstart, bounds, ranges):
    """``ranges[b, g]`` = the slots ``[lo, hi)`` of group ``g`` whose rows lie in ``[bounds[b], bounds[b + 1])``
    (a group's rows ascend, as do the ``bounds``): the bounds binary-searched in each group's rows."""
    for g in range(gstart.shape[0] - 1):
        at = gstart[g] + np.searchsorted(rows[gstart[g]:gstart[g + 1]], bounds)
        for b in range(bounds.shape[0] - 1):
            ranges[b, g, 0] = at[b]
            ranges[b, g, 1] = at[b + 1]


_TEAM_LAYOUT_HEADER = 17  # int64 words of the argument block of _team_slots_body / _team_bags_body


@nb.njit(nogil=True, inline="always")
def _team_layout_views(block):
    """The arrays named by a layout argument block (int64): ``[pair_in, pair_out, P, starts, K, offsets,
    offset_ptr, G, ranges, R, scratch, num_out, rows, bag_ptr, gstart, extra, L]``: addresses and sizes;
    ``ranges [R + 1]`` group boundaries, ``scratch [R, num_out]`` int32 per-range scratch, ``rows [L]`` and
    ``bag_ptr [L + 1]`` int32; ``extra`` is the body's own."""
    h = nb.carray(block, (_TEAM_LAYOUT_HEADER,))
    num_pairs, kv, ng, nr, n = h[2], h[4], h[7], h[9], h[11]
    pair_in = nb.carray(openmp_team.int64_pointer(h[0]), (num_pairs,))
    pair_out = nb.carray(openmp_team.int64_pointer(h[1]), (num_pairs,))
    starts = nb.carray(openmp_team.int64_pointer(h[3]), (kv + 1,))
    offsets = nb.carray(openmp_team.int64_pointer(h[5]), (kv,))
    offset_ptr = nb.carray(openmp_team.int64_pointer(h[6]), (ng + 1,))
    ranges = nb.carray(openmp_team.int64_pointer(h[8]), (nr + 1,))
    scratch = nb.carray(openmp_team.int32_pointer(h[10]), (nr, n))
    rows = nb.carray(openmp_team.int32_pointer(h[12]), (h[16],))
    bag_ptr = nb.carray(openmp_team.int32_pointer(h[13]), (h[16] + 1,))
    gstart = nb.carray(openmp_team.int64_pointer(h[14]), (ng + 1,))
    return pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart


def _team_slots_body(block):
    """Torch's OpenMP team builds the compact layout and its bag entries (:meth:`_Slots._team_slots`): range
    ``r`` of the groups starts at slot ``base[r]`` (``bag_ptr[base[r]]`` preset) and records its end in
    ``ends[r]``; ``extra`` = the address of ``[base (R), ends (R), entries, num_in, seen, W, mirrored]`` (int64;
    ``seen`` = ``[R, W]`` zeroed uint64 bitsets, ``entries`` the ``2 P`` int32 interleaved entries, ``mirrored``
    as in :func:`_offset_pairs`)."""
    pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart = _team_layout_views(block)
    h = nb.carray(block, (_TEAM_LAYOUT_HEADER,))
    nr, num_pairs = h[9], h[2]
    extra = nb.carray(openmp_team.int64_pointer(h[15]), (2 * nr + 5,))
    entries = nb.carray(openmp_team.int32_pointer(extra[2 * nr]), (2 * num_pairs,))
    seen = nb.carray(openmp_team.uint64_pointer(extra[2 * nr + 2]), (nr, extra[2 * nr + 3]))
    mirrored = extra[2 * nr + 4] != 0
    for r in range(openmp_team.omp_get_thread_num(), nr, openmp_team.omp_get_num_threads()):
        extra[nr + r] = _compact_layout(pair_in, pair_out, starts, offsets, offset_ptr, ranges[r], ranges[r + 1],
                                        extra[r], scratch[r], seen[r], rows, bag_ptr, gstart, extra[2 * nr + 1],
                                        entries, mirrored)


def _team_bags_body(block):
    """Torch's OpenMP team writes the bag entries (:meth:`_Slots._bag_entries`), one group range per thread;
    ``extra`` = ``[entries address, num_in, with_encoding, mirrored]`` (int64)."""
    pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart = _team_layout_views(block)
    h = nb.carray(block, (_TEAM_LAYOUT_HEADER,))
    nr, num_pairs = h[9], h[2]
    extra = nb.carray(openmp_team.int64_pointer(h[15]), (4,))
    with_encoding = extra[2] != 0
    entries = nb.carray(openmp_team.int32_pointer(extra[0]), ((2 if with_encoding else 1) * num_pairs,))
    for r in range(openmp_team.omp_get_thread_num(), nr, openmp_team.omp_get_num_threads()):
        _compact_bags(pair_in, pair_out, starts, offsets, offset_ptr, ranges[r], ranges[r + 1], rows, bag_ptr,
                      gstart, scratch[r], extra[1], with_encoding, entries, extra[3] != 0)


# ---------------------------------------------------------------------------------------------------------
def choose_backend(device: torch.device, dtype: torch.dtype) -> str:
    """``"numba"`` for float32/float64 CPU tensors, ``"torch"`` otherwise (CUDA, half precision)."""
    if device.type == "cpu" and dtype in (torch.float32, torch.float64):
        return "numba"
    return "torch"


def _bitsets(n: int, count: int) -> np.ndarray:
    """``count`` zeroed bitsets of uint64 words with one bit per row of ``n`` (``[count, ceil(n / 64)]``, the
    ``seen`` scratch of :func:`_compact_layout`)."""
    return np.zeros((count, (n + 63) // 64), np.uint64)


def _starts(kmap: KernelMap) -> np.ndarray:
    return np.asarray(kmap.offset_starts, dtype=np.int64)


def _pair_offsets(kmap: KernelMap) -> np.ndarray:
    """int64 ``[P]``: the kernel offset of every pair."""
    return np.repeat(np.arange(kmap.kernel_volume, dtype=np.int64), np.diff(_starts(kmap)))


class _Slots:
    """Where every pair of a kernel map accumulates (numba path): every pair belongs to a *slot* (a row of
    ``A``), the slot of its output row ``i`` and its offset's group ``g``. ``compact``: only non-empty
    ``(g, i)`` get a slot, group-major (``A_g`` is the block ``gstart[g]:gstart[g + 1]``, its output rows
    ``rows[gstart[g]:gstart[g + 1]]`` ascending); else the dense ``i * G + g`` (``A`` is ``[N, G, C]``).
    Slot ``s`` owns the pairs ``bag_ptr[s]:bag_ptr[s + 1]`` of the bag order. Built once per map and
    grouping (see :meth:`for_map`), the compact layout with its bag entries with encoding rows; other bag
    entries and the per-pair slots are built on first use; read-only otherwise."""

    def __init__(self, kmap: KernelMap, group: np.ndarray, num_groups: int, compact: bool) -> None:
        self.num_in, self.num_out, self.kernel_volume = kmap.num_in, kmap.num_out, kmap.kernel_volume
        self.num_pairs = kmap.num_pairs
        self.starts = _starts(kmap)
        self.compact = compact
        # the compact layout reads a symmetric map's lower offsets as the mirrors of the upper ones, so that
        # a lazily mirrored map (KernelMap.mirror_lazily) is never filled for the SW-LK forward
        self.mirrored = compact and kmap.symmetric
        pair_in, pair_out = kmap.stored_pairs() if self.mirrored else (kmap.pair_in, kmap.pair_out)
        self.pair_in, self.pair_out = pair_in.numpy(), pair_out.numpy()
        n = kmap.num_out
        # int32 slots and bag entries (half the memory of the layouts) whenever every index fits
        largest = max(2 * self.num_pairs, n * num_groups, self.num_in + self.kernel_volume)
        self.index_dtype = np.int32 if largest < 2 ** 31 else np.int64
        self._slot: Optional[np.ndarray] = None
        self._by_slot: Dict[bool, np.ndarray] = {}
        if compact:  # the slots and the bag entries with encoding rows, built together
            # the offsets of every group, ascending within a group
            self.offsets = np.argsort(group, kind="stable").astype(np.int64)
            self.offset_ptr = np.searchsorted(group[self.offsets], np.arange(num_groups + 1)).astype(np.int64)
            self.gstart = np.zeros(num_groups + 1, np.int64)
            self.ranges = self._group_ranges(torch.get_num_threads())
            entries = np.empty(2 * self.num_pairs, self.index_dtype)
            if self.ranges.shape[0] > 2:
                self.rows, self.bag_ptr = self._team_slots(entries)
            else:
                rows = np.empty(self.num_pairs, self.index_dtype)
                bag_ptr = np.empty(self.num_pairs + 1, self.index_dtype)
                bag_ptr[0] = 0
                end = _compact_layout(self.pair_in, self.pair_out, self.starts, self.offsets, self.offset_ptr, 0,
                                      num_groups, 0, np.zeros(n, self.index_dtype), _bitsets(n, 1)[0], rows, bag_ptr,
                                      self.gstart, self.num_in, entries, self.mirrored)
                self.rows, self.bag_ptr = rows[:end], bag_ptr[:end + 1]
            self._by_slot[True] = entries
            self.num_slots = self.rows.shape[0]
        else:  # slot i * G + g of every pair, and the bags' starts from the pairs per slot
            self.num_slots = n * num_groups
            self._slot = (self.pair_out * num_groups + group[_pair_offsets(kmap)]).astype(self.index_dtype)
            self.bag_ptr = np.concatenate([[0], np.cumsum(np.bincount(self._slot, minlength=self.num_slots))]
                                          ).astype(self.index_dtype)
        self._by_input: Optional[Tuple[Tensor, Tensor]] = None
        self._row_blocks: Dict[Tuple[int, int], Tuple[np.ndarray, np.ndarray]] = {}

    def _group_ranges(self, threads: int) -> np.ndarray:
        """Group boundaries ``[R + 1]`` of the compact layout's work: one range (serial) below
        ``_TEAM_LAYOUT_MIN_PAIRS`` pairs, with one thread, without torch's libgomp or with int64 indices;
        else ``threads`` contiguous ranges of about equal work (a group costs its pairs plus one pass over
        the output rows)."""
        num_groups = self.offset_ptr.shape[0] - 1
        if (threads <= 1 or self.num_pairs < _TEAM_LAYOUT_MIN_PAIRS or self.index_dtype != np.int32
                or not openmp_team.team_available()):
            return np.array([0, num_groups], np.int64)
        work = np.concatenate([[0], np.cumsum(np.diff(self._pairs_before_groups()) + self.num_out)])
        cuts = np.searchsorted(work, work[-1] * np.arange(1, threads) / threads)
        return np.unique(np.concatenate([[0], cuts, [num_groups]])).astype(np.int64)

    def _pairs_before_groups(self) -> np.ndarray:
        """int64 ``[G + 1]``: the pairs of the groups before each group (a group owns a run of
        :attr:`offsets`, not of the offset-major pairs), and the total last."""
        return np.concatenate([[0], np.cumsum(np.diff(self.starts)[self.offsets])])[self.offset_ptr]

    def _run_layout_team(self, body, rows: np.ndarray, bag_ptr: np.ndarray, extra: np.ndarray) -> None:
        """``body`` (:func:`_team_slots_body` or :func:`_team_bags_body`) on torch's OpenMP team, one group
        range of :attr:`ranges` per thread, each with an int32 scratch row of ``num_out``."""
        num_ranges = self.ranges.shape[0] - 1
        scratch = np.zeros((num_ranges, self.num_out), np.int32)
        block = np.array([self.pair_in.ctypes.data, self.pair_out.ctypes.data, self.num_pairs,
                          self.starts.ctypes.data, self.kernel_volume, self.offsets.ctypes.data,
                          self.offset_ptr.ctypes.data, self.offset_ptr.shape[0] - 1, self.ranges.ctypes.data,
                          num_ranges, scratch.ctypes.data, self.num_out, rows.ctypes.data, bag_ptr.ctypes.data,
                          self.gstart.ctypes.data, extra.ctypes.data, rows.shape[0]], np.int64)
        openmp_team.run_on_team(body, block, num_ranges)

    def _team_slots(self, entries: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(rows, bag_ptr)`` of the compact layout numbered on torch's team (:func:`_team_slots_body`), which
        also writes the interleaved bag ``entries``: range ``r`` numbers its slots from ``base[r]`` = the pairs
        of the ranges before it (+ 1 spare entry each, so that no two threads write one ``bag_ptr`` entry), an
        upper bound of their slots, and the blocks are then moved together (the bag positions, and so the
        entries, are final from the start)."""
        ranges = self.ranges
        num_ranges = ranges.shape[0] - 1
        pairs_before = self._pairs_before_groups()[ranges]
        base = pairs_before[:-1] + np.arange(num_ranges)
        rows = np.empty(self.num_pairs + num_ranges, np.int32)
        bag_ptr = np.empty(self.num_pairs + num_ranges + 1, np.int32)
        bag_ptr[base] = pairs_before[:-1]
        seen = _bitsets(self.num_out, num_ranges)
        extra = np.concatenate([base, np.zeros(num_ranges, np.int64),
                                [entries.ctypes.data, self.num_in, seen.ctypes.data, seen.shape[1],
                                 int(self.mirrored)]]).astype(np.int64)
        self._run_layout_team(_team_slots_body, rows, bag_ptr, extra)
        ends = extra[num_ranges:2 * num_ranges]
        dst = 0
        for r in range(num_ranges):
            b, n = int(base[r]), int(ends[r] - base[r])
            if b != dst:  # moved left; numpy copes with the overlap
                rows[dst:dst + n] = rows[b:b + n]
                bag_ptr[dst:dst + n + 1] = bag_ptr[b:b + n + 1]
                self.gstart[ranges[r] + 1:ranges[r + 1] + 1] -= b - dst
            dst += n
        return rows[:dst], bag_ptr[:dst + 1]

    @classmethod
    def for_map(cls, kmap: KernelMap, group: np.ndarray, num_groups: int, compact: bool) -> "_Slots":
        """The slots of ``kmap`` for this grouping, memoised on the map."""
        key = ("group_slots", group.tobytes(), int(num_groups), bool(compact))
        return kmap.derived(key, lambda: cls(kmap, group, num_groups, compact))

    @property
    def slot(self) -> np.ndarray:
        """``[P]``: the slot of every pair (built on first use: the backward pass needs it)."""
        if self._slot is None:  # compact layout (the dense one has it from the start)
            self._slot = np.empty(self.num_pairs, self.index_dtype)
            _compact_pair_slots(self.pair_in, self.pair_out, self.starts, self.offsets, self.offset_ptr, self.rows,
                                self.gstart, self.num_out, self._slot, self.mirrored)
        return self._slot

    def _bag_entries(self, with_encoding: bool) -> np.ndarray:
        """The bag entries of every slot, in slot order (slot ``s`` owns ``bag_ptr[s]:bag_ptr[s + 1]``
        times the width): its pairs' input rows ``j``, interleaved with ``N_in + k`` (the encoding rows of
        the table) when ``with_encoding``."""
        if with_encoding not in self._by_slot:
            entries = np.empty((2 if with_encoding else 1) * self.num_pairs, self.index_dtype)
            if self.compact and self.ranges.shape[0] > 2:
                self._run_layout_team(_team_bags_body, self.rows, self.bag_ptr, np.array(
                    [entries.ctypes.data, self.num_in, int(with_encoding), int(self.mirrored)], np.int64))
            elif self.compact:
                _compact_bags(self.pair_in, self.pair_out, self.starts, self.offsets, self.offset_ptr, 0,
                              self.offset_ptr.shape[0] - 1, self.rows, self.bag_ptr, self.gstart,
                              np.empty(self.num_out, self.index_dtype), self.num_in, with_encoding, entries,
                              self.mirrored)
            else:
                _fill_bags(self.pair_in, self.slot, self.starts, self.bag_ptr, self.num_in, with_encoding, entries)
            self._by_slot[with_encoding] = entries
        return self._by_slot[with_encoding]

    def _bags_by_input(self) -> Tuple[Tensor, Tensor]:
        """``(ptr [N_in + 1], slots [P])``: per input row, the slots its pairs feed."""
        if self._by_input is None:
            ptr, perm = _csr(_pair_inputs(self.pair_in, self.pair_out, self.starts, self.mirrored), self.num_in)
            self._by_input = (torch.from_numpy(ptr.astype(self.index_dtype)), torch.from_numpy(self.slot[perm]))
        return self._by_input

    def table(self, x: Tensor, enc: Optional[Tensor]) -> Tensor:
        """The embedding table of :meth:`aggregate`: ``x``, or ``[x; E]`` (in :mod:`.host_memory`)."""
        if enc is None:
            return x
        return torch.cat([x, enc], out=host_memory.empty((x.shape[0] + enc.shape[0], x.shape[1]), x.dtype))

    def aggregate(self, table: Tensor, with_encoding: bool, lo: int = 0, hi: Optional[int] = None) -> Tensor:
        """``A[s] = sum_{pairs (j, i, k) of slot s} x[j] (+ E[k])`` for the slots ``s`` in ``[lo, hi)``,
        as ``[hi - lo, C]``; ``table`` from :meth:`table`."""
        hi = self.num_slots if hi is None else hi
        if hi <= lo:
            return table.new_zeros((0, table.shape[1]))
        entries = torch.from_numpy(self._bag_entries(with_encoding))
        width = 2 if with_encoding else 1
        p0, p1 = int(self.bag_ptr[lo]), int(self.bag_ptr[hi])
        offsets = torch.from_numpy((width * (self.bag_ptr[lo:hi] - p0)).astype(self.index_dtype))
        return F.embedding_bag(entries[width * p0:width * p1], table, offsets, mode="sum")

    def gather(self, x: Tensor, enc: Optional[Tensor]) -> Tensor:
        """``A [num_slots, C]``."""
        return self.aggregate(self.table(x, enc), enc is not None)

    def row_blocks(self, rows_per_block: int, parts: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(ranges [blocks, G, 2], part_cuts [parts + 1])`` (compact layout, int64): the output rows are cut
        into ``parts`` ranges of about equal slot counts, each range into blocks of at most
        ``rows_per_block`` rows; ``ranges[b, g]`` is the slot range of group ``g`` whose rows fall in block
        ``b`` (a range, as a group's rows ascend) and part ``t`` owns blocks ``part_cuts[t]:part_cuts[t +
        1]``. Memoised per block size and part count."""
        key = (rows_per_block, parts)
        if key not in self._row_blocks:
            n = self.num_out
            part_rows = _part_rows(self.rows, self.gstart, n, parts)
            bounds = [np.arange(part_rows[t], part_rows[t + 1], rows_per_block) for t in range(parts)]
            part_cuts = np.concatenate([[0], np.cumsum([b.shape[0] for b in bounds])]).astype(np.int64)
            bounds = np.append(np.concatenate(bounds), n).astype(np.int64)
            ranges = np.empty((bounds.shape[0] - 1, self.gstart.shape[0] - 1, 2), np.int64)
            _block_ranges(self.rows, self.gstart, bounds, ranges)
            self._row_blocks[key] = (ranges, part_cuts)
        return self._row_blocks[key]

    @property
    def entries(self) -> np.ndarray:
        """The interleaved bag entries ``(j, N_in + k)`` per pair that the compact layout builds with its slots
        (read by :mod:`.fused_groups`)."""
        return self._by_slot[True]

    def blocks(self, chunk: int):
        """``(g, start, end)``: the compact slot blocks of every group, cut into pieces of ``chunk`` rows."""
        for g in range(len(self.gstart) - 1):
            for c0 in range(int(self.gstart[g]), int(self.gstart[g + 1]), chunk):
                yield g, c0, min(int(self.gstart[g + 1]), c0 + chunk)

    def scatter(self, d_a: Tensor, need_x: bool, need_e: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """``(dx [N_in, C], dE [K, C])`` from ``d_a [num_slots, C]`` (``None`` where not needed):
        ``dx[j] = sum of d_a over the slots of j's pairs``, ``dE[k] = sum over the slots of k's pairs``."""
        c_dim = d_a.shape[1]
        d_x = d_e = None
        if need_x:
            if self.num_pairs:
                ptr, slots = self._bags_by_input()
                d_x = F.embedding_bag(slots, d_a, ptr[:-1], mode="sum")
            else:
                d_x = d_a.new_zeros((self.num_in, c_dim))
        if need_e:
            if self.num_pairs:
                d_e = F.embedding_bag(torch.from_numpy(self.slot), d_a,
                                      torch.from_numpy(self.starts[:-1].astype(self.index_dtype)),
                                      mode="sum")
            else:
                d_e = d_a.new_zeros((self.kernel_volume, c_dim))
        return d_x, d_e


def _chunks(num: int):
    for s in range(0, num, _TORCH_PAIR_CHUNK):
        yield s, min(num, s + _TORCH_PAIR_CHUNK)


def _forward_torch(x: Tensor, enc: Optional[Tensor], kmap: KernelMap, group: Tensor, num_groups: int) -> Tensor:
    c_dim = x.shape[1]
    out = x.new_zeros((kmap.num_out * num_groups, c_dim))
    koff = torch.from_numpy(_pair_offsets(kmap)).to(x.device)
    for s, e in _chunks(kmap.num_pairs):
        k = koff[s:e]
        vals = x.index_select(0, kmap.pair_in[s:e])
        if enc is not None:
            vals = vals + enc.index_select(0, k)
        out.index_add_(0, kmap.pair_out[s:e] * num_groups + group[k], vals)
    return out.view(kmap.num_out, num_groups, c_dim)


def _backward_torch(d_a: Tensor, kmap: KernelMap, group: Tensor, need_x: bool, need_e: bool, c_dim: int,
                    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    num_groups = d_a.shape[1]
    flat = d_a.reshape(-1, c_dim)
    koff = torch.from_numpy(_pair_offsets(kmap)).to(d_a.device)
    d_x = d_a.new_zeros((kmap.num_in, c_dim)) if need_x else None
    d_e = d_a.new_zeros((kmap.kernel_volume, c_dim)) if need_e else None
    for s, e in _chunks(kmap.num_pairs):
        k = koff[s:e]
        vals = flat.index_select(0, kmap.pair_out[s:e] * num_groups + group[k])
        if d_x is not None:
            d_x.index_add_(0, kmap.pair_in[s:e], vals)
        if d_e is not None:
            d_e.index_add_(0, k, vals)
    return d_x, d_e


class GroupAggregateFunction(torch.autograd.Function):
    """Autograd wrapper of the dense aggregation ``A [N_out, G, C]`` (see the module docstring)."""

    @staticmethod
    def forward(ctx, features: Tensor, encoding: Optional[Tensor], kmap: KernelMap, group: Tensor,
                num_groups: int, backend: str) -> Tensor:
        ctx.kmap, ctx.backend, ctx.c_dim = kmap, backend, features.shape[1]
        ctx.save_for_backward(group)
        if backend == "torch":
            return _forward_torch(features, encoding, kmap, group, num_groups)
        ctx.slots = _Slots.for_map(kmap, group.numpy(), num_groups, compact=False)
        return ctx.slots.gather(features, encoding).view(kmap.num_out, num_groups, features.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_a: Tensor):
        (group,) = ctx.saved_tensors
        need_x, need_e = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if ctx.backend == "torch":
            d_x, d_e = _backward_torch(grad_a.contiguous(), ctx.kmap, group, need_x, need_e, ctx.c_dim)
        else:
            d_x, d_e = ctx.slots.scatter(grad_a.reshape(-1, ctx.c_dim).contiguous(), need_x, need_e)
        return d_x, d_e, None, None, None, None


class GroupConvFunction(torch.autograd.Function):
    """``out = sum_g A_g @ W[g]`` on compact slots (numba path), computed like the inference path
    (:func:`_group_products`).

    Backward. On a symmetric map (submanifold, odd kernel: pair ``(j, i)`` at offset ``k`` is pair ``(i,
    j)`` at ``K - 1 - k``) and a mirror-symmetric grouping (``g(K - 1 - k) = sigma(g(k))``, every SW-LK
    partition), the input gradient is the same product on the same slots, ``dx = sum_g Agg_g(dOut) @
    W[sigma(g)]^T`` (:func:`_mirrored_weight_of`), and the encoding gradient is ``dE[k] = (sum_{(j, i) in
    pairs(k)} dOut[i]) @ W[g(k)]^T``: no ``[slots, C]`` gradient of ``A`` is ever formed. The weight gradient
    comes from the same bags of ``dOut`` in the same pass (:func:`_mirrored_backward`), so ``A`` is not kept
    either::

        dW[h] = sum_{pairs j -> i in h} (x[j] + E[k])^T dOut[i]
              = sum_{slots s of sigma(h)} x[row(s)]^T Agg(dOut)[s]  +  sum_{k in h} E[k]^T S[k]

    (a pair ``j -> i`` of group ``h`` is the pair ``i -> j`` of group ``sigma(h)``, an entry of the slot of
    row ``j``; ``S[k]`` the sum of ``dOut`` over the pairs of offset ``k``, as for ``dE``). KITTI 000001 7^3
    32 -> 32 fwd+bwd: 104-112 -> 71-73 ms at 2 threads, 147-161 -> 122-126 ms at 1, peak RSS 586-615 ->
    502-504 MiB (the forward no longer writes the 85 MB of ``A``). Other maps and groupings keep ``A`` for
    ``dW``, form ``dA = dOut[rows] W[g]^T`` and sum it back per pair."""

    @staticmethod
    def forward(ctx, features: Tensor, encoding: Optional[Tensor], weight: Tensor, kmap: KernelMap,
                group: Tensor) -> Tensor:
        group_np = group.numpy()
        slots = _Slots.for_map(kmap, group_np, weight.shape[0], compact=True)
        sigma = _mirror_groups(kmap, group_np, weight.shape[0])
        ctx.slots, ctx.kmap, ctx.group, ctx.sigma = slots, kmap, group, sigma
        ctx.centre = _identity_group(kmap, group_np)[0]
        if sigma is not None:  # dW comes from the backward's bags of dOut: no [slots, C_in] kept
            ctx.save_for_backward(features, encoding, weight)
            return _group_products(features, encoding, weight, kmap, group)
        a = host_memory.empty((slots.num_slots, features.shape[1]), features.dtype)
        out = _group_products(features, encoding, weight, kmap, group, keep=a.numpy())
        ctx.save_for_backward(a, encoding, weight)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        saved, encoding, weight = ctx.saved_tensors
        slots: _Slots = ctx.slots
        kmap, group = ctx.kmap, ctx.group
        grad_out = grad_out.contiguous()
        need_x, need_e, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if ctx.sigma is not None:
            d_x, d_e, d_w = _mirrored_backward(grad_out, saved, encoding, weight, kmap, group, slots, ctx.sigma,
                                               ctx.centre, need_x, need_e, need_w)
            return d_x, d_e, d_w, None, None
        a = saved
        d_a = None
        if need_x or need_e:  # touched here, serially: see host_memory.touched_empty
            d_a = host_memory.touched_empty(a.shape, a.dtype)
        d_w = torch.zeros_like(weight) if need_w else None
        if d_w is not None or d_a is not None:
            rows = torch.from_numpy(slots.rows)
            buf = grad_out.new_empty((min(_GEMM_CHUNK, max(slots.num_slots, 1)), weight.shape[2]))
            for g, s, e in slots.blocks(_GEMM_CHUNK):
                if g == ctx.centre:  # the centre block's slots are the output rows 0, 1, ... in order
                    lo = s - int(slots.gstart[g])
                    g_rows = grad_out[lo:lo + e - s]
                else:
                    g_rows = torch.index_select(grad_out, 0, rows[s:e], out=buf[: e - s])  # dOut at the slots
                if d_a is not None:
                    torch.mm(g_rows, weight[g].t(), out=d_a[s:e])
                if d_w is not None:
                    d_w[g].addmm_(a[s:e].t(), g_rows)
        d_x = d_e = None
        if d_a is not None:
            d_x, d_e = slots.scatter(d_a, need_x, need_e)
        return d_x, d_e, d_w, None, None


def _mirrored_backward(grad_out: Tensor, features: Tensor, encoding: Optional[Tensor], weight: Tensor,
                       kmap: KernelMap, group: Tensor, slots: "_Slots", sigma: np.ndarray, centre: int, need_x: bool,
                       need_e: bool, need_w: bool) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """``(dx, dE, dW)`` of :class:`GroupConvFunction` on a symmetric map and mirror-symmetric grouping (see its
    docstring): one product of ``dOut`` with the mirrored weights over the same slots gives ``dx`` and, from the
    same bags, ``acc[g] = sum_{slots s of g} x[row(s)]^T Agg(dOut)[s]``; then ``dW[h] = acc[sigma(h)] +
    sum_{k in h} E[k]^T S[k]`` and ``dE[k] = S[k] W[g(k)]^T``. Fused per row block where
    :func:`.fused_groups.available`, else chunk by chunk (:func:`_group_products`, bags of ``[dOut; 0]``)."""
    mirrored = _mirrored_weight_of(weight, sigma)
    with_e_term = need_w and encoding is not None
    d_e, d_w_e = _encoding_terms(_offset_sums(grad_out, kmap), encoding, mirrored, sigma, slots, need_e,
                                 with_e_term) \
        if need_e or with_e_term else (None, None)
    d_x = acc = None
    if fused_groups.available(grad_out, mirrored, slots.index_dtype):
        if need_x or need_w:
            d_x, acc = _fused_backward(grad_out, mirrored, slots, centre, need_x, features if need_w else None)
    elif need_x or need_w:  # the chunked bags sum a zero encoding (faster than building encoding-free entries:
        # 25.7 vs 27.7 ms on KITTI 7^3 at 2 threads)
        acc = grad_out.new_zeros((weight.shape[0], weight.shape[1], weight.shape[2])) if need_w else None
        zero = grad_out.new_zeros((kmap.kernel_volume, grad_out.shape[1]))
        d_x = _group_products(grad_out, zero, mirrored, kmap, group, acc=acc, acc_rows=features)
        d_x = d_x if need_x else None
    d_w = None
    if acc is not None:
        d_w = acc[torch.from_numpy(sigma)]
        if d_w_e is not None:
            d_w += d_w_e
    return d_x, d_e, d_w


def _encoding_terms(sums: Tensor, encoding: Tensor, mirrored: Tensor, sigma: np.ndarray, slots: "_Slots",
                    need_e: bool, need_w: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(dE, dW_E)`` from the per-offset sums ``S [K, C_out]`` (:func:`_offset_sums`), one group at a time:
    ``dE[k] = S[k] @ W[g]^T`` for the offsets ``k`` of group ``g`` (if ``need_e``) and the encoding's part of
    the weight gradient ``dW_E[g] = E[k in g]^T S[k in g]`` (if ``need_w``), in the SIMD kernels of
    :mod:`.simd_products` (:func:`_encoding_terms_kernel`). ``W[g]^T`` is ``mirrored[sigma(g)]``
    (:func:`_mirrored_weight_of`; ``sigma`` pairs mirror groups, so it is its own inverse). Through
    ``torch.mm`` per group (54 calls of a few rows per layer) these took 0.33 s of a 4.6 s LargeKernel3D-Seg
    training step on the ScanNet scene at 2 threads; through one ``[K, C_in, C_out]`` product before that,
    0.55 s and 90 MB per 256-channel layer."""
    groups, c_out, c_in = mirrored.shape
    d_e = sums.new_empty((encoding.shape[0] if need_e else 0, c_in))
    d_w_e = sums.new_zeros((groups if need_w else 0, c_in, c_out))
    _encoding_terms_kernel(sums.contiguous().numpy(), encoding.detach().contiguous().numpy(),
                           simd_products.padded_weight(mirrored.detach().numpy()), sigma,
                           slots.offsets.astype(np.int32), slots.offset_ptr, d_e.numpy(), d_w_e.numpy(), need_e, need_w)
    return (d_e if need_e else None), (d_w_e if need_w else None)


@nb.njit(cache=True, nogil=True)
def _encoding_terms_kernel(sums, enc, w_t, sigma, offsets, offset_ptr, d_e, d_w_e, need_e, need_w):
    """:func:`_encoding_terms` on arrays: ``sums [K, C_out]``, ``enc [K, C_in]``, ``w_t [G, C_out, C_pad]``
    (``w_t[sigma(g)] = W[g]^T``, padded by :func:`.simd_products.padded_weight`), ``offsets`` int32 (group ``g`` owns
    ``offsets[offset_ptr[g]:offset_ptr[g + 1]]``), ``d_e [K, C_in]`` and ``d_w_e [G, C_in, C_out]`` (zeros)
    written where asked."""
    c_out, c_in = sums.shape[1], enc.shape[1]
    itemsize = sums.itemsize
    w_bytes = w_t.shape[1] * w_t.shape[2] * itemsize
    for g in range(offset_ptr.shape[0] - 1):
        lo, n = offset_ptr[g], offset_ptr[g + 1] - offset_ptr[g]
        if n == 0:
            continue
        if need_e:  # dE[k] = S[k] @ W[g]^T, every offset's row written once
            simd_products.pair_products(sums, sums.ctypes.data, offsets, offsets, lo, n, c_out,
                                        w_t.ctypes.data + sigma[g] * w_bytes, w_t.shape[2], d_e.ctypes.data, c_in,
                                        False)
        if need_w:  # dW_E[g] = E[k in g]^T S[k in g]
            simd_products.outer_products(sums, enc.ctypes.data, c_in, offsets.ctypes.data + 4 * lo, 0, n,
                                         sums.ctypes.data, c_out, d_w_e.ctypes.data + g * c_in * c_out * itemsize,
                                         offsets.ctypes.data + 4 * lo)


def _fused_backward(grad_out: Tensor, mirrored: Tensor, slots: "_Slots", centre: int, need_x: bool,
                    features: Optional[Tensor]) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(dx, acc)`` of :class:`GroupConvFunction` on a symmetric map in one pass of
    :func:`.fused_groups.backward` over the forward's row blocks: ``dx = sum_g Agg_g(dOut) @ W[sigma(g)]^T``
    (if ``need_x``; each block writes the centre's ``dOut W[centre]^T`` into its rows first) and, given the
    forward's ``features``, ``acc[g] = sum_{slots s of g} features[row(s)]^T Agg(dOut)[s]``: ``acc[sigma(h)]``
    is ``dW[h]`` without its encoding term."""
    c_x = mirrored.shape[2]
    d_x = None
    if need_x:
        shape = (slots.num_out, c_x)
        d_x = host_memory.empty(shape, grad_out.dtype) if centre >= 0 else host_memory.zeros(shape, grad_out.dtype)
    threads = torch.get_num_threads()
    itemsize = grad_out.element_size()
    ranges, part_cuts = slots.row_blocks(fused_groups.block_rows(c_x, itemsize), threads)
    acc = fused_groups.backward(grad_out, None if features is None else features.contiguous(), slots.entries,
                                slots.bag_ptr, slots.rows, ranges, part_cuts, mirrored, d_x, centre,
                                _inference_chunk_rows(grad_out.shape[1], c_x, itemsize), threads,
                                int(slots.gstart[centre]) if centre >= 0 else -1)
    return d_x, acc


def _mirror_groups(kmap: KernelMap, group: np.ndarray, num_groups: int) -> Optional[np.ndarray]:
    """``sigma [G]`` with ``g(K - 1 - k) = sigma(g(k))`` for every offset ``k``, or ``None`` unless the map is
    symmetric (submanifold, odd kernel sizes) and the grouping mirror-symmetric (as every SW-LK partition
    is). Groups without offsets map to themselves (they have no pairs)."""
    if not kmap.symmetric:
        return None
    sigma = np.full(num_groups, -1, np.int64)
    for g, h in zip(group.tolist(), group[::-1].tolist()):
        if sigma[g] not in (-1, h):
            return None
        sigma[g] = h
    sigma[sigma < 0] = np.flatnonzero(sigma < 0)
    return sigma


def _mirrored_weight_of(weight: Tensor, sigma: np.ndarray) -> Tensor:
    """``W' [G, C_out, C_in]`` with ``W'[g] = W[sigma(g)]^T`` (``sigma`` from :func:`_mirror_groups`), so that
    the input gradient of ``group_conv(x, E, W)`` is ``group_conv(dOut, None, W')`` on the same map and
    grouping.

    Why: ``dx[j] = sum_{(j, i) in pairs(k)} dOut[i] W[g(k)]^T``; each such pair is the pair ``(i, j)`` at
    offset ``k' = K - 1 - k``, whose group is ``g(k')`` with ``g(k) = sigma(g(k'))``."""
    return weight[torch.from_numpy(sigma)].transpose(1, 2).contiguous()


def _offset_sums(grad_out: Tensor, kmap: KernelMap) -> Tensor:
    """``S[k] = sum_{(j, i) in pairs(k)} dOut[i]`` as ``[K, C_out]`` (one embedding bag per offset over the pairs'
    output rows), for :func:`_encoding_terms`. On a symmetric map only the stored offsets from the centre ``c``
    on are read (:meth:`.KernelMap.stored_pairs`): for ``k < c`` the pairs of ``k`` are those of ``K - 1 - k``
    swapped, so ``S[k]`` sums ``dOut`` over the *input* rows of offset ``K - 1 - k``."""
    starts = kmap.offset_starts
    c = kmap.kernel_volume // 2

    def bags(rows: Tensor, first: int, last: int) -> Tensor:  # one bag per offset in [first, last)
        base = starts[first]
        bounds = torch.tensor(starts[first:last], dtype=torch.int64) - base
        return F.embedding_bag(rows[base:starts[last]], grad_out, bounds, mode="sum")

    if not kmap.symmetric or c == 0:
        return bags(kmap.pair_out, 0, kmap.kernel_volume)
    pair_in, pair_out = kmap.stored_pairs()
    return torch.cat([bags(pair_in, c + 1, kmap.kernel_volume).flip(0), bags(pair_out, c, kmap.kernel_volume)])


def _check(features: Tensor, encoding: Optional[Tensor], kmap: KernelMap, group_index: Tensor,
           backend: Optional[str], num_groups: int, groups_from: str) -> str:
    """Every argument checked before a kernel reads memory (see :mod:`.validation`); returns the backend."""
    check_tensor(features, "features", floating=True, dim=2)
    check_kernel_map(kmap)
    if features.shape[0] != kmap.num_in:
        raise ValueError(f"features has {features.shape[0]} rows but the kernel map reads {kmap.num_in} sites")
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups <= 0:
        raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
    check_group_index(group_index, kmap.kernel_volume, int(num_groups), groups_from)
    check_same_device(features, "features", (kmap.stored_in, "the kernel map"))
    if encoding is not None:
        check_tensor(encoding, "encoding", floating=True)
        if encoding.shape != (kmap.kernel_volume, features.shape[1]):
            raise ValueError(f"encoding must be [K={kmap.kernel_volume}, C={features.shape[1]}], "
                             f"got {tuple(encoding.shape)}")
        if encoding.dtype != features.dtype or encoding.device != features.device:
            raise TypeError(f"encoding ({encoding.dtype}, {encoding.device}) must match features "
                            f"({features.dtype}, {features.device})")
    if backend is None:
        backend = choose_backend(features.device, features.dtype)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "numba" and (features.device.type != "cpu" or features.dtype not in (torch.float32, torch.float64)):
        raise ValueError(f"backend='numba' needs float32/float64 CPU tensors, got {features.dtype} on "
                         f"{features.device}; use backend='torch'")
    return backend


def group_aggregate(features: Tensor, encoding: Optional[Tensor], kmap: KernelMap, group_index: Tensor,
                    num_groups: int, backend: Optional[str] = None) -> Tensor:
    """``A[i, g] = sum_{k in g} sum_{(j, i) in pairs(k)} (features[j] + encoding[k])`` (differentiable).

    Args:
        features: ``[N_in, C]`` floating input rows.
        encoding: ``[K, C]`` per-offset encoding added to every gathered neighbour, or ``None``.
        kmap: kernel map with ``K`` offsets (pairs offset-major).
        group_index: int64 ``[K]``, the group ``g(k) in [0, num_groups)`` of every offset.
        num_groups: ``G``.
        backend: ``"numba"`` or ``"torch"``; ``None`` picks :func:`choose_backend`.

    Returns:
        ``[N_out, G, C]``.
    """
    backend = _check(features, encoding, kmap, group_index, backend, num_groups, "num_groups")
    group = group_index.to(device=features.device, dtype=torch.int64).contiguous()
    enc = encoding.contiguous() if encoding is not None else None
    return GroupAggregateFunction.apply(features.contiguous(), enc, kmap, group, int(num_groups), backend)


def group_conv(features: Tensor, encoding: Optional[Tensor], weight: Tensor, kmap: KernelMap, group_index: Tensor,
               backend: Optional[str] = None) -> Tensor:
    """``out[i] = sum_g A[i, g] @ weight[g]`` with ``A = group_aggregate(...)`` (differentiable in
    features, encoding and weight).

    Args:
        weight: ``[G, C_in, C_out]``, one slice per group; other arguments as :func:`group_aggregate`.

    Returns:
        ``[N_out, C_out]``. The numba path never builds the dense ``A`` (empty groups are skipped).
    """
    check_tensor(features, "features", floating=True, dim=2)
    check_tensor(weight, "weight", floating=True)
    num_groups = weight.shape[0] if weight.dim() == 3 else 0
    if weight.dim() != 3 or weight.shape[1] != features.shape[1] or num_groups == 0:
        raise ValueError(f"weight must be [G, C_in={features.shape[1]}, C_out], got {tuple(weight.shape)}")
    if weight.dtype != features.dtype or weight.device != features.device:
        raise TypeError(f"weight ({weight.dtype}, {weight.device}) must match features "
                        f"({features.dtype}, {features.device})")
    backend = _check(features, encoding, kmap, group_index, backend, num_groups, "the weight's first axis")
    group = group_index.to(device=features.device, dtype=torch.int64).contiguous()
    enc = encoding.contiguous() if encoding is not None else None
    if backend == "torch":
        a = GroupAggregateFunction.apply(features.contiguous(), enc, kmap, group, weight.shape[0], backend)
        return a.reshape(a.shape[0], -1).mm(weight.reshape(-1, weight.shape[2]))
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (features, enc, weight))
    if not needs_grad:
        return _group_products(features.contiguous(), enc, weight.contiguous(), kmap, group)
    return GroupConvFunction.apply(features.contiguous(), enc, weight.contiguous(), kmap, group)


def _identity_group(kmap: KernelMap, group: np.ndarray) -> Tuple[int, int]:
    """``(g, k)`` when group ``g`` holds only offset ``k`` and that offset's pairs are the identity ``(r, r)``
    (the centre voxel of a submanifold window: ``A_g = x + E[k]`` needs no aggregation), else ``(-1, -1)``."""
    from .functional import _identity_offset

    k = _identity_offset(kmap)
    if k < 0 or int(np.count_nonzero(group == group[k])) != 1:
        return -1, -1
    return int(group[k]), k


def _inference_chunk_rows(c_in: int, c_out: int, itemsize: int) -> int:
    """Slots per aggregation + GEMM + row-add step of :func:`_group_products`: ``_INFERENCE_CHUNK_BYTES`` of the
    wider of ``A`` and ``Y`` (at least ``_MIN_INFERENCE_CHUNK_ROWS``)."""
    return max(_MIN_INFERENCE_CHUNK_ROWS, _INFERENCE_CHUNK_BYTES // (max(c_in, c_out) * itemsize))


def _group_products(features: Tensor, encoding: Optional[Tensor], weight: Tensor, kmap: KernelMap, group: Tensor,
                    keep: Optional[np.ndarray] = None, acc: Optional[Tensor] = None,
                    acc_rows: Optional[Tensor] = None) -> Tensor:
    """``out = sum_g A_g @ W[g]`` (numba path) without holding ``A`` at once: the group blocks in chunks
    (:func:`_inference_chunk_rows`), each aggregated, multiplied into a reused buffer and added into the
    output rows while both stay in cache. A centre group (identity pairs) is one dense GEMM that
    initialises the output: ``out = x W_g + E[k] W_g``. ``keep`` (``[slots, C_in]``, for the backward pass)
    receives every chunk of ``A`` (the centre block as ``x + E[k]``), written serially as it is computed so
    that its fresh pages are touched by one thread (see :func:`.host_memory.touched_empty`). Where
    :func:`.fused_groups.available` (float32/64, int32 slots, torch on libgomp), the groups run
    fused per thread and row block instead (:mod:`.fused_groups`; the centre's ``x W_g`` too, written by
    each block into its own rows, unless the centre has a non-zero encoding; ``keep`` is then written by
    the threads that own its rows). ``acc`` (``[G, C_r, C_in]``, chunked path only) receives ``acc[g] +=
    acc_rows[rows of g]^T A_g`` (``acc_rows [N_out, C_r]``; the centre's ``A`` is ``features``, which needs a
    zero centre encoding)."""
    group_np = group.numpy()
    slots = _Slots.for_map(kmap, group_np, weight.shape[0], compact=True)
    centre, k_centre = _identity_group(kmap, group_np)
    c_out = weight.shape[2]
    fused = fused_groups.available(features, weight, slots.index_dtype)
    with_centre_encoding = centre >= 0 and encoding is not None and bool(encoding[k_centre].any())  # SW-LK: 0
    centre_in_blocks = fused and centre >= 0 and not with_centre_encoding
    if centre_in_blocks:  # every row block writes x W_c into its own rows (fused_groups)
        out = host_memory.empty((kmap.num_out, c_out), features.dtype)
    elif centre >= 0:
        w_c = weight[centre]
        out = torch.mm(features, w_c, out=host_memory.empty((kmap.num_out, c_out), features.dtype))
        if with_centre_encoding:
            out += encoding[k_centre:k_centre + 1].mm(w_c)
    else:
        out = host_memory.zeros((kmap.num_out, c_out), features.dtype)
    if keep is not None and centre >= 0:
        block = keep[int(slots.gstart[centre]):int(slots.gstart[centre + 1])]
        if with_centre_encoding:
            np.add(features.numpy(), encoding[k_centre].numpy(), out=block)
        else:
            np.copyto(block, features.numpy())
    chunk = _inference_chunk_rows(weight.shape[1], c_out, features.element_size())
    threads = torch.get_num_threads()
    if fused:
        ranges, part_cuts = slots.row_blocks(fused_groups.block_rows(c_out, features.element_size()), threads)
        fused_groups.accumulate(features, encoding, slots.entries, 2 if encoding is not None else 1, slots.bag_ptr,
                                slots.rows, ranges, part_cuts, weight, out, centre, chunk, threads, keep,
                                int(slots.gstart[centre]) if centre_in_blocks else -1)
        return out
    if acc is not None and centre >= 0:
        acc[centre].addmm_(acc_rows.t(), features)
    sizes = np.diff(slots.gstart)
    if centre >= 0:
        sizes[centre] = 0
    rows = min(chunk, int(sizes.max()) if sizes.size else 0)
    if rows == 0:
        return out
    buf_y = features.new_empty((rows, c_out))
    out_np = out.numpy()
    table = slots.table(features, encoding)
    for g, s, e in slots.blocks(chunk):
        if g == centre:
            continue
        a = slots.aggregate(table, encoding is not None, s, e)
        if keep is not None:
            np.copyto(keep[s:e], a.numpy())
        if acc is not None:
            acc[g].addmm_(acc_rows[torch.from_numpy(slots.rows[s:e])].t(), a)
        y = buf_y[: e - s]
        torch.mm(a, weight[g], out=y)
        openmp_team.scatter_add_segments(y.numpy(), slots.rows, s, [(0, e - s)], out_np, threads)
    return out


__all__ = ["BACKENDS", "GroupAggregateFunction", "GroupConvFunction", "choose_backend", "group_aggregate",
           "group_conv"]
