"""The two OpenMP bodies of the SW-LK slot layout (:class:`.group_layout.GroupLayout`), run on torch's team
(:func:`.team.run_on_team`): one contiguous range of groups per thread numbers its compact slots and writes their
bag entries (:func:`_team_slots_body`), or writes the bag entries of an existing layout (:func:`_team_bags_body`).
"""

from __future__ import annotations

import numba as nb

from . import team
from .group_kernels import _compact_bags, _compact_layout


_TEAM_LAYOUT_HEADER = 17  # int64 words of the argument block of _team_slots_body / _team_bags_body


@nb.njit(nogil=True, inline="always")
def _team_layout_views(block):
    """The arrays named by a layout argument block (int64): ``[pair_in, pair_out, P, starts, K, offsets,
    offset_ptr, G, ranges, R, scratch, num_out, rows, bag_ptr, gstart, extra, L]``: addresses and sizes;
    ``ranges [R + 1]`` group boundaries, ``scratch [R, num_out]`` int32 per-range scratch, ``rows [L]`` and
    ``bag_ptr [L + 1]`` int32; ``extra`` is the body's own."""
    h = nb.carray(block, (_TEAM_LAYOUT_HEADER,))
    num_pairs, kv, ng, nr, n = h[2], h[4], h[7], h[9], h[11]
    pair_in = nb.carray(team.int64_pointer(h[0]), (num_pairs,))
    pair_out = nb.carray(team.int64_pointer(h[1]), (num_pairs,))
    starts = nb.carray(team.int64_pointer(h[3]), (kv + 1,))
    offsets = nb.carray(team.int64_pointer(h[5]), (kv,))
    offset_ptr = nb.carray(team.int64_pointer(h[6]), (ng + 1,))
    ranges = nb.carray(team.int64_pointer(h[8]), (nr + 1,))
    scratch = nb.carray(team.int32_pointer(h[10]), (nr, n))
    rows = nb.carray(team.int32_pointer(h[12]), (h[16],))
    bag_ptr = nb.carray(team.int32_pointer(h[13]), (h[16] + 1,))
    gstart = nb.carray(team.int64_pointer(h[14]), (ng + 1,))
    return pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart


def _team_slots_body(block):
    """Torch's OpenMP team builds the compact layout and its bag entries (:meth:`GroupLayout._team_slots`): range
    ``r`` of the groups starts at slot ``base[r]`` (``bag_ptr[base[r]]`` preset) and records its end in
    ``ends[r]``; ``extra`` = the address of ``[base (R), ends (R), entries, num_in, seen, W, mirrored]`` (int64;
    ``seen`` = ``[R, W]`` zeroed uint64 bitsets, ``entries`` the ``2 P`` int32 interleaved entries, ``mirrored``
    as in :func:`_offset_pairs`)."""
    pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart = _team_layout_views(block)
    h = nb.carray(block, (_TEAM_LAYOUT_HEADER,))
    nr, num_pairs = h[9], h[2]
    extra = nb.carray(team.int64_pointer(h[15]), (2 * nr + 5,))
    entries = nb.carray(team.int32_pointer(extra[2 * nr]), (2 * num_pairs,))
    seen = nb.carray(team.uint64_pointer(extra[2 * nr + 2]), (nr, extra[2 * nr + 3]))
    mirrored = extra[2 * nr + 4] != 0
    for r in range(team.omp_get_thread_num(), nr, team.omp_get_num_threads()):
        extra[nr + r] = _compact_layout(pair_in, pair_out, starts, offsets, offset_ptr, ranges[r], ranges[r + 1],
                                        extra[r], scratch[r], seen[r], rows, bag_ptr, gstart, extra[2 * nr + 1],
                                        entries, mirrored)


def _team_bags_body(block):
    """Torch's OpenMP team writes the bag entries (:meth:`GroupLayout._bag_entries`), one group range per thread;
    ``extra`` = ``[entries address, num_in, with_encoding, mirrored]`` (int64)."""
    pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart = _team_layout_views(block)
    h = nb.carray(block, (_TEAM_LAYOUT_HEADER,))
    nr, num_pairs = h[9], h[2]
    extra = nb.carray(team.int64_pointer(h[15]), (4,))
    with_encoding = extra[2] != 0
    entries = nb.carray(team.int32_pointer(extra[0]), ((2 if with_encoding else 1) * num_pairs,))
    for r in range(team.omp_get_thread_num(), nr, team.omp_get_num_threads()):
        _compact_bags(pair_in, pair_out, starts, offsets, offset_ptr, ranges[r], ranges[r + 1], rows, bag_ptr,
                      gstart, scratch[r], extra[1], with_encoding, entries, extra[3] != 0)
