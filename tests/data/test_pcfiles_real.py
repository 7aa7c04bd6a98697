"""Point-cloud file readers on the real files of ``../shared/data`` against MANIFEST.json's load checks and
plain numpy / plyfile reads written from the data README."""

import json

import numpy as np
import pytest

from largekernel3d.data.pointcloud_files import PointCloudFileError, read_point_cloud, wkt_linear_unit

pytestmark = pytest.mark.shared_data


@pytest.fixture
def checks(shared_data):
    return json.loads((shared_data / "MANIFEST.json").read_text())["load_checks"]


def test_las_and_laz_match_the_manifest(shared_data, checks):
    pytest.importorskip("laspy")
    las = read_point_cloud(shared_data / "formats/las/simple.las")
    ref = checks["formats/las/simple.las"]
    assert las.num_points == ref["n_points_read"]
    np.testing.assert_allclose(las.points.min(axis=0), ref["xyz_min"], atol=1e-6)
    np.testing.assert_allclose(las.points.max(axis=0), ref["xyz_max"], atol=1e-6)
    hist = dict(zip(*np.unique(las.extra["classification"], return_counts=True)))
    assert {str(k): int(v) for k, v in hist.items()} == ref["classification_hist"]
    assert las.colors is not None and np.isclose(las.colors.max(axis=0) * 255, ref["rgb_max"]).all()
    import laspy

    if not laspy.LazBackend.detect_available():
        pytest.skip("no LAZ backend installed (pip install lazrs): LAZ checks skipped")
    laz = read_point_cloud(shared_data / "formats/las/simple.laz")
    np.testing.assert_array_equal(laz.points, las.points)  # README: identical point records
    np.testing.assert_array_equal(laz.intensity, las.intensity)


def test_autzen_laz_feet_to_metres(shared_data, checks):
    laspy = pytest.importorskip("laspy")
    if not laspy.LazBackend.detect_available():
        pytest.skip("no LAZ backend installed (pip install lazrs)")
    ref = checks["formats/las/autzen_trim.laz"]
    c = read_point_cloud(shared_data / "formats/las/autzen_trim.laz")
    assert c.num_points == ref["n_points_read"] == 110000
    assert ref["crs_wkt_linear_unit"].startswith("foot") and any("'foot'" in n for n in c.notes)
    np.testing.assert_allclose(c.points.min(axis=0), np.array(ref["xyz_min"]) * 0.3048, atol=1e-6)
    raw = read_point_cloud(shared_data / "formats/las/autzen_trim.laz", units="m")
    np.testing.assert_allclose(raw.points.max(axis=0), ref["xyz_max"], atol=1e-6)
    assert int((c.extra["classification"] == 2).sum()) == ref["classification_hist"]["2"]


def test_wkt_unit_parser():
    assert wkt_linear_unit('PROJCS["a",GEOGCS["b",UNIT["degree",0.0174]],UNIT["US survey foot",0.3048006]]') == (
        "US survey foot",
        0.3048006,
    )
    assert wkt_linear_unit('GEOGCS["b",UNIT["degree",0.0174]]') is None


@pytest.mark.parametrize("name", ["251370668.pcd", "251371071.pcd"])
def test_binary_pcd_matches_the_readme_recipe(shared_data, checks, name):
    path = shared_data / "formats/pcd" / name
    c = read_point_cloud(path)
    ref = checks[f"formats/pcd/{name}"]
    raw = path.read_bytes()
    start = raw.index(b"DATA binary\n") + len(b"DATA binary\n")
    pts = np.frombuffer(raw, dtype="<f4", offset=start).reshape(-1, 4)
    assert c.num_points == ref["points"] == len(pts)
    np.testing.assert_array_equal(c.points, pts[:, :3])
    np.testing.assert_array_equal(c.intensity, pts[:, 3])
    assert any(f"{ref['points_at_origin']:,} points lie exactly at (0, 0, 0)" in n for n in c.notes)


def test_kitti_and_nuscenes_bins(shared_data, checks):
    k = read_point_cloud(shared_data / "kitti/training/velodyne/000001.bin")
    ref = checks["kitti/training/000001"]
    assert k.num_points == ref["n_points"]
    np.testing.assert_allclose(k.points.min(axis=0), ref["xyz_extent"]["min"], atol=1e-6)
    assert np.isclose(k.intensity.max(), ref["intensity_range"][1])
    nu = read_point_cloud(
        shared_data / "nuscenes/mmdet3d_demo/n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin"
    )
    ref = checks["nuscenes/mmdet3d_demo"]
    assert nu.format == "nuscenes_bin" and nu.num_points == ref["n_points"]
    assert [nu.extra["ring"].min(), nu.extra["ring"].max()] == ref["ring_range"]
    np.testing.assert_allclose(nu.points.max(axis=0), ref["xyz_extent"]["max"], atol=1e-3)  # manifest: mm


def test_scannet_bin_with_columns_and_ply_meshes(shared_data, checks):
    with pytest.raises(PointCloudFileError, match="6 values per point"):  # 6 columns, not KITTI's 4
        read_point_cloud(shared_data / "scannet/mmdet3d_demo/scene0000_00.bin")
    s = read_point_cloud(shared_data / "scannet/mmdet3d_demo/scene0000_00.bin", columns="x y z r g b")
    ref = checks["scannet/mmdet3d_demo/scene0000_00.bin"]
    assert s.num_points == ref["n_points"] and s.colors is not None
    np.testing.assert_allclose(s.points.max(axis=0), ref["xyz_extent"]["max"], atol=1e-3)  # manifest: mm
    from plyfile import PlyData

    folder = shared_data / "scannet/official_v1/scene0000_00"
    mesh = read_point_cloud(folder / "scene0000_00_vh_clean_2.ply")
    labels = read_point_cloud(folder / "scene0000_00_vh_clean_2.labels.ply")
    v = PlyData.read(str(folder / "scene0000_00_vh_clean_2.ply"))["vertex"].data
    assert mesh.num_points == labels.num_points == 81369
    np.testing.assert_array_equal(mesh.points[:, 0], v["x"])
    np.testing.assert_allclose(mesh.colors, np.stack([v["red"], v["green"], v["blue"]], 1) / 255.0, atol=1e-6)
    assert int((labels.extra["label"] == 0).sum()) == 18717  # README: label 0 on 18,717 vertices
    # every point of the mmdet3d demo is a vertex of this mesh (README section 9)
    vertices = set(map(tuple, mesh.points.astype(np.float32)))
    assert all(tuple(p) in vertices for p in s.points.astype(np.float32))


def test_votenet_npy(shared_data, checks):
    c = read_point_cloud(shared_data / "scannet/votenet_50k/scene0000_00_vert.npy")
    arr = np.load(shared_data / "scannet/votenet_50k/scene0000_00_vert.npy")
    assert c.num_points == 50000
    np.testing.assert_array_equal(c.points, arr[:, :3])
    np.testing.assert_allclose(c.colors, arr[:, 3:] / 255.0, atol=1e-6)
