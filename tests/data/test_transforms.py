"""Augmentations: each does the documented math, is reproducible from its rng and leaves its input alone."""

import numpy as np
import pytest

from largekernel3d.data import (
    ColorJitter,
    Compose,
    ElasticDistortion,
    PointCloudScene,
    RandomFlip,
    RandomJitter,
    RandomRotateZ,
    RandomScale,
)


def scene(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform([0, 0, 0], [5, 4, 2.5], (n, 3)).astype(np.float32)
    return PointCloudScene("s", pts, rng.uniform(0, 1, (n, 3)), rng.integers(0, 20, n))


def pairwise(p):
    p = p.astype(np.float64)
    return np.linalg.norm(p[:, None] - p[None], axis=-1)


ALL = [RandomRotateZ(), RandomFlip(), RandomScale(), RandomJitter(), ColorJitter(), ElasticDistortion(p=1.0)]


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_reproducible_and_pure(t):
    s = scene()
    before = (s.points.copy(), s.colors.copy(), s.labels.copy())
    a = t(s, np.random.default_rng(7))
    b = t(s, np.random.default_rng(7))
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.colors, b.colors)
    np.testing.assert_array_equal(a.labels, s.labels)
    for x, y in zip(before, (s.points, s.colors, s.labels)):
        np.testing.assert_array_equal(x, y)
    assert a.points.dtype == np.float32 and a.colors.dtype == np.float32
    c = t(s, np.random.default_rng(8))
    assert not (np.array_equal(a.points, c.points) and np.array_equal(a.colors, c.colors))


def test_rotate_z_is_a_rigid_motion_about_z():
    s = scene(300)
    r = RandomRotateZ()(s, np.random.default_rng(1))
    np.testing.assert_allclose(pairwise(r.points), pairwise(s.points), atol=1e-4)
    np.testing.assert_allclose(r.points[:, 2], s.points[:, 2], atol=1e-6)
    theta = np.random.default_rng(1).uniform(-np.pi, np.pi)
    c = 0.5 * (s.points[:, :2].min(0) + s.points[:, :2].max(0))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    np.testing.assert_allclose(r.points[:, :2], (s.points[:, :2] - c) @ rot.T + c, atol=1e-4)


def test_flip_mirrors_about_the_centre():
    s = scene(300)
    f = RandomFlip(axes=(0, 1), p=1.0)(s, np.random.default_rng(0))
    lo, hi = s.points.min(0), s.points.max(0)
    np.testing.assert_allclose(f.points[:, :2], lo[:2] + hi[:2] - s.points[:, :2], atol=1e-5)
    np.testing.assert_array_equal(f.points[:, 2], s.points[:, 2])
    same = RandomFlip(p=0.0)(s, np.random.default_rng(0))
    np.testing.assert_array_equal(same.points, s.points)


def test_scale_and_jitter():
    s = scene(300)
    out = RandomScale(0.8, 1.2)(s, np.random.default_rng(3))
    factor = np.random.default_rng(3).uniform(0.8, 1.2, size=1)
    np.testing.assert_allclose(out.points, s.points * factor, rtol=1e-6)
    ani = RandomScale(0.5, 2.0, anisotropic=True)(s, np.random.default_rng(3))
    ratios = ani.points / s.points
    assert np.ptp(ratios.mean(0)) > 0.01
    j = RandomJitter(sigma=0.05, clip=0.02)(s, np.random.default_rng(0))
    d = j.points - s.points
    assert np.abs(d).max() <= 0.02 + 1e-6 and np.abs(d).mean() > 0.005


def test_color_jitter_formula_and_range():
    s = scene(500)
    out = ColorJitter(brightness=0.2, contrast=0.3, std=0.0)(s, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    alpha = rng.uniform(0.7, 1.3)
    beta = rng.uniform(-0.2, 0.2)
    mu = s.colors.astype(np.float64).mean(0)
    want = np.clip((s.colors - mu) * alpha + mu + beta, 0, 1)
    np.testing.assert_allclose(out.colors, want, atol=1e-6)
    noisy = ColorJitter(brightness=1.0, contrast=1.0, std=0.5)(s, np.random.default_rng(0))
    assert noisy.colors.min() >= 0.0 and noisy.colors.max() <= 1.0


def test_elastic_distortion_is_smooth_and_bounded():
    s = scene(4000)
    out = ElasticDistortion(params=[(0.2, 0.4)], p=1.0)(s, np.random.default_rng(0))
    disp = out.points - s.points
    assert 0.005 < np.abs(disp).mean() < 0.2
    # nearby points move alike: displacement differences grow with distance
    p = s.points.astype(np.float64)
    i = np.arange(0, 4000, 7)
    d = np.linalg.norm(p[i, None] - p[None, i], axis=-1)
    dd = np.linalg.norm(disp[i, None] - disp[None, i], axis=-1)
    near = dd[(d > 0) & (d < 0.05)].mean()
    far = dd[d > 1.0].mean()
    assert near < 0.3 * far
    assert ElasticDistortion(p=0.0)(s, np.random.default_rng(0)) is s


def test_compose_applies_in_order_and_checks():
    s = scene(100)
    flip = RandomFlip(axes=(0,), p=1.0)
    scale = RandomScale(2.0, 2.0)
    a = Compose([flip, scale])(s, np.random.default_rng(0))
    b = scale(flip(s, np.random.default_rng(0)), np.random.default_rng(0))
    np.testing.assert_allclose(a.points, b.points)
    with pytest.raises(TypeError, match="callables"):
        Compose([flip, 3])


def test_bad_parameters():
    with pytest.raises(ValueError):
        RandomScale(1.2, 0.8)
    with pytest.raises(ValueError):
        RandomFlip(p=2)
    with pytest.raises(ValueError):
        RandomFlip(axes=(3,))
    with pytest.raises(ValueError):
        RandomJitter(sigma=-1)
    with pytest.raises(ValueError):
        ElasticDistortion(params=[(0.0, 1.0)])
    with pytest.raises(ValueError):
        ColorJitter(std=-0.1)
