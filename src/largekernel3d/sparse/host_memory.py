"""CPU buffers that are cheap to touch for the first time: large temporaries allocated through numpy.

On Linux numpy advises transparent huge pages for large arrays (``madvise(MADV_HUGEPAGE)``); torch's CPU
allocator and numba's do not. With THP in ``madvise`` mode (the default of many distributions, and of the
machines this was measured on) the first write of a fresh 85 MB buffer took about 10 ms for a numpy
array against 38-45 ms for ``torch.empty``/``torch.zeros`` or an ``np.empty`` inside a numba kernel
(4 KiB page faults, 21,760 of them). Buffers above glibc's mmap threshold (32 MiB at most) are fresh
mappings on every call, so that cost recurs per call: the aggregated ``A`` of an SW-LK layer in training
is such a buffer.

A fresh buffer that a *parallel* torch kernel writes first is worse still: page faults taken by several
OpenMP threads at once serialise in the kernel. Writing the 85 MB gradient of an SW-LK layer's ``A`` with
``torch.mm(..., out=)`` at 2 threads took 50-114 ms on fresh pages against 13 ms on touched ones, and
touching them serially first cost 10 ms (:func:`touched_empty`).

The tensors returned here share memory with their numpy array (freed with the tensor) and behave like
any other CPU tensor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.int32: np.int32,
                 torch.int64: np.int64}


def _numpy_dtype(dtype: torch.dtype) -> type:
    if dtype not in _NUMPY_DTYPES:
        raise TypeError(f"host_memory buffers support {sorted(map(str, _NUMPY_DTYPES))}, got {dtype}")
    return _NUMPY_DTYPES[dtype]


def empty(shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """An uninitialised CPU tensor of ``shape``/``dtype`` on numpy-allocated memory."""
    return torch.from_numpy(np.empty(tuple(shape), dtype=_numpy_dtype(dtype)))


def zeros(shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """A zero CPU tensor of ``shape``/``dtype`` on numpy-allocated memory."""
    return torch.from_numpy(np.zeros(tuple(shape), dtype=_numpy_dtype(dtype)))


def touched_empty(shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """:func:`empty` with every page written once here, by one thread (zeros), for a buffer that
    multi-threaded torch kernels will write first."""
    out = np.empty(tuple(shape), dtype=_numpy_dtype(dtype))
    out.fill(0)
    return torch.from_numpy(out)
