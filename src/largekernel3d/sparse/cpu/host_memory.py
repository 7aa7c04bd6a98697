"""CPU buffers that are cheap to touch for the first time: large temporaries allocated through numpy.

On Linux numpy advises transparent huge pages for large arrays (``madvise(MADV_HUGEPAGE)``); torch's CPU
allocator and numba's do not. With THP in ``madvise`` mode (the default of many distributions) the first write
of a fresh large numpy array takes one fault per 2 MiB page instead of one per 4 KiB page, a fraction of the
first-touch cost of ``torch.empty``/``torch.zeros`` or of an ``np.empty`` inside a numba kernel. Buffers above
glibc's mmap threshold (32 MiB at most) are fresh
mappings on every call, so that cost recurs per call: the aggregated ``A`` of an SW-LK layer in training
is such a buffer.

A fresh buffer that a *parallel* torch kernel writes first is worse still: page faults taken by several
OpenMP threads at once serialise in the kernel, so a large buffer is cheaper touched serially first
(:func:`touched_empty`) than faulted in by the team.

The tensors returned here share memory with their numpy array (freed with the tensor) and behave like
any other CPU tensor.

Between calls, glibc's ``malloc`` gives freed memory back to the kernel once more than its trim threshold
is free at the top of the heap, and the next call takes every page fault again (an SW-LK forward frees tens of
megabytes of temporaries per call). :func:`keep_freed_memory` is the opt-in remedy for a whole process (the ``lk3d``
command and the benchmarks call it at start-up).
"""

from __future__ import annotations

import ctypes
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.int32: np.int32, torch.int64: np.int64}

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2; its dynamic threshold stops there too).
_MAX_MMAP_THRESHOLD = 32 << 20
# Blocks above this are fresh mappings on every call, whatever the thresholds.
_FRESH_MAPPING_BYTES = _MAX_MMAP_THRESHOLD


def _numpy_dtype(dtype: torch.dtype) -> type:
    if dtype not in _NUMPY_DTYPES:
        raise TypeError(f"host_memory buffers support {sorted(map(str, _NUMPY_DTYPES))}, got {dtype}")
    return _NUMPY_DTYPES[dtype]


def _fresh_mapping(shape: Sequence[int], dtype: torch.dtype, touch_above: int) -> bool:
    """Whether a buffer of ``shape``/``dtype`` is above ``touch_above`` bytes."""
    nbytes = int(np.prod(tuple(shape), dtype=np.int64)) * np.dtype(_numpy_dtype(dtype)).itemsize
    return nbytes > touch_above


def empty(shape: Sequence[int], dtype: torch.dtype, touch_above: int = _FRESH_MAPPING_BYTES) -> Tensor:
    """An uninitialised CPU tensor of ``shape``/``dtype`` on numpy-allocated memory; one of more than
    ``touch_above`` bytes (by default glibc's largest mmap threshold, ``_FRESH_MAPPING_BYTES``) is touched here
    by one thread (:func:`touched_empty`): glibc maps such a block
    afresh on every call, and the parallel kernels that write these buffers first would take its page faults
    at once, which costs more than touching it here."""
    if _fresh_mapping(shape, dtype, touch_above):
        return touched_empty(shape, dtype)
    return torch.from_numpy(np.empty(tuple(shape), dtype=_numpy_dtype(dtype)))


def zeros(shape: Sequence[int], dtype: torch.dtype, touch_above: int = _FRESH_MAPPING_BYTES) -> Tensor:
    """A zero CPU tensor of ``shape``/``dtype`` on numpy-allocated memory (touched here when above
    ``touch_above`` bytes, as :func:`empty`)."""
    if _fresh_mapping(shape, dtype, touch_above):
        return touched_empty(shape, dtype)
    return torch.from_numpy(np.zeros(tuple(shape), dtype=_numpy_dtype(dtype)))


def touched_empty(shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """:func:`empty` with every page written once here, by one thread (zeros), for a buffer that
    multi-threaded torch kernels will write first."""
    out = np.empty(tuple(shape), dtype=_numpy_dtype(dtype))
    out.fill(0)
    return torch.from_numpy(out)


def keep_freed_memory(trim_threshold: int = 256 << 20, mmap_threshold: int = _MAX_MMAP_THRESHOLD) -> bool:
    """Make glibc's ``malloc`` keep freed memory of this process for reuse instead of returning it to the
    kernel after every call, so that repeated forward/backward passes stop paying page faults.

    Sets, for the whole process (like ``torch.set_num_threads``; call it once at start-up, it is never
    called behind your back):

    * ``M_MMAP_THRESHOLD = mmap_threshold``: blocks smaller than this come from the heap (the value glibc's
      own dynamic threshold grows to, at most 32 MiB, fixed from the start);
    * ``M_TRIM_THRESHOLD = trim_threshold``: up to this much free memory stays at the top of the heap.

    The cost is resident memory: up to ``trim_threshold`` bytes of freed memory stay mapped. The gain is the
    page faults of every call's large temporaries.

    Returns:
        ``True`` when applied, ``False`` where the C library is not glibc (nothing is changed).

    Raises:
        ValueError: a threshold that is not a positive int, or ``mmap_threshold`` above 32 MiB.
    """
    for name, value in (("trim_threshold", trim_threshold), ("mmap_threshold", mmap_threshold)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive number of bytes, got {value!r}")
    if mmap_threshold > _MAX_MMAP_THRESHOLD:
        raise ValueError(
            f"mmap_threshold must be at most {_MAX_MMAP_THRESHOLD} bytes (glibc's limit), got {mmap_threshold}"
        )
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )


def _glibc():
    """The process's C library when it is glibc (it has ``gnu_get_libc_version`` and ``mallopt``), else None."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process
    except (OSError, TypeError):  # TypeError: Windows has no "main program" handle
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def accumulator(num_out: int, c_out: int, dtype: torch.dtype, bias: Optional[Tensor]) -> Tensor:
    """A convolution's ``[num_out, c_out]`` accumulator: zeros, or ``bias`` in every row (saves a separate pass
    adding it)."""
    if bias is None:
        return zeros((num_out, c_out), dtype)
    # a fresh buffer: ``expand(...).contiguous()`` would alias the bias itself when num_out == 1
    return empty((num_out, c_out), dtype).copy_(bias.detach().reshape(1, c_out).expand(num_out, c_out))
