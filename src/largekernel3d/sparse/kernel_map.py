"""Kernel maps (spconv's "rulebook"): for every kernel offset, the pairs of input and output rows.

For offset ``k`` the map lists pairs ``(i_in, i_out)``; a convolution then computes::

    out[i_out] += in[i_in] @ W[k]        for every pair of every offset k

Pairs are stored offset-major: the pairs of offset ``k`` are ``pair_in[s:e]``, ``pair_out[s:e]`` with
``s, e = offset_starts[k], offset_starts[k + 1]``. Within one offset every output row appears at most
once (and, for submanifold/regular maps, every input row at most once).

Two dataflows build the same pairs (possibly in another order within an offset):

* ``TORCH_REF``: sorted keys + ``searchsorted``; runs on any device (CUDA included).
* ``CPU``: numba kernels in :mod:`.cpu.maps` (line sweeps for submanifold maps, two-pass
  count/fill for strided maps), for CPU tensors with 1 to 3 spatial axes.

:func:`.dispatch.plan_kernel_map` is the one rule that picks between them (``dataflow=`` asks for one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .coords import check_key_range, validate_indices
from .cpu.tuning import DEFAULT_TUNING, CpuTuning
from .dispatch import Dataflow, DataflowLike, plan_kernel_map
from .geometry import ConvGeometry
from .torch_ref import maps as torch_maps

SUBMANIFOLD = "submanifold"
REGULAR = "regular"
TRANSPOSED = "transposed"
INVERSE = "inverse"

# the MapCache key of :func:`.validation.check_kernel_map`'s content check; the builders here set it on the maps they
# make (their pairs are in range by construction), so only maps assembled by hand pay for a pass over the pairs
CONTENT_CHECKED = "content_checked"


class MapCache:
    """The one mutable part of a :class:`KernelMap`, on purpose: a memo of what is derived from the map's
    immutable content (the mirrored lower half of a half-stored map, row splits, SW-LK slot layouts, the identity
    offset, validation results), so that layers sharing an ``indice_key`` compute each once.

    Every entry is a pure function of the map's content and its key; entries are never replaced. Not shared
    between maps (the adjoint map of :meth:`KernelMap.transposed` has its own)."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: Dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` on the first call with ``key``, the memoised value after."""
        if key not in self._values:
            self._values[key] = build()
        return self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return f"MapCache({len(self._values)} entries)"


