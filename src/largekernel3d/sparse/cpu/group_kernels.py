"""Serial numba kernels of the SW-LK slot layout (:mod:`.group_layout`): counting sorts, the compact
slot numbering with its bag entries, and the row-block cuts of the fused group products.

Compiled lazily on first call and cached on disk (``cache=True``); every kernel is ``nogil`` and works on numpy
arrays. The inner loops index through :data:`.array_index.uidx` (no negative-index fix-up per access).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from .array_index import uidx


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
def _fill_group_entries(
    pair_in, pair_out, starts, offsets, offset_ptr, g, cursor, num_in, with_encoding, entries, mirrored
):
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
def _compact_layout(
    pair_in,
    pair_out,
    starts,
    offsets,
    offset_ptr,
    g_lo,
    g_hi,
    s,
    count,
    seen,
    rows,
    bag_ptr,
    gstart,
    num_in,
    entries,
    mirrored,
):
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
        _fill_group_entries(pair_in, pair_out, starts, offsets, offset_ptr, g, count, num_in, True, entries, mirrored)
        for r in range(first, s):
            count[uidx(rows[uidx(r)])] = 0
    return s


@nb.njit(cache=True, nogil=True)
def _compact_bags(
    pair_in,
    pair_out,
    starts,
    offsets,
    offset_ptr,
    g_lo,
    g_hi,
    rows,
    bag_ptr,
    gstart,
    cursor,
    num_in,
    with_encoding,
    entries,
    mirrored,
):
    """The bag entries of groups ``[g_lo, g_hi)`` of the compact layout of :func:`_compact_layout`, in slot
    order (stable: a slot's pairs by offset, in ``offsets`` order): ``pair_in`` of every pair or
    (``with_encoding``) the pairs ``(pair_in, num_in + k)`` interleaved. One group at a time, through the
    per-row write cursor ``cursor [num_out]`` (scratch); ``mirrored`` as in :func:`_offset_pairs`."""
    for g in range(g_lo, g_hi):
        for s in range(gstart[g], gstart[g + 1]):
            cursor[rows[s]] = bag_ptr[s]
        _fill_group_entries(
            pair_in, pair_out, starts, offsets, offset_ptr, g, cursor, num_in, with_encoding, entries, mirrored
        )


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
        total += np.searchsorted(rows[gstart[g] : gstart[g + 1]], r)
    return total


@nb.njit(cache=True, nogil=True)
def _part_rows(rows, gstart, n, parts):
    """int64 ``[parts + 1]``: row cuts ``0 = r_0 <= ... <= r_parts = n`` with ``r_t`` the smallest row that has
    at least ``t / parts`` of the slots below it (bisection over :func:`_slots_below`, never a pass over the
    slots)."""
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
        at = gstart[g] + np.searchsorted(rows[gstart[g] : gstart[g + 1]], bounds)
        for b in range(bounds.shape[0] - 1):
            ranges[b, g, 0] = at[b]
            ranges[b, g, 1] = at[b + 1]
