"""Which sparse-conv library a network is built from.

Our engine (:mod:`largekernel3d.sparse`) is a drop-in for ``spconv.pytorch``, so an architecture written
against the small set of names below can be built from either: ours for training and inference, spconv's
for comparison (same architecture, same weights, other kernels).
"""

from __future__ import annotations

from types import ModuleType
from typing import Optional

import largekernel3d.sparse as _ours

# The names an architecture in this package may use from its backend.
REQUIRED_NAMES = ("SparseConvTensor", "SubMConv3d", "SparseConv3d", "SparseInverseConv3d")


def resolve_backend(backend: Optional[ModuleType]) -> ModuleType:
    """``backend`` itself (``None`` → :mod:`largekernel3d.sparse`), after checking it provides
    :data:`REQUIRED_NAMES`; e.g. ``resolve_backend(spconv.pytorch)``."""
    if backend is None:
        return _ours
    missing = [name for name in REQUIRED_NAMES if not hasattr(backend, name)]
    if missing:
        raise TypeError(
            f"backend {getattr(backend, '__name__', backend)!r} lacks {missing}; pass "
            f"largekernel3d.sparse or spconv.pytorch"
        )
    return backend


def is_ours(backend: ModuleType) -> bool:
    """Whether ``backend`` is our engine (only ours has the SW-LK layers and grouped convs)."""
    return backend is _ours


__all__ = ["REQUIRED_NAMES", "resolve_backend", "is_ours"]
