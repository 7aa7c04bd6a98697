"""Checks of the configuration mappings the networks are built from (model and detector configs)."""

from __future__ import annotations

from typing import Iterable, Mapping

from ..sparse.point_to_voxel import positive_int


def check_config_keys(config: Mapping, name: str, allowed: Iterable[str], required: Iterable[str], kind: str) -> None:
    """``ValueError`` naming the keys of ``config`` (a ``kind`` config, e.g. ``"model"``, for network ``name``)
    that are not ``allowed``, else the ``required`` keys it lacks."""
    allowed = list(allowed)
    unknown = [key for key in config if key not in allowed]
    if unknown:
        raise ValueError(f"unknown {kind} config key(s) {unknown} for {name!r}; allowed keys: {allowed}")
    missing = [key for key in required if key not in config]
    if missing:
        raise ValueError(f"{kind} config for {name!r} lacks the key(s) {missing}")


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


__all__ = ["check_config_keys", "config_positive_int"]
