"""Where every pair of a kernel map accumulates in SW-LK's group products: the slot layout
(:class:`GroupLayout`).

Every pair ``(j, i)`` of offset ``k`` belongs to a *slot* (a row of the aggregate ``A``), the slot of its output
row ``i`` and its offset's group ``g(k)``. The compact layout gives a slot only to the non-empty ``(g, i)``,
group-major, so that ``A_g`` is one contiguous block and ``A_g @ W[g]`` one product; the dense layout numbers
slots ``i * G + g``. The sums are embedding bags over the slot's entries (``x`` rows and encoding rows).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..kernel_map import KernelMap
from . import host_memory, team
from .group_kernels import (
    _block_ranges,
    _compact_bags,
    _compact_layout,
    _compact_pair_slots,
    _csr,
    _fill_bags,
    _pair_inputs,
    _part_rows,
)
from .group_team import _team_bags_body, _team_slots_body
from .tuning import DEFAULT_TUNING, CpuTuning


def slot_index_dtype(num_pairs: int, num_out: int, num_groups: int, num_in: int, kernel_volume: int):
    """``np.int32`` when every slot, bag entry and table row of a layout fits (half the memory), else
    ``np.int64``. The fused SW-LK products need int32 (:func:`..dispatch.group_conv_blocker`)."""
    largest = max(2 * num_pairs, num_out * num_groups, num_in + kernel_volume)
    return np.int32 if largest < 2**31 else np.int64


def _bitsets(n: int, count: int) -> np.ndarray:
    """``count`` zeroed bitsets of uint64 words with one bit per row of ``n`` (``[count, ceil(n / 64)]``, the
    ``seen`` scratch of :func:`_compact_layout`)."""
    return np.zeros((count, (n + 63) // 64), np.uint64)


def _starts(kmap: KernelMap) -> np.ndarray:
    return np.asarray(kmap.offset_starts, dtype=np.int64)


def pair_offsets(kmap: KernelMap) -> np.ndarray:
    """int64 ``[P]``: the kernel offset of every pair."""
    return np.repeat(np.arange(kmap.kernel_volume, dtype=np.int64), np.diff(_starts(kmap)))


class GroupLayout:
    """Where every pair of a kernel map accumulates (numba path): every pair belongs to a *slot* (a row of
    ``A``), the slot of its output row ``i`` and its offset's group ``g``. ``compact``: only non-empty
    ``(g, i)`` get a slot, group-major (``A_g`` is the block ``gstart[g]:gstart[g + 1]``, its output rows
    ``rows[gstart[g]:gstart[g + 1]]`` ascending); else the dense ``i * G + g`` (``A`` is ``[N, G, C]``).
    Slot ``s`` owns the pairs ``bag_ptr[s]:bag_ptr[s + 1]`` of the bag order. Built once per map and
    grouping (see :meth:`for_map`), the compact layout with its bag entries with encoding rows; other bag
    entries and the per-pair slots are built on first use; read-only otherwise. ``tuning`` decides only whether
    the layout is built on torch's team (``group_team_layout_min_pairs``); the layout is the same either way."""

    def __init__(
        self, kmap: KernelMap, group: np.ndarray, num_groups: int, compact: bool, tuning: CpuTuning = DEFAULT_TUNING
    ) -> None:
        self.team_min_pairs = tuning.group_team_layout_min_pairs
        self.num_in, self.num_out, self.kernel_volume = kmap.num_in, kmap.num_out, kmap.kernel_volume
        self.num_pairs = kmap.num_pairs
        self.starts = _starts(kmap)
        self.compact = compact
        # the compact layout reads a symmetric map's lower offsets as the mirrors of the upper ones, so that
        # a lazily mirrored map (KernelMap.half_stored) is never filled for the SW-LK forward
        self.mirrored = compact and kmap.symmetric
        pair_in, pair_out = kmap.stored_pairs() if self.mirrored else (kmap.pair_in, kmap.pair_out)
        self.pair_in, self.pair_out = pair_in.numpy(), pair_out.numpy()
        n = kmap.num_out
        # int32 slots and bag entries (half the memory of the layouts) whenever every index fits
        self.index_dtype = slot_index_dtype(self.num_pairs, n, num_groups, self.num_in, self.kernel_volume)
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
                end = _compact_layout(
                    self.pair_in,
                    self.pair_out,
                    self.starts,
                    self.offsets,
                    self.offset_ptr,
                    0,
                    num_groups,
                    0,
                    np.zeros(n, self.index_dtype),
                    _bitsets(n, 1)[0],
                    rows,
                    bag_ptr,
                    self.gstart,
                    self.num_in,
                    entries,
                    self.mirrored,
                )
                self.rows, self.bag_ptr = rows[:end], bag_ptr[: end + 1]
            self._by_slot[True] = entries
            self.num_slots = self.rows.shape[0]
        else:  # slot i * G + g of every pair, and the bags' starts from the pairs per slot
            self.num_slots = n * num_groups
            self._slot = (self.pair_out * num_groups + group[pair_offsets(kmap)]).astype(self.index_dtype)
            self.bag_ptr = np.concatenate([[0], np.cumsum(np.bincount(self._slot, minlength=self.num_slots))]).astype(
                self.index_dtype
            )
        self._by_input: Optional[Tuple[Tensor, Tensor]] = None
        self._row_blocks: Dict[Tuple[int, int], Tuple[np.ndarray, np.ndarray]] = {}

    def _group_ranges(self, threads: int) -> np.ndarray:
        """Group boundaries ``[R + 1]`` of the compact layout's work: one range (serial) below
        ``tuning.group_team_layout_min_pairs`` pairs, with one thread, without torch's libgomp or with int64 indices;
        else ``threads`` contiguous ranges of about equal work (a group costs its pairs plus one pass over
        the output rows)."""
        num_groups = self.offset_ptr.shape[0] - 1
        if (
            threads <= 1
            or self.num_pairs < self.team_min_pairs
            or self.index_dtype != np.int32
            or not team.team_available()
        ):
            return np.array([0, num_groups], np.int64)
        work = np.concatenate([[0], np.cumsum(np.diff(self._pairs_before_groups()) + self.num_out)])
        cuts = np.searchsorted(work, work[-1] * np.arange(1, threads) / threads)
        return np.unique(np.concatenate([[0], cuts, [num_groups]])).astype(np.int64)

    def _pairs_before_groups(self) -> np.ndarray:
        """int64 ``[G + 1]``: the pairs of the groups before each group (a group owns a run of
        :attr:`offsets`, not of the offset-major pairs), and the total last."""
        return np.concatenate([[0], np.cumsum(np.diff(self.starts)[self.offsets])])[self.offset_ptr]

    def _run_layout_team(self, body, rows: np.ndarray, bag_ptr: np.ndarray, **own) -> None:
        """``body`` (:func:`_team_slots_body` or :func:`_team_bags_body`) on torch's OpenMP team, one group
        range of :attr:`ranges` per thread, each with an int32 scratch row of ``num_out``; ``own``: the body's own
        fields of its argument block (after the :data:`.arg_blocks.GroupLayout` ones)."""
        num_ranges = self.ranges.shape[0] - 1
        scratch = np.zeros((num_ranges, self.num_out), np.int32)
        block = body.arg_block.pack(
            num_pairs=self.num_pairs,
            k=self.kernel_volume,
            groups=self.offset_ptr.shape[0] - 1,
            num_ranges=num_ranges,
            num_out=self.num_out,
            num_slots=rows.shape[0],
            pair_in=self.pair_in,
            pair_out=self.pair_out,
            starts=self.starts,
            offsets=self.offsets,
            offset_ptr=self.offset_ptr,
            ranges=self.ranges,
            scratch=scratch,
            rows=rows,
            bag_ptr=bag_ptr,
            gstart=self.gstart,
            **own,
        )
        team.run_on_team(body, block, num_ranges)

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
        ends = np.zeros(num_ranges, np.int64)
        self._run_layout_team(
            _team_slots_body,
            rows,
            bag_ptr,
            num_in=self.num_in,
            seen_words=seen.shape[1],
            mirrored=self.mirrored,
            base=np.ascontiguousarray(base, np.int64),
            ends=ends,
            entries=entries,
            seen=seen,
        )
        dst = 0
        for r in range(num_ranges):
            b, n = int(base[r]), int(ends[r] - base[r])
            if b != dst:  # moved left; numpy copes with the overlap
                rows[dst : dst + n] = rows[b : b + n]
                bag_ptr[dst : dst + n + 1] = bag_ptr[b : b + n + 1]
                self.gstart[ranges[r] + 1 : ranges[r + 1] + 1] -= b - dst
            dst += n
        return rows[:dst], bag_ptr[: dst + 1]

    @classmethod
    def for_map(
        cls, kmap: KernelMap, group: np.ndarray, num_groups: int, compact: bool, tuning: CpuTuning = DEFAULT_TUNING
    ) -> "GroupLayout":
        """The slots of ``kmap`` for this grouping, memoised on the map (``tuning`` changes how the first caller
        builds it, not what it holds)."""
        key = ("group_slots", group.tobytes(), int(num_groups), bool(compact))
        return kmap.derived(key, lambda: cls(kmap, group, num_groups, compact, tuning))

    @property
    def slot(self) -> np.ndarray:
        """``[P]``: the slot of every pair (built on first use: the backward pass needs it)."""
        if self._slot is None:  # compact layout (the dense one has it from the start)
            self._slot = np.empty(self.num_pairs, self.index_dtype)
            _compact_pair_slots(
                self.pair_in,
                self.pair_out,
                self.starts,
                self.offsets,
                self.offset_ptr,
                self.rows,
                self.gstart,
                self.num_out,
                self._slot,
                self.mirrored,
            )
        return self._slot

    def _bag_entries(self, with_encoding: bool) -> np.ndarray:
        """The bag entries of every slot, in slot order (slot ``s`` owns ``bag_ptr[s]:bag_ptr[s + 1]``
        times the width): its pairs' input rows ``j``, interleaved with ``N_in + k`` (the encoding rows of
        the table) when ``with_encoding``."""
        if with_encoding not in self._by_slot:
            entries = np.empty((2 if with_encoding else 1) * self.num_pairs, self.index_dtype)
            if self.compact and self.ranges.shape[0] > 2:
                self._run_layout_team(
                    _team_bags_body,
                    self.rows,
                    self.bag_ptr,
                    num_in=self.num_in,
                    with_encoding=with_encoding,
                    mirrored=self.mirrored,
                    entries=entries,
                )
            elif self.compact:
                _compact_bags(
                    self.pair_in,
                    self.pair_out,
                    self.starts,
                    self.offsets,
                    self.offset_ptr,
                    0,
                    self.offset_ptr.shape[0] - 1,
                    self.rows,
                    self.bag_ptr,
                    self.gstart,
                    np.empty(self.num_out, self.index_dtype),
                    self.num_in,
                    with_encoding,
                    entries,
                    self.mirrored,
                )
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
        return F.embedding_bag(entries[width * p0 : width * p1], table, offsets, mode="sum")

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
        (read by :mod:`.group_fused`)."""
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
                d_e = F.embedding_bag(
                    torch.from_numpy(self.slot),
                    d_a,
                    torch.from_numpy(self.starts[:-1].astype(self.index_dtype)),
                    mode="sum",
                )
            else:
                d_e = d_a.new_zeros((self.kernel_volume, c_dim))
        return d_x, d_e
