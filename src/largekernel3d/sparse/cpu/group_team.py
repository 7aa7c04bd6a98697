"""The two OpenMP bodies of the SW-LK slot layout (:class:`.group_layout.GroupLayout`), run on torch's team
(:func:`.team.run_on_team`): one contiguous range of groups per thread numbers its compact slots and writes their
bag entries (:func:`_team_slots_body`), or writes the bag entries of an existing layout (:func:`_team_bags_body`).
Both read the words of :data:`.arg_blocks.GroupLayout` first (at the same positions in both blocks).
"""

from __future__ import annotations

import numba as nb

from . import team
from .arg_blocks import GroupLayout, GroupLayoutBags, GroupLayoutSlots, open_block, reads
from .group_kernels import _compact_bags, _compact_layout


@nb.njit(nogil=True, inline="always")
def _team_layout_views(h):
    """The arrays named by the :data:`.arg_blocks.GroupLayout` words of ``h``: ``ranges [R + 1]`` group boundaries,
    ``scratch [R, num_out]`` int32 per-range scratch, ``rows [L]`` and ``bag_ptr [L + 1]`` int32."""
    num_pairs, kv, ng = h[GroupLayout.NUM_PAIRS], h[GroupLayout.K], h[GroupLayout.GROUPS]
    nr, n, num_slots = h[GroupLayout.NUM_RANGES], h[GroupLayout.NUM_OUT], h[GroupLayout.NUM_SLOTS]
    pair_in = nb.carray(team.int64_pointer(h[GroupLayout.PAIR_IN]), (num_pairs,))
    pair_out = nb.carray(team.int64_pointer(h[GroupLayout.PAIR_OUT]), (num_pairs,))
    starts = nb.carray(team.int64_pointer(h[GroupLayout.STARTS]), (kv + 1,))
    offsets = nb.carray(team.int64_pointer(h[GroupLayout.OFFSETS]), (kv,))
    offset_ptr = nb.carray(team.int64_pointer(h[GroupLayout.OFFSET_PTR]), (ng + 1,))
    ranges = nb.carray(team.int64_pointer(h[GroupLayout.RANGES]), (nr + 1,))
    scratch = nb.carray(team.int32_pointer(h[GroupLayout.SCRATCH]), (nr, n))
    rows = nb.carray(team.int32_pointer(h[GroupLayout.ROWS]), (num_slots,))
    bag_ptr = nb.carray(team.int32_pointer(h[GroupLayout.BAG_PTR]), (num_slots + 1,))
    gstart = nb.carray(team.int64_pointer(h[GroupLayout.GSTART]), (ng + 1,))
    return pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart


@reads(GroupLayoutSlots)
def _team_slots_body(block):
    """Torch's OpenMP team builds the compact layout and its bag entries (:meth:`GroupLayout._team_slots`;
    argument block :data:`.arg_blocks.GroupLayoutSlots`): range ``r`` of the groups starts at slot ``base[r]``
    (``bag_ptr[base[r]]`` preset) and records its end in ``ends[r]``; ``seen`` = ``[R, W]`` zeroed uint64 bitsets,
    ``entries`` the ``2 P`` int32 interleaved entries, ``mirrored`` as in :func:`_offset_pairs`."""
    h, ok = open_block(block, GroupLayoutSlots.SIZE, GroupLayoutSlots.FINGERPRINT)
    if not ok:
        return
    pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart = _team_layout_views(h)
    nr, num_pairs = h[GroupLayoutSlots.NUM_RANGES], h[GroupLayoutSlots.NUM_PAIRS]
    base = nb.carray(team.int64_pointer(h[GroupLayoutSlots.BASE]), (nr,))
    ends = nb.carray(team.int64_pointer(h[GroupLayoutSlots.ENDS]), (nr,))
    entries = nb.carray(team.int32_pointer(h[GroupLayoutSlots.ENTRIES]), (2 * num_pairs,))
    seen = nb.carray(team.uint64_pointer(h[GroupLayoutSlots.SEEN]), (nr, h[GroupLayoutSlots.SEEN_WORDS]))
    mirrored = h[GroupLayoutSlots.MIRRORED] != 0
    num_in = h[GroupLayoutSlots.NUM_IN]
    for r in range(team.omp_get_thread_num(), nr, team.omp_get_num_threads()):
        ends[r] = _compact_layout(
            pair_in,
            pair_out,
            starts,
            offsets,
            offset_ptr,
            ranges[r],
            ranges[r + 1],
            base[r],
            scratch[r],
            seen[r],
            rows,
            bag_ptr,
            gstart,
            num_in,
            entries,
            mirrored,
        )


@reads(GroupLayoutBags)
def _team_bags_body(block):
    """Torch's OpenMP team writes the bag entries (:meth:`GroupLayout._bag_entries`; argument block
    :data:`.arg_blocks.GroupLayoutBags`), one group range per thread: ``2 P`` entries with the encoding rows
    (``with_encoding``), else ``P``."""
    h, ok = open_block(block, GroupLayoutBags.SIZE, GroupLayoutBags.FINGERPRINT)
    if not ok:
        return
    pair_in, pair_out, starts, offsets, offset_ptr, ranges, scratch, rows, bag_ptr, gstart = _team_layout_views(h)
    nr, num_pairs = h[GroupLayoutBags.NUM_RANGES], h[GroupLayoutBags.NUM_PAIRS]
    with_encoding = h[GroupLayoutBags.WITH_ENCODING] != 0
    mirrored = h[GroupLayoutBags.MIRRORED] != 0
    num_in = h[GroupLayoutBags.NUM_IN]
    entries = nb.carray(team.int32_pointer(h[GroupLayoutBags.ENTRIES]), ((2 if with_encoding else 1) * num_pairs,))
    for r in range(team.omp_get_thread_num(), nr, team.omp_get_num_threads()):
        _compact_bags(
            pair_in,
            pair_out,
            starts,
            offsets,
            offset_ptr,
            ranges[r],
            ranges[r + 1],
            rows,
            bag_ptr,
            gstart,
            scratch[r],
            num_in,
            with_encoding,
            entries,
            mirrored,
        )
