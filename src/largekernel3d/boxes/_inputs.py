"""Argument checks and the numpy <-> torch round trip shared by the box operations.

Every public function of :mod:`largekernel3d.boxes` takes torch tensors (any device) or numpy arrays. The
arrays of one call must all be of one kind (all torch on one device, or all numpy); numpy inputs are viewed
as CPU tensors without a copy and the results are handed back as numpy arrays.
"""

from __future__ import annotations

from typing import Any, Tuple, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

GEOMETRY_DTYPES = (torch.float32, torch.float64)


def to_tensor(value: Any, name: str) -> Tuple[Tensor, bool]:
    """``(tensor, was_numpy)`` for a torch tensor or a numpy array; anything else is a ``TypeError``."""
    if isinstance(value, Tensor):
        return value, False
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got a numpy array of dtype {value.dtype}")
        array = np.ascontiguousarray(value)
        if not array.flags.writeable:  # torch.from_numpy warns on read-only memory (np.frombuffer, memmaps)
            array = array.copy()
        return torch.from_numpy(array), True
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}")


def same_kind(**named: Tuple[Tensor, bool]) -> bool:
    """Check that the converted arguments are all numpy or all torch on one device; return ``was_numpy``."""
    items = list(named.items())
    first_name, (first, first_numpy) = items[0]
    for name, (tensor, was_numpy) in items[1:]:
        if was_numpy != first_numpy:
            kinds = {True: "a numpy array", False: "a torch tensor"}
            raise TypeError(
                f"{name} is {kinds[was_numpy]} but {first_name} is {kinds[first_numpy]}; "
                "pass both as numpy or both as torch"
            )
        if tensor.device != first.device:
            raise ValueError(
                f"{name} is on {tensor.device} but {first_name} is on {first.device}; move them to one device"
            )
    return first_numpy


def check_geometry(
    tensor: Tensor, name: str, min_cols: int, exact_cols: Tuple[int, ...] = (), batch_dims: int = 1
) -> None:
    """Check a float32/float64 array of shape ``[*batch, C]`` with ``C >= min_cols`` (or ``C in exact_cols``).

    ``batch_dims`` is the number of leading dimensions (``1`` for ``[N, C]``, ``-1`` for any number).
    """
    if tensor.dtype not in GEOMETRY_DTYPES:
        raise TypeError(
            f"{name} must be float32 or float64, got {tensor.dtype}; convert it with .float() "
            "or .double() (numpy: .astype(np.float32))"
        )
    if batch_dims >= 0 and tensor.dim() != batch_dims + 1:
        shape = "[N, C]" if batch_dims == 1 else f"{batch_dims + 1} dimensions"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    if batch_dims < 0 and tensor.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension (the last holds the columns), got a scalar")
    cols = tensor.shape[-1]
    if exact_cols and cols not in exact_cols:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, exact_cols))} columns in its last dimension, "
            f"got shape {tuple(tensor.shape)}"
        )
    if cols < min_cols:
        raise ValueError(
            f"{name} must have at least {min_cols} columns in its last dimension, got shape {tuple(tensor.shape)}"
        )


def check_scores(scores: Tensor, name: str, count: int) -> None:
    """Check a real 1-D score vector of length ``count``."""
    if scores.dtype == torch.bool or scores.is_complex():
        raise TypeError(f"{name} must hold real numbers, got {scores.dtype}")
    if scores.dim() != 1 or scores.shape[0] != count:
        raise ValueError(f"{name} must have shape [{count}] (one score per box), got {tuple(scores.shape)}")


def common_dtype(*tensors: Tensor) -> torch.dtype:
    """The promoted floating dtype of geometry arguments (float32 with float64 gives float64)."""
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def check_pair(value: Any, name: str) -> Tuple[float, float]:
    """A pair of finite floats ``(a, b)`` from a tuple / list / array of length 2."""
    try:
        first, second = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of floats (x, y), got {value!r}") from None
    if not (np.isfinite(first) and np.isfinite(second)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return first, second


def check_optional_count(value: Any, name: str) -> None:
    """``None`` or a non-negative int (bools are refused)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be None or a non-negative int, got {value!r}")


def check_real(value: Any, name: str) -> float:
    """A finite python float from an int / float (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def back(tensor: Tensor, was_numpy: bool) -> ArrayLike:
    """Return ``tensor`` as numpy when the inputs were numpy."""
    return tensor.numpy() if was_numpy else tensor
