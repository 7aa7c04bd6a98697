"""largekernel3d: sparse 3D convolution with the spconv 2.x API and spatial-wise large kernels.

Rooms (data flows one way, lower rooms never import higher ones):

- :mod:`largekernel3d.sparse`   the engine (tensor, kernel maps, convolution, pooling, voxelisation)
- :mod:`largekernel3d.nn`       spatial-wise large-kernel convolution and its conversions
- :mod:`largekernel3d.models`   MinkUNet family and LargeKernel3D networks
- :mod:`largekernel3d.data`     dataset readers, the scene generator, transforms, batching
- :mod:`largekernel3d.training` trainer, checkpoints, metrics
- :mod:`largekernel3d.analysis` efficiency table, receptive fields, plots
- :mod:`largekernel3d.cli`      the ``lk3d`` command
"""

from importlib import metadata as _metadata

UNKNOWN_VERSION = "0+unknown"
"""``__version__`` of a source tree imported without being installed (no package metadata to read)."""


def _installed_version() -> str:
    """The installed distribution's version: ``pyproject.toml`` is its only source, read back through the
    package metadata; :data:`UNKNOWN_VERSION` when ``largekernel3d`` is not installed."""
    try:
        return _metadata.version("largekernel3d")
    except _metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


__version__ = _installed_version()
