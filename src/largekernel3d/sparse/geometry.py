"""Convolution geometry: per-axis kernel/stride/padding/dilation and the output grid they produce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

IntOrSeq = Union[int, Sequence[int]]


def as_tuple(value: IntOrSeq, ndim: int, name: str, minimum: int = 0) -> Tuple[int, ...]:
    """Expand an int (or check a sequence) to a tuple of ``ndim`` ints, each ``>= minimum``.

    Raises ``TypeError``/``ValueError`` naming ``name`` when the value has the wrong type or length.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got a bool")
    if isinstance(value, int):
        out = (value,) * ndim
    else:
        try:
            out = tuple(int(v) for v in value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {value!r}") from None
        if len(out) != ndim:
            raise ValueError(f"{name} must have {ndim} entries (one per spatial axis), got {len(out)}: {value!r}")
    for v in out:
        if v < minimum:
            raise ValueError(f"{name} entries must be >= {minimum}, got {value!r}")
    return out


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel size, stride, padding and dilation of a sparse convolution, one entry per spatial axis.

    A regular convolution maps input site ``p_in`` to output site ``p_out`` through kernel offset
    ``k`` (``0 <= k < kernel_size``, per axis) when::

        p_in = stride * p_out - padding + dilation * k

    A submanifold convolution keeps the input sites and centres the window::

        p_in = p_out + dilation * (k - kernel_size // 2)
    """

    kernel_size: Tuple[int, ...]
    stride: Tuple[int, ...]
    padding: Tuple[int, ...]
    dilation: Tuple[int, ...]

    @classmethod
    def create(
        cls, ndim: int, kernel_size: IntOrSeq, stride: IntOrSeq = 1, padding: IntOrSeq = 0, dilation: IntOrSeq = 1
    ) -> "ConvGeometry":
        """Normalise int-or-sequence arguments for an ``ndim``-dimensional convolution."""
        return cls(
            kernel_size=as_tuple(kernel_size, ndim, "kernel_size", minimum=1),
            stride=as_tuple(stride, ndim, "stride", minimum=1),
            padding=as_tuple(padding, ndim, "padding", minimum=0),
            dilation=as_tuple(dilation, ndim, "dilation", minimum=1),
        )

    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    @property
    def kernel_volume(self) -> int:
        v = 1
        for k in self.kernel_size:
            v *= k
        return v

    def conv_output_shape(self, in_shape: Sequence[int]) -> Tuple[int, ...]:
        """Output grid of a regular conv: ``floor((n + 2p - d (k - 1) - 1) / s) + 1`` per axis.

        Raises ``ValueError`` when an axis would be empty.
        """
        out = tuple(
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(in_shape, self.kernel_size, self.stride, self.padding, self.dilation)
        )
        if any(o <= 0 for o in out):
            raise ValueError(
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation} on spatial_shape={tuple(in_shape)} give an empty output grid "
                f"{out}; use a smaller kernel/dilation or more padding"
            )
        return out

    def transposed_output_shape(self, in_shape: Sequence[int]) -> Tuple[int, ...]:
        """Output grid of a transposed conv: ``(n - 1) s - 2p + d (k - 1) + 1`` per axis."""
        out = tuple(
            (n - 1) * s - 2 * p + d * (k - 1) + 1
            for n, k, s, p, d in zip(in_shape, self.kernel_size, self.stride, self.padding, self.dilation)
        )
        if any(o <= 0 for o in out):
            raise ValueError(
                f"transposed conv with kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding} on spatial_shape={tuple(in_shape)} gives an empty grid {out}; "
                f"reduce padding"
            )
        return out
