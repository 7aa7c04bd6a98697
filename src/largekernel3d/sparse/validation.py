"""Checks at the entry points of the engine, before any CPU kernel reads memory through a raw pointer.

The numba kernels behind :func:`~.functional.sparse_conv` and :func:`~.group_conv.group_conv` index the
weight, the features and the output by the kernel map's pairs without bounds checks; a weight of another shape,
a feature matrix of another length or a pair outside ``[0, N)`` would read or write outside the buffers. The
functions here raise ``TypeError``/``ValueError`` naming the argument and the fix instead. They are O(1) per
call, except the range check of a kernel map's pairs (one vectorised min/max pass), which is memoised on the
map (:meth:`.KernelMap.derived`), so a map built once and shared by many layers is checked once.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .kernel_map import CONTENT_CHECKED, KernelMap


def check_tensor(value, name: str, floating: bool = False, dim: Optional[int] = None) -> None:
    """Raise when ``value`` is not a tensor (``TypeError``), not floating point when ``floating`` (``TypeError``)
    or not ``dim``-dimensional (``ValueError``)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(
            f"{name} must be floating point (float16/32/64, bfloat16), got {value.dtype}; convert with .float()"
        )
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {tuple(value.shape)}")


def check_kernel_map(kmap, name: str = "kmap") -> None:
    """Raise unless ``kmap`` is a well-formed :class:`KernelMap`: ``K + 1`` non-decreasing offset starts from 0
    to ``P`` (``K`` the kernel volume of its geometry), int64 pair lists of length ``P`` on one device, and
    every input row in ``[0, N_in)``, every output row in ``[0, N_out)``. The content check is memoised, and
    maps from the builders of :mod:`.kernel_map` skip it (their pairs are in range by construction)."""
    if not isinstance(kmap, KernelMap):
        raise TypeError(
            f"{name} must be a largekernel3d.sparse.KernelMap (from build_submanifold_map / "
            f"build_regular_map / build_transposed_map), got {type(kmap).__name__}"
        )
    kmap.derived(CONTENT_CHECKED, lambda: _check_map_content(kmap, name))


