"""CenterPoint targets: CornerNet's radius against a brute-force IoU search, the Gaussian against its formula,
and the per-task assignment against boxes placed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from largekernel3d.models.detection.center_targets import (
    CenterTargetConfig,
    build_task_targets,
    draw_gaussian_,
    gather_bev,
    gaussian_kernel,
    gaussian_radius,
)

# small tensors: one thread avoids contention on a shared machine
pytestmark = pytest.mark.usefixtures("one_thread")


def _aabb_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of axis-aligned rectangles ``[..., 4]`` = (x0, y0, x1, y1); empty rectangles have IoU 0."""
    wa, ha = np.clip(a[..., 2] - a[..., 0], 0, None), np.clip(a[..., 3] - a[..., 1], 0, None)
    wb, hb = np.clip(b[..., 2] - b[..., 0], 0, None), np.clip(b[..., 3] - b[..., 1], 0, None)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    return inter / (wa * ha + wb * hb - inter)


def _case_boxes(w: float, h: float, r: np.ndarray, case: int) -> np.ndarray:
    """The displaced box of CornerNet's case 1 (shift), 2 (corners inwards) or 3 (corners outwards)."""
    if case == 1:
        return np.stack([r, r, w + r, h + r], axis=-1)
    if case == 2:
        return np.stack([r, r, w - r, h - r], axis=-1)
    return np.stack([-r, -r, w + r, h + r], axis=-1)


def _brute_threshold(w: float, h: float, overlap: float, case: int) -> float:
    """The largest displacement keeping IoU >= overlap in one case, by a dense scan refined by a second scan."""
    original = np.array([0.0, 0.0, w, h])
    lo, hi = 0.0, 2.0 * (w + h)
    for _ in range(3):
        r = np.linspace(lo, hi, 20001)
        ok = _aabb_iou(original, _case_boxes(w, h, r, case)) >= overlap
        last = int(np.nonzero(ok)[0].max())
        lo, hi = r[last], r[min(last + 1, r.size - 1)]
    return float(lo)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cornernet_radius_matches_brute_force_iou(seed):
    rng = np.random.default_rng(seed)
    for _ in range(4):
        w, h = rng.uniform(0.3, 40.0, size=2)
        overlap = float(rng.uniform(0.05, 0.9))
        exact = [_brute_threshold(w, h, overlap, case) for case in (1, 2, 3)]
        r = float(
            gaussian_radius(
                torch.tensor(w, dtype=torch.float64), torch.tensor(h, dtype=torch.float64), overlap, rule="cornernet"
            )
        )
        assert r == pytest.approx(min(exact), rel=1e-6, abs=1e-9)
        # the radius is where the smallest of the three overlaps reaches min_overlap
        ious = [_aabb_iou(np.array([0, 0, w, h]), _case_boxes(w, h, np.array(r), c)) for c in (1, 2, 3)]
        assert min(ious) == pytest.approx(overlap, rel=1e-6)


@pytest.mark.parametrize("seed", [3, 4])
def test_centerpoint_radius_is_the_documented_variant_of_the_exact_roots(seed):
    # CenterPoint's r_k = (b_k + sqrt(b_k^2 - 4 a_k c_k)) / 2: the larger root of case 1 (= s - r1*), 4 x the
    # larger root of case 2 (= 4 (s / 2 - r2*)) and 4 o x the root of case 3, with r_k* from the brute force
    rng = np.random.default_rng(seed)
    for _ in range(4):
        w, h = rng.uniform(0.3, 40.0, size=2)
        overlap = float(rng.uniform(0.05, 0.9))
        r1, r2, r3 = (_brute_threshold(w, h, overlap, case) for case in (1, 2, 3))
        s = w + h
        expected = min(s - r1, 4.0 * (s / 2.0 - r2), 4.0 * overlap * r3)
        got = float(
            gaussian_radius(torch.tensor([w], dtype=torch.float64), torch.tensor([h], dtype=torch.float64), overlap)[0]
        )
        assert got == pytest.approx(expected, rel=1e-6)


