"""Every tuning constant of the CPU dataflows in one frozen object, :class:`CpuTuning`.

The values trade cache footprint, parallel overhead and memory on the machines the engine was measured on (see
BENCHMARKS.md); none of them changes a result beyond floating-point summation order, and most change none at all.
A plan (:mod:`..dispatch`) carries one instance to every kernel it runs: :data:`DEFAULT_TUNING` unless the caller
passes another (``dataclasses.replace(DEFAULT_TUNING, conv_tile_bytes=...)``), e.g. tests that force tiny tiles to
cover every boundary. SIMD geometry (vector bytes, panel rows) is a property of the instruction set, not tuning: it
stays in :mod:`.simd`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class CpuTuning:
    """Tuning constants of the CPU dataflows (and the memory bounds of the torch reference path)."""

    # --- kernel maps (cpu/maps.py)
    # Work blocks of the map builders: a multiple of any sensible thread count, so chunks of blocks balance.
    map_blocks: int = 64
    # Builders split over threads only from this many estimated pairs: torch's workers spin for milliseconds after
    # a parallel region and a helper thread sharing their core makes small builds slower than serial ones.
    map_split_min_pairs: int = 500_000
    # Chunks of blocks per thread when a builder splits, so that chunks of uneven cost balance out.
    map_chunks_per_thread: int = 4
    # Above this many half-window pairs per site the submanifold builder sweeps twice (count, fill in place)
    # instead of once into buffers: on dense surfaces the buffers' fresh pages cost more than a second sweep.
    map_one_pass_max_pairs_per_site: float = 24.0
    # Output lines on which the pairs per site are counted to size the sweep's buffers (spread over the scene).
    map_sampled_lines: int = 512
    # A chunk's sweep buffers hold its sites x sampled pairs per site x this: a chunk denser than its sample is
    # swept again with larger buffers, and pages never written cost nothing.
    map_buffer_headroom: float = 1.5
    # ... plus this many entries (chunks with few sampled lines).
    map_buffer_slack: int = 1024

    # --- convolution (cpu/conv_fused.py, cpu/conv_tiled.py, cpu/team.py)
    # Gathered bytes per tile of the tiled dataflow: gather, product and scatter of a tile stay in cache.
    conv_tile_bytes: int = 1 << 20
    # Rows per tile at least (fewer rows make the per-tile GEMM calls overhead-bound) ...
    conv_min_tile_rows: int = 256
    # ... and at most (bounds the tile buffers for narrow channels).
    conv_max_tile_rows: int = 16384
    # Output-row parts per thread of the fused dataflow: a part's rows stay in cache while its offsets add into them.
    conv_parts_per_thread: int = 4
    # About this many pairs are counted to place the fused dataflow's part bounds (every P // n-th pair).
    conv_bound_sample: int = 1 << 18
    # Scatter-adds of fewer rows run serially: a parallel region costs a few microseconds.
    scatter_min_parallel_rows: int = 2048

    # --- SW-LK group products (cpu/group_layout.py, cpu/group_products.py, cpu/group_fused.py)
    # The compact slot layout is split over torch's team from this many pairs (below, one thread is faster).
    group_team_layout_min_pairs: int = 200_000
    # Bytes of A (or Y) rows per aggregation + GEMM + row-add step of the chunked products: they stay in cache.
    group_chunk_bytes: int = 1 << 21
    # Slots per chunked step at least.
    group_min_chunk_rows: int = 1024
    # Rows per GEMM of the chunked backward (weight gradient, gradient of A where it is formed).
    group_gemm_rows: int = 1 << 16
    # Output bytes per row block of the fused group products: a block of the output stays in cache while every
    # group adds into it.
    group_block_bytes: int = 1 << 20
    # Rows per row block at least.
    group_min_block_rows: int = 256

    # --- the torch reference path (torch_ref/): memory bounds, not speed
    # (offset, site) candidates examined at once by the torch map builders.
    torch_candidate_chunk: int = 1 << 23
    # Pairs processed at once by the torch group aggregation (bounds its [pairs, C] temporary).
    torch_pair_chunk: int = 1 << 21

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"CpuTuning.{f.name} must be a positive number, got {value!r}")
        if self.conv_min_tile_rows > self.conv_max_tile_rows:
            raise ValueError(
                f"CpuTuning.conv_min_tile_rows ({self.conv_min_tile_rows}) must not exceed "
                f"conv_max_tile_rows ({self.conv_max_tile_rows})"
            )


DEFAULT_TUNING = CpuTuning()

__all__ = ["CpuTuning", "DEFAULT_TUNING"]