@dataclass(frozen=True, eq=False)
class KernelMap:
    """Pairs of (input row, output row) per kernel offset, plus the sites and grids they connect.

    Attributes:
        kind: ``"submanifold"``, ``"regular"``, ``"transposed"`` or ``"inverse"``.
        geometry: kernel size / stride / padding / dilation the map was built for.
        in_indices: ``[N_in, 1 + D]`` int32 sites the map reads (batch first).
        out_indices: ``[N_out, 1 + D]`` int32 sites the map writes.
        in_spatial_shape, out_spatial_shape: the grids of the two site lists.
        stored_in, stored_out: ``[P]`` int64 row indices, offset-major, as built (see ``half_stored``).
        offset_starts: ``K + 1`` ints; offset ``k`` owns ``pair_*[offset_starts[k]:offset_starts[k+1]]``.
        batch_size: number of batch elements.
        half_stored: the storage holds half of a :attr:`symmetric` map: the offsets from the centre on are
            written, the positions of those before it are reserved but not written (the numba builder searches
            only half the window). :attr:`pair_in` / :attr:`pair_out` are the complete map: on first read the
            lower half is computed from the upper one (:func:`.cpu.maps.mirror_lower_half`, offset ``k`` is offset
            ``K - 1 - k`` swapped) into the reserved positions, once, recorded in :attr:`cache`. Readers that can
            work on half a map (SW-LK's layout) use :meth:`stored_pairs` and never trigger it.
        cache: the explicitly mutable :class:`MapCache` of layouts derived from this map (:meth:`derived`).
    """

    kind: str
    geometry: ConvGeometry
    in_indices: Tensor
    out_indices: Tensor
    in_spatial_shape: Tuple[int, ...]
    out_spatial_shape: Tuple[int, ...]
    stored_in: Tensor
    stored_out: Tensor
    offset_starts: Tuple[int, ...]
    batch_size: int
    half_stored: bool = False
    cache: MapCache = field(default_factory=MapCache, init=False, repr=False, compare=False)

    @property
    def pair_in(self) -> Tensor:
        """``[P]`` int64: the input row of every pair, offset-major (the complete map)."""
        self._complete()
        return self.stored_in

    @property
    def pair_out(self) -> Tensor:
        """``[P]`` int64: the output row of every pair, offset-major (the complete map)."""
        self._complete()
        return self.stored_out

    @property
    def symmetric(self) -> bool:
        """True for a submanifold map with odd kernel sizes: offset ``K - 1 - k`` holds the pairs of offset ``k``
        with input and output swapped (the centre, ``K // 2``, is the identity)."""
        return self.kind == SUBMANIFOLD and all(int(k) % 2 == 1 for k in self.geometry.kernel_size)

    def stored_pairs(self) -> Tuple[Tensor, Tensor]:
        """``(pair_in, pair_out)`` as stored: on a :attr:`half_stored` map only the offsets from the centre on may
        be read (those before it are the mirrors of ``K - 1 - k``)."""
        return self.stored_in, self.stored_out

    def _complete(self) -> None:
        if self.half_stored:
            self.cache.get("lower_half_mirrored", self._mirror_lower_half)

    def _mirror_lower_half(self) -> bool:
        from .cpu import maps

        maps.mirror_lower_half(
            self.stored_in.numpy(),
            self.stored_out.numpy(),
            np.asarray(self.offset_starts, dtype=np.int64),
            torch.get_num_threads(),
        )
        return True

    @property
    def device(self) -> torch.device:
        """The device of the pair lists."""
        return self.stored_in.device

    @property
    def num_in(self) -> int:
        return int(self.in_indices.shape[0])

    @property
    def num_out(self) -> int:
        return int(self.out_indices.shape[0])

    @property
    def kernel_volume(self) -> int:
        return len(self.offset_starts) - 1

    @property
    def num_pairs(self) -> int:
        return int(self.stored_in.shape[0])

    def derived(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()``, computed on the first call with this ``key`` and returned from :attr:`cache` after.
        ``build`` must depend only on this map's (immutable) content and what ``key`` names."""
        return self.cache.get(key, build)

    def pairs(self, k: int) -> Tuple[Tensor, Tensor]:
        """``(pair_in, pair_out)`` of kernel offset ``k`` (flattened row-major over the kernel axes)."""
        s, e = self.offset_starts[k], self.offset_starts[k + 1]
        return self.pair_in[s:e], self.pair_out[s:e]

    def pair_counts(self) -> Tuple[int, ...]:
        """Number of pairs per kernel offset."""
        return tuple(self.offset_starts[k + 1] - self.offset_starts[k] for k in range(self.kernel_volume))

    def transposed(self) -> "KernelMap":
        """The adjoint map: inputs and outputs swapped, offsets kept (used by inverse conv and backward); checked
        when this map is."""
        adjoint = KernelMap(
            kind=INVERSE if self.kind == REGULAR else self.kind,
            geometry=self.geometry,
            in_indices=self.out_indices,
            out_indices=self.in_indices,
            in_spatial_shape=self.out_spatial_shape,
            out_spatial_shape=self.in_spatial_shape,
            stored_in=self.pair_out,
            stored_out=self.pair_in,
            offset_starts=self.offset_starts,
            batch_size=self.batch_size,
        )
        if CONTENT_CHECKED in self.cache:
            _built(adjoint)
        return adjoint

    def check_reusable(self, kind: str, geometry: ConvGeometry, indices: Tensor, key: Optional[str]) -> None:
        """Raise ``ValueError`` when this cached map cannot serve a layer of ``kind``/``geometry`` on
        ``indices`` (reusing an ``indice_key`` on other sites or another kernel would compute garbage)."""
        if kind != self.kind:
            raise ValueError(
                f"indice_key={key!r} holds a {self.kind} kernel map but a {kind} conv asked for it; "
                f"give this layer its own indice_key"
            )
        if map_geometry(kind, geometry) != map_geometry(kind, self.geometry):
            shared = "kernel_size/dilation" if kind == SUBMANIFOLD else "kernel_size/stride/padding/dilation"
            raise ValueError(
                f"indice_key={key!r} was built for {self.geometry} but this layer has {geometry}; "
                f"layers that share an indice_key must share {shared}"
            )
        if not same_sites(self.in_indices, indices):
            raise ValueError(
                f"indice_key={key!r} was built on other sites ({self.num_in} rows) than this "
                f"layer's input ({int(indices.shape[0])} rows); give this layer its own indice_key"
            )


def _built(kmap: KernelMap) -> KernelMap:
    """``kmap``, marked as content-checked (see :data:`CONTENT_CHECKED`)."""
    kmap.derived(CONTENT_CHECKED, lambda: True)
    return kmap


def map_geometry(kind: str, geometry: ConvGeometry) -> ConvGeometry:
    """The part of ``geometry`` that decides a kernel map of ``kind``: all of it for strided maps; for a
    submanifold map only kernel size and dilation (its window is centred on each site, so stride and padding
    change nothing; spconv ignores padding there too, and networks pass ``padding=1`` to some submanifold
    layers of a shared ``indice_key`` and not to others)."""
    if kind == SUBMANIFOLD:
        return ConvGeometry(geometry.kernel_size, (1,) * geometry.ndim, (0,) * geometry.ndim, geometry.dilation)
    return geometry


def same_sites(a: Tensor, b: Tensor) -> bool:
    """True when two site lists are the same tensor or hold equal rows in the same order."""
    if a is b:
        return True
    if a.shape != b.shape or a.device != b.device:
        return False
    return bool(torch.equal(a.to(torch.int64), b.to(torch.int64)))


def build_submanifold_map(
    indices: Tensor,
    spatial_shape: Sequence[int],
    batch_size: int,
    geometry: ConvGeometry,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> KernelMap:
    """Submanifold map: output sites are the input sites; for output ``p`` and offset ``k`` the input is
    the active site at ``p + dilation * (k - kernel_size // 2)`` (if any).

    ``dataflow``: ``Dataflow.CPU`` or ``Dataflow.TORCH_REF``; ``AUTO`` applies
    :func:`.dispatch.plan_kernel_map`. ``tuning``: the builders' block and split constants. Within an offset
    the CPU builder orders pairs by output site, the torch one by output row."""
    spatial_shape = tuple(int(s) for s in spatial_shape)
    validate_indices(indices, spatial_shape, batch_size, check_duplicates=False)
    plan = plan_kernel_map(indices, len(spatial_shape), dataflow, tuning)
    lazy = plan.dataflow is Dataflow.CPU
    if lazy:
        from .cpu import maps

        pair_in, pair_out, starts = maps.submanifold_map_pairs(indices, spatial_shape, geometry, plan.tuning)
    else:
        pair_in, pair_out, starts = torch_maps.submanifold_map_pairs(
            indices, spatial_shape, geometry, plan.tuning.torch_candidate_chunk
        )
    return _built(
        KernelMap(
            SUBMANIFOLD,
            geometry,
            indices,
            indices,
            spatial_shape,
            spatial_shape,
            pair_in,
            pair_out,
            starts,
            batch_size,
            half_stored=lazy and all(k % 2 == 1 for k in geometry.kernel_size),
        )
    )


def _strided_map(
    kind: str,
    indices: Tensor,
    spatial_shape: Sequence[int],
    out_shape: Sequence[int],
    batch_size: int,
    geometry: ConvGeometry,
    dataflow: DataflowLike,
    tuning: CpuTuning,
) -> KernelMap:
    plan = plan_kernel_map(indices, len(spatial_shape), dataflow, tuning)
    if plan.dataflow is Dataflow.CPU:
        from .cpu import maps

        out_sites, pair_in, pair_out, starts = maps.strided_map_pairs(
            indices, spatial_shape, out_shape, geometry, kind == TRANSPOSED, plan.tuning
        )
    else:
        out_sites, pair_in, pair_out, starts = torch_maps.strided_map_pairs(
            indices, out_shape, geometry, kind == TRANSPOSED
        )
    return _built(
        KernelMap(
            kind,
            geometry,
            indices,
            out_sites,
            tuple(spatial_shape),
            tuple(out_shape),
            pair_in,
            pair_out,
            starts,
            batch_size,
        )
    )


def build_regular_map(
    indices: Tensor,
    spatial_shape: Sequence[int],
    batch_size: int,
    geometry: ConvGeometry,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> KernelMap:
    """Regular (strided) map: output ``q`` is active when some input ``p = stride*q - padding +
    dilation*k`` is active; output sites come out sorted by (batch, axis 0, ...). Within an offset pairs
    ascend by input row (both dataflows; ``dataflow`` and ``tuning`` as in :func:`build_submanifold_map`)."""
    validate_indices(indices, spatial_shape, batch_size, check_duplicates=False)
    out_shape = geometry.conv_output_shape(spatial_shape)
    check_key_range(out_shape, batch_size)  # the output grid's keys must fit int64 too
    return _strided_map(REGULAR, indices, spatial_shape, out_shape, batch_size, geometry, dataflow, tuning)


def build_transposed_map(
    indices: Tensor,
    spatial_shape: Sequence[int],
    batch_size: int,
    geometry: ConvGeometry,
    dataflow: DataflowLike = Dataflow.AUTO,
    tuning: CpuTuning = DEFAULT_TUNING,
) -> KernelMap:
    """Transposed map (adjoint of a regular conv): input ``q`` reaches every output
    ``p = stride*q - padding + dilation*k`` inside the output grid."""
    validate_indices(indices, spatial_shape, batch_size, check_duplicates=False)
    out_shape = geometry.transposed_output_shape(spatial_shape)
    check_key_range(out_shape, batch_size)  # the output grid's keys must fit int64 too
    return _strided_map(TRANSPOSED, indices, spatial_shape, out_shape, batch_size, geometry, dataflow, tuning)
