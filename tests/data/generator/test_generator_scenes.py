"""The procedural indoor scenes: surface-sampled, labelled with context, and not solvable from colour
alone."""

import time

import numpy as np
import pytest

from largekernel3d.data import (
    IGNORE_INDEX,
    SCANNET20_CLASSES,
    GeneratedIndoorDataset,
    PointCloudScene,
    generate_indoor_scene,
    render_scene,
)

C = {n: i for i, n in enumerate(SCANNET20_CLASSES)}


@pytest.fixture(scope="module")
def scenes():
    ds = GeneratedIndoorDataset(24, seed=11, points_per_scene=6000)
    return [ds[i] for i in range(len(ds))]


def test_scene_contents(scenes):
    for s in scenes:
        assert isinstance(s, PointCloudScene) and s.num_points == 6000
        assert s.labels.dtype == np.int64 and s.points.dtype == np.float32
        assert set(np.unique(s.labels)) <= set(range(20)) | {IGNORE_INDEX}
        assert (s.labels == C["wall"]).any() and (s.labels == C["floor"]).any()
        assert 0.0 <= s.colors.min() and s.colors.max() <= 1.0
        # the floor is at z = 0 (up to sensor noise), nothing is below it, the room is 2.4-3.1 m high
        floor = s.points[s.labels == C["floor"]]
        assert np.abs(floor[:, 2]).max() < 0.05
        assert s.points[:, 2].min() > -0.06 and 2.3 < s.points[:, 2].max() < 3.2
    present = set().union(*(set(np.unique(s.labels)) for s in scenes)) - {IGNORE_INDEX}
    assert len(present) >= 17, sorted(SCANNET20_CLASSES[c] for c in set(range(20)) - present)
    # ceilings exist and are ignored, as in ScanNet-20
    tops = [s.labels[s.points[:, 2] > s.points[:, 2].max() - 0.02] for s in scenes]
    assert np.mean(np.concatenate(tops) == IGNORE_INDEX) > 0.5


def test_points_lie_on_surfaces():
    """Furniture neighbourhoods are flat (surfaces), not 3-D blobs: the smallest PCA eigenvalue share of
    10 cm neighbourhoods is far below that of the same points spread through a 10 cm thick volume."""
    s = generate_indoor_scene(3, 0, 20000)
    rng = np.random.default_rng(0)
    furniture = np.nonzero(~np.isin(s.labels, [C["wall"], C["floor"], IGNORE_INDEX]))[0]
    assert len(furniture) > 1000

    def flatness(pts):
        ratios = []
        for i in rng.choice(furniture, 300, replace=False):
            nb = pts[np.linalg.norm(pts - pts[i], axis=1) < 0.1]
            if len(nb) >= 10:
                ev = np.linalg.eigvalsh(np.cov(nb.T))
                ratios.append(ev[0] / ev.sum())
        return np.median(ratios)

    pts = s.points.astype(np.float64)
    volume = pts + rng.uniform(-0.05, 0.05, pts.shape)
    assert flatness(pts) < 0.5 * flatness(volume)


def test_furniture_context(scenes):
    """Wall furniture stands against a wall; chairs stand next to tables or desks."""
    near_wall = {"bed", "cabinet", "bookshelf", "counter", "refrigerator", "toilet", "bathtub", "desk"}
    chair_dist = []
    for s in scenes:
        walls = s.points[s.labels == C["wall"]]
        lo, hi = np.percentile(walls[:, :2], 1, axis=0), np.percentile(walls[:, :2], 99, axis=0)
        for name in near_wall:
            p = s.points[s.labels == C[name], :2]
            if len(p) >= 20:
                gap = np.minimum(p - lo, hi - p).min()
                assert gap < 0.15, (s.name, name, gap)
        chairs = s.points[s.labels == C["chair"], :2]
        support = s.points[np.isin(s.labels, [C["table"], C["desk"]]), :2]
        if len(chairs) and len(support):
            sub = chairs[:: max(1, len(chairs) // 200)]
            d = np.sqrt(((sub[:, None] - support[None, ::4]) ** 2).sum(-1)).min(1)
            chair_dist.append(d)
    d = np.concatenate(chair_dist)
    assert np.mean(d < 0.8) > 0.7


def test_colour_alone_does_not_solve_the_task(scenes):
    """A colour-histogram classifier fit on half the scenes scores a low mIoU on the other half."""

    def xy(ss):
        x = np.concatenate([s.colors[s.labels >= 0] for s in ss])
        y = np.concatenate([s.labels[s.labels >= 0] for s in ss])
        b = np.minimum((x * 12).astype(int), 11)
        return (b[:, 0] * 12 + b[:, 1]) * 12 + b[:, 2], y

    qa, ya = xy(scenes[:12])
    qb, yb = xy(scenes[12:])
    hist = np.zeros((12**3, 20))
    np.add.at(hist, (qa, ya), 1)
    pred = hist.argmax(1)[qb]
    ious = [((pred == c) & (yb == c)).sum() / ((pred == c) | (yb == c)).sum() for c in np.unique(yb)]
    assert np.mean(ious) < 0.2


@pytest.mark.perf
def test_generation_is_fast():
    generate_indoor_scene(0, 0, 40000)  # warm-up
    t0 = time.perf_counter()
    for i in range(3):
        generate_indoor_scene(1, i, 40000)
    assert (time.perf_counter() - t0) / 3 < 1.0


def test_render_writes_a_png(tmp_path, scenes):
    path = render_scene(scenes[0], tmp_path / "scene.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10000
