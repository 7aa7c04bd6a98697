"""Spatial-wise partitions of a large kernel window into groups of offsets that share one weight.

Each axis ``d`` of a ``k_d``-wide window (kernel positions ``0 .. k_d - 1``, centre ``h_d = k_d // 2``)
is cut into at most three contiguous parts (before the centre, a centre part, after the centre).
The groups are the products of the parts of the three axes, numbered row-major::

    g(k) = sum_d part_d(k_d) * prod_{e > d} P_e        (P_e = number of non-empty parts of axis e)

Partition manners (the ablation of the paper, per axis of size ``k``, ``h = k // 2``):

* ``"center1"`` (default, the paper's best): ``[0, h)``, ``{h}``, ``(h, k)`` -- sizes ``h, 1, h``.
* ``"center3"``: a 3-voxel centre, ``[0, h - 1)``, ``[h - 1, h + 2)``, ``[h + 2, k)`` -- sizes
  ``h - 1, 3, h - 1``.
* ``"thirds"``: as equal as possible with a symmetric (odd) centre: the centre part has ``c`` positions,
  ``c`` the odd integer nearest ``k / 3``, the two outer parts ``(k - c) / 2`` each (k = 9: 3, 3, 3;
  k = 7: 2, 3, 2; k = 5: 2, 1, 2).

Empty parts (``"center3"`` on a 3-wide axis) are dropped, so a partition has at most 27 groups. For
``k = 3`` and ``"center1"`` every group is a single offset and the layer is a plain 3x3x3 conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

PARTITIONS = ("center1", "center3", "thirds")
MIN_KERNEL = 3
MAX_KERNEL = 31

IntOrSeq = Union[int, Sequence[int]]


def check_kernel_size(kernel_size: IntOrSeq, ndim: int = 3, name: str = "kernel_size") -> Tuple[int, ...]:
    """Normalise ``kernel_size`` (int or per-axis sequence) to ``ndim`` odd ints in ``[3, 31]``.

    Raises ``TypeError``/``ValueError`` naming ``name`` otherwise.
    """
    if isinstance(kernel_size, bool):
        raise TypeError(
            f"{name} must be an odd int in [{MIN_KERNEL}, {MAX_KERNEL}] or a sequence of {ndim}, got a bool"
        )
    if isinstance(kernel_size, int):
        sizes = (kernel_size,) * ndim
    else:
        try:
            sizes = tuple(kernel_size)
        except TypeError:
            raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {kernel_size!r}") from None
        if len(sizes) != ndim:
            raise ValueError(f"{name} must have {ndim} entries (one per axis), got {len(sizes)}: {kernel_size!r}")
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in sizes):
            raise TypeError(f"{name} entries must be ints, got {kernel_size!r}")
    for k in sizes:
        if k < MIN_KERNEL or k > MAX_KERNEL or k % 2 == 0:
            raise ValueError(
                f"{name} entries must be odd and in [{MIN_KERNEL}, {MAX_KERNEL}] (a centred window), "
                f"got {kernel_size!r}"
            )
    return tuple(int(k) for k in sizes)


def axis_parts(k: int, partition: str) -> Tuple[Tuple[int, int], ...]:
    """The non-empty ``[start, end)`` parts of one axis of size ``k`` under ``partition``."""
    h = k // 2
    if partition == "center1":
        c = 1
    elif partition == "center3":
        c = 3
    elif partition == "thirds":
        c = 2 * round((k / 3 - 1) / 2) + 1
    else:
        raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    lo, hi = h - c // 2, h + c // 2 + 1
    parts = ((0, lo), (lo, hi), (hi, k))
    return tuple(p for p in parts if p[1] > p[0])


@dataclass(frozen=True)
class SpatialPartition:
    """A split of a ``kernel_size`` window into groups of offsets (see the module docstring).

    Attributes:
        kernel_size: window size per axis (odd, 3..31).
        name: the partition manner (``"center1"``, ``"center3"``, ``"thirds"``).
        parts: per axis, the ``[start, end)`` kernel-position ranges of its parts.
    """

    kernel_size: Tuple[int, ...]
    name: str
    parts: Tuple[Tuple[Tuple[int, int], ...], ...]

    @classmethod
    def create(cls, kernel_size: IntOrSeq, partition: str = "center1", ndim: int = 3) -> "SpatialPartition":
        """Validate ``kernel_size``/``partition`` and build the partition."""
        if not isinstance(partition, str) or partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
        sizes = check_kernel_size(kernel_size, ndim)
        return cls(sizes, partition, tuple(axis_parts(k, partition) for k in sizes))

    @property
    def group_shape(self) -> Tuple[int, ...]:
        """Number of parts per axis (``(3, 3, 3)`` unless an axis has empty parts)."""
        return tuple(len(p) for p in self.parts)

    @property
    def num_groups(self) -> int:
        n = 1
        for p in self.group_shape:
            n *= p
        return n

    @property
    def kernel_volume(self) -> int:
        n = 1
        for k in self.kernel_size:
            n *= k
        return n

    @property
    def centre_offset(self) -> int:
        """Flat (row-major) index of the centre kernel position ``k // 2`` on every axis."""
        idx = 0
        for k in self.kernel_size:
            idx = idx * k + k // 2
        return idx

    def group_index(self, device: Union[torch.device, str, None] = None) -> Tensor:
        """int64 ``[K]``: the group of every kernel offset (offsets flattened row-major)."""
        per_axis = []
        for k, parts in zip(self.kernel_size, self.parts):
            lab = torch.empty(k, dtype=torch.int64)
            for j, (s, e) in enumerate(parts):
                lab[s:e] = j
            per_axis.append(lab)
        g = torch.zeros((), dtype=torch.int64)
        for lab, n in zip(per_axis, self.group_shape):
            g = g.unsqueeze(-1) * n + lab
        return g.reshape(-1).to(device)

    def group_sizes(self) -> Tensor:
        """int64 ``[G]``: number of kernel offsets in each group."""
        return torch.bincount(self.group_index(), minlength=self.num_groups)

    def __str__(self) -> str:
        sizes = [[e - s for s, e in p] for p in self.parts]
        return f"{self.name} partition of {self.kernel_size}: part sizes per axis {sizes}, {self.num_groups} groups"


__all__ = ["PARTITIONS", "SpatialPartition", "axis_parts", "check_kernel_size"]
