"""Angle wrapping.

``wrap(a) = a - floor(a / period + offset) * period`` maps any angle into ``[-offset * period,
(1 - offset) * period)``: ``offset = 0.5`` gives ``[-pi, pi)``, ``offset = 0`` gives ``[0, 2 pi)``
(OpenPCDet's ``limit_period``). A period of ``pi`` folds a heading into its axis (``yaw`` and ``yaw + pi``
describe the same box).
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
from torch import Tensor

from ._inputs import check_real

AngleLike = Union[Tensor, np.ndarray, float]


def wrap_angle(angle: AngleLike, offset: float = 0.5, period: float = 2 * math.pi) -> AngleLike:
    """``angle - floor(angle / period + offset) * period``, elementwise.

    Args:
        angle: a torch tensor (any shape, any device, floating), a numpy array or a python float.
        offset: where the output interval starts, in periods: the result lies in
            ``[-offset * period, (1 - offset) * period)`` (up to rounding at the upper end).
        period: the period, positive.

    Returns:
        The wrapped angle, of the input's type, shape and dtype.
    """
    offset = check_real(offset, "offset")
    period = check_real(period, "period")
    if period <= 0:
        raise ValueError(f"period must be positive, got {period}")
    if isinstance(angle, Tensor):
        if not angle.is_floating_point():
            raise TypeError(f"angle must be a floating tensor, got {angle.dtype}")
        return angle - torch.floor(angle / period + offset) * period
    if isinstance(angle, np.ndarray):
        if angle.dtype.kind != "f":
            raise TypeError(f"angle must be a floating numpy array, got dtype {angle.dtype}")
        return angle - np.floor(angle / period + offset) * period
    if isinstance(angle, (float, int, np.floating, np.integer)) and not isinstance(angle, bool):
        return float(angle) - math.floor(float(angle) / period + offset) * period
    raise TypeError(f"angle must be a torch.Tensor, a numpy.ndarray or a float, got {type(angle).__name__}")
