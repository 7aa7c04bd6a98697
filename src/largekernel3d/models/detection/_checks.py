"""Checks of the detector's construction arguments (they come from the detector config)."""

from __future__ import annotations

from ...sparse.point_to_voxel import positive_int


def config_positive_int(value: object, name: str) -> int:
    """``value`` as an int ``>= 1``, else a ``ValueError`` naming ``name``.

    The check is the engine's :func:`~largekernel3d.sparse.point_to_voxel.positive_int`; its ``TypeError`` for a
    value that is not an int (``1.5``, ``"8"``, ``True``) becomes a ``ValueError`` here, because these values are
    config entries and a bad config value is a ``ValueError`` naming its key.
    """
    try:
        return positive_int(value, name)
    except TypeError as err:
        raise ValueError(str(err)) from None


__all__ = ["config_positive_int"]
