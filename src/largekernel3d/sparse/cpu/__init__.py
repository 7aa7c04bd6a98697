"""The CPU dataflows of the engine: numba kernels, SIMD register kernels and bodies run on torch's own OpenMP team.

- :mod:`.maps`: kernel-map construction (line sweeps, strided candidates), the symmetric half and its mirror;
- :mod:`.conv_fused` / :mod:`.conv_tiled`: gather-GEMM-scatter fused per thread, or in tiles of passes;
- :mod:`.group_layout` (with :mod:`.group_kernels`, :mod:`.group_team`), :mod:`.group_products`,
  :mod:`.group_fused`: SW-LK's slot layout and group products;
- :mod:`.team`: torch's libgomp team; :mod:`.simd`: the register kernels; :mod:`.host_memory`: buffers.

Nothing here is imported by ``largekernel3d.sparse`` at import time beyond what a dataflow needs.
"""