def test_gaussian_radius_is_symmetric_and_vectorised():
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(50, generator=g) * 30 + 0.1, torch.rand(50, generator=g) * 30 + 0.1
    for rule in ("centerpoint", "cornernet"):
        r = gaussian_radius(a, b, 0.1, rule)
        assert r.shape == (50,) and bool((r > 0).all())
        torch.testing.assert_close(r, gaussian_radius(b, a, 0.1, rule))
        one = torch.stack([gaussian_radius(a[i : i + 1], b[i : i + 1], 0.1, rule)[0] for i in range(50)])
        torch.testing.assert_close(r, one)
    with pytest.raises(ValueError, match="min_overlap"):
        gaussian_radius(a, b, 1.0)
    with pytest.raises(ValueError, match="rule"):
        gaussian_radius(a, b, 0.1, "other")


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_gaussian_kernel_matches_formula(radius):
    k = gaussian_kernel(radius, dtype=torch.float64)
    sigma = (2 * radius + 1) / 6.0
    assert k.shape == (2 * radius + 1, 2 * radius + 1)
    for i in range(2 * radius + 1):
        for j in range(2 * radius + 1):
            v, u = i - radius, j - radius
            assert float(k[i, j]) == pytest.approx(math.exp(-(u * u + v * v) / (2 * sigma * sigma)), rel=1e-12)
    assert float(k[radius, radius]) == 1.0


@pytest.mark.parametrize("center,radius", [((6, 5), 3), ((0, 0), 2), ((11, 9), 4), ((1, 8), 5)])
def test_draw_gaussian_max_merges_and_clips(center, radius):
    g = torch.Generator().manual_seed(6)
    heat = torch.rand(10, 12, generator=g, dtype=torch.float64) * 0.8
    before = heat.clone()
    draw_gaussian_(heat, center, radius)
    sigma = (2 * radius + 1) / 6.0
    ix, iy = center
    for y in range(10):
        for x in range(12):
            want = float(before[y, x])
            if abs(x - ix) <= radius and abs(y - iy) <= radius:
                want = max(want, math.exp(-((x - ix) ** 2 + (y - iy) ** 2) / (2 * sigma * sigma)))
            assert float(heat[y, x]) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="outside"):
        draw_gaussian_(heat, (12, 0), 2)


ORIGIN = (-8.0, -6.4)
CELL = (0.4, 0.4)
SHAPE = (32, 40)  # H (y), W (x)


def _heat_reference(boxes, labels, channels, config):
    """Heatmap drawn over the full grid with the Gaussian written out (no slicing), boxes given in metres."""
    h, w = SHAPE
    heat = np.zeros((len(channels), h, w))
    ys, xs = np.mgrid[0:h, 0:w]
    for box, label in zip(boxes.tolist(), labels.tolist()):
        if label not in channels:
            continue
        ix = math.floor((box[0] - ORIGIN[0]) / CELL[0])
        iy = math.floor((box[1] - ORIGIN[1]) / CELL[1])
        if not (0 <= ix < w and 0 <= iy < h):
            continue
        r = float(
            gaussian_radius(
                torch.tensor(box[3] / CELL[0], dtype=torch.float64),
                torch.tensor(box[4] / CELL[1], dtype=torch.float64),
                config.gaussian_overlap,
            )
        )
        r = max(int(math.floor(r)), config.min_radius)
        sigma = (2 * r + 1) / 6.0
        gauss = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma * sigma))
        gauss[(np.abs(xs - ix) > r) | (np.abs(ys - iy) > r)] = 0.0
        c = channels.index(label)
        heat[c] = np.maximum(heat[c], gauss)
    return heat


def _random_boxes(g, n, velocity=False):
    x = torch.rand(n, generator=g, dtype=torch.float64) * 15.0 - 7.8
    y = torch.rand(n, generator=g, dtype=torch.float64) * 12.4 - 6.2
    z = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    dims = torch.rand(n, 3, generator=g, dtype=torch.float64) * 4 + 0.3
    yaw = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    cols = [x[:, None], y[:, None], z[:, None], dims, yaw[:, None]]
    if velocity:
        cols.append(torch.randn(n, 2, generator=g, dtype=torch.float64))
    return torch.cat(cols, dim=1).float()


