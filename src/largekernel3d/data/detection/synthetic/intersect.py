"""Ray / solid intersection in a primitive's local frame, vectorised over ray-primitive pairs.

Each kernel takes ``K`` local ray origins ``o`` and directions ``d`` (``[K, 3]``, ``d`` not necessarily
unit) with the primitive parameters gathered per pair, and returns the parameter interval
``[t_in, t_out]`` over which ``o + t d`` lies inside the solid (``t_in = +inf`` where the ray misses).
The solids are those of :mod:`.primitives`; the formulas:

- box (slab test): ``t_in = max_i min(t1_i, t2_i)``, ``t_out = min_i max(t1_i, t2_i)`` with
  ``t1, t2 = (-+h_i - o_i) / d_i``;
- cylinder: the roots of ``(o_0 + t d_0)^2 + (o_1 + t d_1)^2 = r^2`` intersected with the z slab;
- ellipsoid: the roots of ``|(o + t d) / h|^2 = 1``;
- convex polytope: ``t_in`` the largest entering plane crossing ``(d_k - n_k.o) / (n_k.d)`` with
  ``n_k.d < 0``, ``t_out`` the smallest leaving one (the slack ``d_k - n_k.o`` is computed once per
  primitive by :func:`convex_slack`).

:func:`local_normals` gives the outward unit normal at a local hit point (the face, side or cap hit).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .primitives import Kind

_TINY = 1e-12


def _nonzero(d: np.ndarray) -> np.ndarray:
    """``d`` with exact zeros (and denormals) pushed to ``+-1e-12`` so that ``1 / d`` is finite."""
    return np.where(np.abs(d) < _TINY, np.where(d < 0, -_TINY, _TINY), d)


def _miss(t_in: np.ndarray, t_out: np.ndarray, hit: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return np.where(hit, t_in, np.inf), np.where(hit, t_out, -np.inf)


def box_interval(o: np.ndarray, d: np.ndarray, half: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Slab test for the boxes ``|x_i| <= half_i``; all inputs ``[K, 3]``, returns ``([K], [K])``."""
    inv = 1.0 / _nonzero(d)
    t1 = (-half - o) * inv
    t2 = (half - o) * inv
    t_in = np.minimum(t1, t2).max(axis=1)
    t_out = np.maximum(t1, t2).min(axis=1)
    return _miss(t_in, t_out, t_in <= t_out)


def _quadratic_roots(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roots ``t0 <= t1`` of ``a t^2 + 2 b t + c = 0`` for ``a > 0`` and whether they are real."""
    disc = b * b - a * c
    real = disc >= 0
    root = np.sqrt(np.where(real, disc, 0.0))
    # the numerically stable pair: q = -(b + sign(b) sqrt(disc)); roots q / a and c / q
    q = -(b + np.where(b >= 0, root, -root))
    q = np.where(np.abs(q) < _TINY, _TINY, q)
    r1, r2 = q / a, c / q
    return np.minimum(r1, r2), np.maximum(r1, r2), real


def cylinder_interval(o: np.ndarray, d: np.ndarray, half: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Solid cylinders ``x_0^2 + x_1^2 <= half_0^2``, ``|x_2| <= half_2``; inputs ``[K, 3]``."""
    r = half[:, 0]
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - r * r
    along_axis = a < _TINY
    t0, t1, real = _quadratic_roots(np.where(along_axis, 1.0, a), b, c)
    # a ray parallel to the axis is inside the infinite cylinder everywhere or nowhere
    t0 = np.where(along_axis, -np.inf, t0)
    t1 = np.where(along_axis, np.inf, t1)
    side = np.where(along_axis, c <= 0, real)
    inv = 1.0 / _nonzero(d[:, 2])
    z1 = (-half[:, 2] - o[:, 2]) * inv
    z2 = (half[:, 2] - o[:, 2]) * inv
    t_in = np.maximum(t0, np.minimum(z1, z2))
    t_out = np.minimum(t1, np.maximum(z1, z2))
    return _miss(t_in, t_out, side & (t_in <= t_out))


def ellipsoid_interval(o: np.ndarray, d: np.ndarray, half: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Solid ellipsoids ``sum_i (x_i / half_i)^2 <= 1``; inputs ``[K, 3]``."""
    os_, ds = o / half, d / half
    a = (ds * ds).sum(axis=1)
    b = (os_ * ds).sum(axis=1)
    c = (os_ * os_).sum(axis=1) - 1.0
    t0, t1, real = _quadratic_roots(a, b, c)
    return _miss(t0, t1, real)


def convex_slack(o: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """``[K, M]`` slack ``d_k - n_k . o`` of the local origins ``o`` ``[K, 3]`` to the planes
    ``[K, M, 4]`` (what :func:`convex_interval` needs of the origin; constant per primitive when all
    rays share one origin)."""
    return planes[..., 3] - np.einsum("kmj,kj->km", planes[..., :3], o)


def convex_interval(slack: np.ndarray, d: np.ndarray, planes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Convex polytopes ``n_k . x <= d_k``: ``slack`` ``[K, M]`` from :func:`convex_slack`, ``d``
    ``[K, 3]``, ``planes`` ``[K, M, 4]`` (only the normals are read)."""
    nd = np.einsum("kmj,kj->km", planes[..., :3], d)
    crossing = slack / _nonzero(nd)
    entering = np.where(nd < -_TINY, crossing, -np.inf).max(axis=1)
    leaving = np.where(nd > _TINY, crossing, np.inf).min(axis=1)
    parallel_outside = ((np.abs(nd) <= _TINY) & (slack < 0)).any(axis=1)
    return _miss(entering, leaving, ~parallel_outside & (entering <= leaving))


def local_normals(kind: int, p: np.ndarray, half: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Outward unit normals ``[K, 3]`` at local hit points ``p`` ``[K, 3]`` on primitives of one ``kind``
    (``half`` ``[K, 3]``, ``planes`` ``[K, M, 4]``): the face / cap / plane the point lies on, or the
    gradient ``x / h^2`` on ellipsoids."""
    k = len(p)
    if kind == Kind.ELLIPSOID:
        n = p / half**2
    elif kind == Kind.CYLINDER:
        radial = np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2) / half[:, 0]
        cap = np.abs(p[:, 2]) / half[:, 2] > radial
        n = np.where(cap[:, None], np.c_[np.zeros(k), np.zeros(k), np.sign(p[:, 2])], np.c_[p[:, :2], np.zeros(k)])
    elif kind == Kind.BOX:
        face = np.argmax(np.abs(p) / half, axis=1)
        n = np.zeros_like(p)
        n[np.arange(k), face] = np.sign(p[np.arange(k), face])
    else:
        slack = planes[..., 3] - np.einsum("kmj,kj->km", planes[..., :3], p)
        n = planes[np.arange(k), np.argmin(slack, axis=1), :3].copy()
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(norm > 0, norm, 1.0)


__all__ = [
    "box_interval",
    "cylinder_interval",
    "ellipsoid_interval",
    "convex_slack",
    "convex_interval",
    "local_normals",
]