def _check_map_content(kmap: KernelMap, name: str) -> bool:
    kv = math.prod(int(k) for k in kmap.geometry.kernel_size)
    starts = np.asarray(kmap.offset_starts, dtype=np.int64)
    if starts.ndim != 1 or starts.shape[0] != kv + 1:
        raise ValueError(
            f"{name}.offset_starts must have kernel volume + 1 = {kv + 1} entries for kernel_size="
            f"{kmap.geometry.kernel_size}, got {starts.shape[0] if starts.ndim else starts}"
        )
    for field in ("stored_in", "stored_out"):
        pairs = getattr(kmap, field)
        check_tensor(pairs, f"{name}.{field}", dim=1)
        if pairs.dtype != torch.int64:
            raise TypeError(f"{name}.{field} must be int64 row numbers, got {pairs.dtype}")
        if not pairs.is_contiguous():
            raise ValueError(f"{name}.{field} must be contiguous; pass .contiguous()")
    for field in ("in_indices", "out_indices"):
        check_tensor(getattr(kmap, field), f"{name}.{field}", dim=2)
    num_pairs = kmap.stored_in.shape[0]
    if kmap.stored_out.shape[0] != num_pairs or kmap.stored_in.device != kmap.stored_out.device:
        raise ValueError(
            f"{name}: stored_in ({num_pairs}, {kmap.stored_in.device}) and stored_out "
            f"({kmap.stored_out.shape[0]}, {kmap.stored_out.device}) must have one length and device"
        )
    if starts[0] != 0 or starts[-1] != num_pairs or bool(np.any(np.diff(starts) < 0)):
        raise ValueError(
            f"{name}.offset_starts must rise from 0 to the number of pairs ({num_pairs}), "
            f"got {starts[0]} .. {starts[-1]} (non-decreasing: {not np.any(np.diff(starts) < 0)})"
        )
    # a lazily mirrored map has not written the offsets before its centre yet (they mirror those after it)
    lo = int(starts[kv // 2]) if kmap.half_stored else 0
    for field, bound, what in (("stored_in", kmap.num_in, "input"), ("stored_out", kmap.num_out, "output")):
        rows = getattr(kmap, field)[lo:]
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= bound):
            raise ValueError(
                f"{name}.{field} has {what} rows outside [0, {bound}) (range {int(rows.min())} .. "
                f"{int(rows.max())}); the map does not belong to these sites"
            )
    return True


def check_conv_operands(features, weight, kmap, groups: int, bias) -> None:
    """Raise unless ``features [N_in, C_in]``, ``weight [C_out, *kernel, C_in / groups]`` and ``bias [C_out]``
    (or ``None``) fit each other and ``kmap`` (its kernel size and ``N_in``), on one device, with one
    floating dtype for features and weight."""
    check_tensor(features, "features", floating=True, dim=2)
    check_tensor(weight, "weight", floating=True)
    check_kernel_map(kmap)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    kernel = tuple(int(k) for k in kmap.geometry.kernel_size)
    if weight.dim() != len(kernel) + 2 or tuple(weight.shape[1:-1]) != kernel:
        raise ValueError(
            f"weight must be [C_out, {', '.join(map(str, kernel))}, C_in / groups] for the kernel map's "
            f"kernel_size={kernel}, got {tuple(weight.shape)}"
        )
    c_out, c_in = weight.shape[0], features.shape[1]
    if c_out % groups or weight.shape[-1] * groups != c_in:
        raise ValueError(
            f"weight {tuple(weight.shape)} with groups={groups} needs C_out divisible by groups and "
            f"C_in / groups = {weight.shape[-1]}, but the features have C_in={c_in}"
        )
    if features.shape[0] != kmap.num_in:
        raise ValueError(
            f"features has {features.shape[0]} rows but the kernel map reads {kmap.num_in} sites; "
            f"features and indices must have one row per site"
        )
    if weight.dtype != features.dtype:
        raise TypeError(f"weight is {weight.dtype} but the features are {features.dtype}; convert one of them")
    check_same_device(features, "features", (weight, "weight"), (kmap.stored_in, "the kernel map"))
    if bias is not None:
        check_tensor(bias, "bias", floating=True)
        if tuple(bias.shape) != (c_out,):
            raise ValueError(f"bias must be [C_out={c_out}], got {tuple(bias.shape)}")
        check_same_device(features, "features", (bias, "bias"))


def check_same_device(ref: Tensor, ref_name: str, *others: Sequence) -> None:
    """Raise ``ValueError`` when any ``(tensor, name)`` of ``others`` is on another device than ``ref``."""
    for tensor, name in others:
        if tensor.device != ref.device:
            raise ValueError(
                f"{name} is on {tensor.device} but {ref_name} on {ref.device}; move both to one device (.to(device))"
            )


def check_group_index(group_index, num_offsets: int, num_groups: int, groups_from: str) -> None:
    """Raise unless ``group_index`` is an integer ``[K]`` tensor with values in ``[0, num_groups)``."""
    check_tensor(group_index, "group_index", dim=1)
    if group_index.dtype.is_floating_point or group_index.dtype.is_complex or group_index.dtype == torch.bool:
        raise TypeError(f"group_index must hold integer group numbers, got {group_index.dtype}")
    if group_index.shape[0] != num_offsets:
        raise ValueError(
            f"group_index must have one entry per kernel offset ({num_offsets}), got shape {tuple(group_index.shape)}"
        )
    if num_offsets and (int(group_index.min()) < 0 or int(group_index.max()) >= num_groups):
        raise ValueError(
            f"group_index values must lie in [0, {num_groups}) ({groups_from}), found "
            f"{int(group_index.min())} .. {int(group_index.max())}"
        )


__all__ = ["check_tensor", "check_kernel_map", "check_conv_operands", "check_same_device", "check_group_index"]
