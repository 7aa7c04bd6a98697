"""The building blocks of a generated scene: surface primitives, their placement, surface sampling,
occlusion and the scanner's shading and noise."""

import numpy as np
import pytest

from largekernel3d.data.generator import FURNITURE_DENSITY, make_table
from largekernel3d.data.generator.primitives import Parts, rotz
from largekernel3d.data.generator.sampling import hidden_mask, sample_surfaces
from largekernel3d.data.generator.scanner import add_sensor_noise, shade_colors


def test_rect_normal_is_the_unit_cross_product_and_degenerate_rects_are_skipped():
    p = Parts()
    p.rect([0, 0, 0], [2.0, 0, 0], [0, 0, 3.0], 1, (0.5, 0.5, 0.5))
    np.testing.assert_allclose(p.rect_n[0], [0.0, -1.0, 0.0])
    p.rect([0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], 1, (0.5, 0.5, 0.5))  # parallel edges: no area
    assert len(p.rect_o) == 1


@pytest.mark.parametrize("lo_z, skip, faces", [(0.0, (), 5), (0.5, (), 6), (0.5, ("+x", "-y"), 4)])
def test_box_faces_point_outwards(lo_z, skip, faces):
    p = Parts()
    lo, hi = np.array([1.0, 2.0, lo_z]), np.array([1.5, 2.8, lo_z + 0.4])
    pid = p.box(lo, hi, 3, (0.2, 0.3, 0.4), skip=skip)
    assert pid == 1 and len(p.rect_o) == faces and len(p.solids) == 1
    centre = (lo + hi) / 2
    for o, e1, e2, n in zip(p.rect_o, p.rect_e1, p.rect_e2, p.rect_n):
        face_centre = o + (e1 + e2) / 2
        assert (face_centre - centre) @ n > 0  # outward
        assert np.all(face_centre >= lo - 1e-12) and np.all(face_centre <= hi + 1e-12)


def test_rotz_quarter_turn_and_extend_moves_and_relabels_parts():
    np.testing.assert_array_equal(rotz(np.pi / 2) @ np.array([1.0, 0, 0]), [0.0, 1.0, 0.0])
    local = Parts()
    local.box([-0.5, -0.25, 0.0], [0.5, 0.25, 1.0], 2, (0.1, 0.1, 0.1))
    scene = Parts()
    scene.box([0, 0, 0], [1, 1, 1], 1, (0.1, 0.1, 0.1))
    scene.extend(local, 1, (3.0, 4.0, 0.0), density_scale=2.0)
    assert scene.solids[1][3] == 2  # a fresh part id in the scene
    np.testing.assert_allclose(scene.solids[1][0], [3.0, 4.0, 0.5])
    np.testing.assert_allclose(np.abs(scene.solids[1][1]) @ scene.solids[1][2], [0.25, 0.5, 0.5])
    assert [a[2] for a in scene.rect_attr[5:]] == [2.0] * 5


def test_sampling_is_proportional_to_area_times_density():
    p = Parts()
    p.rect([0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], 7, (1, 0, 0))  # 1 m^2
    p.rect([0, 0, 2], [3.0, 0, 0], [0, 1.0, 0], 8, (0, 1, 0), density=2.0)  # 3 m^2, twice as dense
    pts, nrm, lab, col, pid, carv = sample_surfaces(p, 70000, np.random.default_rng(0))
    assert pts.shape == (70000, 3) and nrm.shape == (70000, 3) and not carv.any()
    assert abs(np.mean(lab == 7) - 1 / 7) < 0.01
    np.testing.assert_array_equal(pts[lab == 7, 2], 0.0)
    np.testing.assert_array_equal(pts[lab == 8, 2], 2.0)
    assert pts[lab == 8, 0].min() >= 0.0 and pts[lab == 8, 0].max() <= 3.0
    np.testing.assert_array_equal(col[lab == 8], np.tile([0.0, 1.0, 0.0], ((lab == 8).sum(), 1)))


def test_hidden_mask_hides_points_inside_other_parts_only():
    p = Parts()
    pid = p.box([0, 0, 0], [1, 1, 1], 1, (0.5, 0.5, 0.5))
    points = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [2.0, 0.5, 0.5], [1.01, 0.5, 0.5]])
    pids = np.array([pid + 1, pid, pid + 1, pid + 1])
    np.testing.assert_array_equal(hidden_mask(points, pids, p.solids), [True, False, False, True])
    np.testing.assert_array_equal(hidden_mask(points, pids, p.solids, margin=0.0), [True, False, False, False])


def test_furniture_is_placed_denser_than_walls():
    assert FURNITURE_DENSITY > 1.0
    table = make_table(np.random.default_rng(0), w=1.2, d=0.8, h=0.75)
    assert (table.w, table.d, table.h) == (1.2, 0.8, 0.75)
    top = max(o[2] + e1[2] + e2[2] for o, e1, e2 in zip(table.parts.rect_o, table.parts.rect_e1, table.parts.rect_e2))
    assert top == pytest.approx(0.75)


def test_shading_stays_in_range_and_noise_is_mostly_along_the_normal():
    rng = np.random.default_rng(1)
    n = 20000
    pts = rng.uniform(0, 5, (n, 3))
    nrm = np.tile([0.0, 0.0, 1.0], (n, 1))
    col = rng.uniform(0, 1, (n, 3))
    colors = shade_colors(pts, nrm, col, rng)
    assert colors.shape == (n, 3) and colors.min() >= 0.0 and colors.max() <= 1.0
    assert 0.5 < np.corrcoef(colors[:, 0], col[:, 0])[0, 1] < 1.0  # shaded and noisy, still the material
    moved = add_sensor_noise(pts, nrm, rng) - pts
    sd = moved.std(axis=0)
    assert 0.003 * 0.9 < sd[2] < 0.009 * 1.1 * np.sqrt(1 + 0.4**2)
    np.testing.assert_allclose(sd[0] / sd[2], 0.4 / np.sqrt(1 + 0.4**2), rtol=0.05)
