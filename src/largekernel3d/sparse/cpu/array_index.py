"""Array indices for numba kernels without the negative-index fix-up.

numba indexes like Python: ``a[i]`` with a signed ``i < 0`` counts from the end, so every access through a
signed index carries a compare and a select before the load or store. An unsigned index skips that fix-up.
In the inner loops of the kernel-map builders and the SW-LK layout, where a pair costs only a few loads and
stores, that fix-up is a noticeable part of the time, and indexing through :data:`uidx` removes it.

Only for indices that are never negative: a negative value becomes a huge unsigned one and reads or writes
out of bounds (numba does not check bounds). Mixing ``uint64`` and ``int64`` in arithmetic gives ``float64``
in numba, so convert at the access (``a[uidx(i)]``), never the loop variable.
"""

import numpy as np

uidx = np.uint64

__all__ = ["uidx"]