def test_task_targets_match_a_direct_construction():
    g = torch.Generator().manual_seed(7)
    config = CenterTargetConfig()
    tasks = [(2,), (0, 3), (1,)]
    boxes = [_random_boxes(g, 12, velocity=True), _random_boxes(g, 7, velocity=True)]
    # one box outside the map on each side: skipped everywhere
    boxes[0][0, 0] = ORIGIN[0] - 0.01
    boxes[1][0, 1] = ORIGIN[1] + SHAPE[0] * CELL[1] + 0.01
    labels = [torch.randint(0, 4, (12,), generator=g), torch.randint(0, 4, (7,), generator=g)]
    targets = build_task_targets(boxes, labels, tasks, SHAPE, ORIGIN, CELL, config, code_size=10)
    assert len(targets) == 3
    for t, ids in enumerate(tasks):
        tt = targets[t]
        assert tt.heatmap.shape == (2, len(ids)) + SHAPE
        assert tt.indices.shape == (2, 500) and tt.mask.shape == (2, 500) and tt.boxes.shape == (2, 500, 10)
        for b in range(2):
            np.testing.assert_allclose(
                tt.heatmap[b].numpy(), _heat_reference(boxes[b], labels[b], list(ids), config), rtol=1e-6, atol=1e-7
            )
            slot = 0
            for j, (box, label) in enumerate(zip(boxes[b].double().tolist(), labels[b].tolist())):
                if label not in ids or (b, j) in ((0, 0), (1, 0)):
                    continue
                gx, gy = (box[0] - ORIGIN[0]) / CELL[0], (box[1] - ORIGIN[1]) / CELL[1]
                ix, iy = math.floor(gx), math.floor(gy)
                assert int(tt.indices[b, slot]) == iy * SHAPE[1] + ix
                assert float(tt.heatmap[b, ids.index(label), iy, ix]) == 1.0
                want = [
                    gx - ix,
                    gy - iy,
                    box[2],
                    math.log(box[3]),
                    math.log(box[4]),
                    math.log(box[5]),
                    math.sin(box[6]),
                    math.cos(box[6]),
                    box[7],
                    box[8],
                ]
                np.testing.assert_allclose(tt.boxes[b, slot].numpy(), want, rtol=1e-5, atol=1e-5)
                slot += 1
            assert int(tt.mask[b].sum()) == slot
            assert not bool(tt.mask[b, slot:].any()) and bool((tt.boxes[b, slot:] == 0).all())


def test_empty_frame_and_max_objects():
    g = torch.Generator().manual_seed(8)
    boxes = [torch.zeros(0, 7), _random_boxes(g, 9)]
    labels = [torch.zeros(0, dtype=torch.int64), torch.zeros(9, dtype=torch.int64)]
    config = CenterTargetConfig(max_objects=4)
    (tt,) = build_task_targets(boxes, labels, [(0,)], SHAPE, ORIGIN, CELL, config, code_size=8)
    assert float(tt.heatmap[0].abs().sum()) == 0.0 and not bool(tt.mask[0].any())
    assert tt.boxes.shape == (2, 4, 8)
    assert int(tt.mask[1].sum()) == 4
    # only the first four boxes are drawn
    np.testing.assert_allclose(
        tt.heatmap[1].numpy(), _heat_reference(boxes[1][:4], labels[1][:4], [0], config), rtol=1e-6, atol=1e-7
    )


def test_gather_bev_reads_cells():
    g = torch.Generator().manual_seed(9)
    feat = torch.randn(2, 5, 6, 7, generator=g)
    idx = torch.randint(0, 42, (2, 11), generator=g)
    out = gather_bev(feat, idx)
    assert out.shape == (2, 11, 5)
    for b in range(2):
        for k in range(11):
            i = int(idx[b, k])
            torch.testing.assert_close(out[b, k], feat[b, :, i // 7, i % 7])


def test_target_config_validation():
    with pytest.raises(ValueError, match="gaussian_overlap"):
        CenterTargetConfig(gaussian_overlap=0.0)
    with pytest.raises(ValueError, match="min_radius"):
        CenterTargetConfig(min_radius=-1)
    with pytest.raises(ValueError, match="max_objects"):
        CenterTargetConfig(max_objects=0)
    with pytest.raises(ValueError, match="radius_rule"):
        CenterTargetConfig(radius_rule="exact")
