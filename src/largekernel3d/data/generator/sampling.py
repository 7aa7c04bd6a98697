"""Points sampled on the surface primitives (area x density weighted), and the occlusion test that drops
samples hidden inside other parts' solids."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .primitives import Parts


def sample_surfaces(
    parts: Parts, n: int, rng
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points on the primitives, proportional to area x density.

    Returns points, normals, labels, base colours, part ids, carvable flags.
    """
    o = np.array(parts.rect_o)
    e1 = np.array(parts.rect_e1)
    e2 = np.array(parts.rect_e2)
    nr = np.array(parts.rect_n)
    lab_r = np.array([a[0] for a in parts.rect_attr], dtype=np.int64)
    col_r = np.array([a[1] for a in parts.rect_attr])
    dens_r = np.array([a[2] for a in parts.rect_attr])
    wave_r = np.array([a[3] for a in parts.rect_attr])
    waves_r = np.array([a[4] for a in parts.rect_attr])
    pid_r = np.array([a[5] for a in parts.rect_attr], dtype=np.int64)
    carv_r = np.array([a[6] for a in parts.rect_attr], dtype=bool)
    area_r = np.linalg.norm(np.cross(e1, e2), axis=1) * dens_r
    cyl = parts.cyl
    area_c = np.array([2 * np.pi * c[4] * (c[3] - c[2]) * c[7] for c in cyl]) if cyl else np.zeros(0)
    weights = np.concatenate([area_r, area_c])
    counts = rng.multinomial(n, weights / weights.sum())
    cr, cc = counts[: len(area_r)], counts[len(area_r) :]

    idx = np.repeat(np.arange(len(area_r)), cr)
    u = rng.random(idx.size)
    v = rng.random(idx.size)
    wave = wave_r[idx] * np.sin(2 * np.pi * waves_r[idx] * u)
    pts_r = o[idx] + u[:, None] * e1[idx] + v[:, None] * e2[idx] + wave[:, None] * nr[idx]
    # normal of the wavy surface: tilt by the derivative along e1
    slope = wave_r[idx] * 2 * np.pi * waves_r[idx] * np.cos(2 * np.pi * waves_r[idx] * u)
    len1 = np.linalg.norm(e1[idx], axis=1)
    n_r = nr[idx] - (slope / np.maximum(len1, 1e-9))[:, None] * (e1[idx] / np.maximum(len1, 1e-9)[:, None])
    n_r /= np.linalg.norm(n_r, axis=1, keepdims=True)

    if cyl:
        cyl_arr = np.array([[c[0], c[1], c[2], c[3], c[4]] for c in cyl])
        jdx = np.repeat(np.arange(len(cyl)), cc)
        th = rng.uniform(0, 2 * np.pi, jdx.size)
        zz = cyl_arr[jdx, 2] + rng.random(jdx.size) * (cyl_arr[jdx, 3] - cyl_arr[jdx, 2])
        nc = np.stack([np.cos(th), np.sin(th), np.zeros_like(th)], axis=1)
        pts_c = np.stack([cyl_arr[jdx, 0], cyl_arr[jdx, 1], zz], axis=1) + nc * cyl_arr[jdx, 4:5]
        lab_c = np.array([c[5] for c in cyl], dtype=np.int64)[jdx]
        col_c = np.array([c[6] for c in cyl])[jdx]
        pid_c = np.array([c[8] for c in cyl], dtype=np.int64)[jdx]
    else:
        pts_c, nc, lab_c, col_c, pid_c = (
            np.zeros((0, 3)),
            np.zeros((0, 3)),
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros(0, np.int64),
        )
    return (
        np.concatenate([pts_r, pts_c]),
        np.concatenate([n_r, nc]),
        np.concatenate([lab_r[idx], lab_c]),
        np.concatenate([col_r[idx], col_c]),
        np.concatenate([pid_r[idx], pid_c]),
        np.concatenate([carv_r[idx], np.zeros(len(pts_c), dtype=bool)]),
    )


def hidden_mask(points: np.ndarray, pids: np.ndarray, solids, margin: float = 0.02) -> np.ndarray:
    """Points inside another part's solid box grown by ``margin`` (not visible to a scanner)."""
    hidden = np.zeros(len(points), dtype=bool)
    if not solids:
        return hidden
    order = np.argsort(points[:, 0], kind="stable")
    xs = points[order, 0]
    for center, axes, half, pid in solids:
        reach = np.abs(axes) @ half + margin  # half size of the axis-aligned bounding box
        a, b = np.searchsorted(xs, [center[0] - reach[0], center[0] + reach[0]])
        if a >= b:
            continue
        sel = order[a:b]
        local = (points[sel] - center) @ axes  # coordinates along the box axes
        inside = np.all(np.abs(local) <= half + margin, axis=1) & (pids[sel] != pid)
        hidden[sel[inside]] = True
    return hidden
