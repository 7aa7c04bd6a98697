"""Point-cloud file readers on small files each test writes with an independent writer (plyfile, a
hand-written PCD writer with its own LZF compressor, laspy, numpy), their options, and corrupt inputs."""

import struct

import numpy as np
import pytest

from largekernel3d.data.pointcloud_files import (
    PointCloudFileError,
    detect_format,
    expand_inputs,
    lzf_decompress,
    read_point_cloud,
)


@pytest.fixture
def cloud():
    """200 random points with 8-bit colours and an intensity (seeded)."""
    rng = np.random.default_rng(7)
    xyz = rng.uniform(-20, 20, (200, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (200, 3)).astype(np.uint8)
    inten = rng.uniform(0, 1, 200).astype(np.float32)
    return xyz, rgb, inten


# ----------------------------------------------------------------------------------------------- PLY
@pytest.mark.parametrize("text", [False, True])
def test_ply_binary_and_ascii(tmp_path, cloud, text):
    from plyfile import PlyData, PlyElement

    xyz, rgb, inten = cloud
    v = np.empty(
        len(xyz),
        dtype=[
            ("x", "f4"),
            ("y", "f4"),
            ("z", "f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
            ("intensity", "f4"),
            ("label", "i4"),
        ],
    )
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    v["intensity"], v["label"] = inten, np.arange(len(xyz))
    path = tmp_path / "c.ply"
    PlyData([PlyElement.describe(v, "vertex")], text=text, byte_order=">").write(str(path))
    c = read_point_cloud(path)
    assert c.format == "ply" and c.num_points == 200
    np.testing.assert_allclose(c.points, xyz.astype(np.float64), rtol=0, atol=1e-5 if text else 0)
    np.testing.assert_allclose(c.colors, rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(c.intensity, inten, atol=1e-5)
    np.testing.assert_array_equal(c.extra["label"], np.arange(200))
    assert any("ascii" in n if text else "big-endian" in n for n in c.notes)
    named = read_point_cloud(path, columns="x y z i")  # a PLY names its fields: the option does not apply
    np.testing.assert_array_equal(named.points, c.points)
    assert "columns= (--columns) ignored: ply files name their own fields" in named.notes


def test_ply_truncated_and_not_ply(tmp_path, cloud):
    from plyfile import PlyData, PlyElement

    xyz = cloud[0]
    v = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    v["x"], v["y"], v["z"] = xyz.T
    path = tmp_path / "t.ply"
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(PointCloudFileError, match="t.ply.*(truncated|corrupt)"):
        read_point_cloud(path)
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(PointCloudFileError, match="bad.ply.*not a PLY"):
        read_point_cloud(bad)


# ----------------------------------------------------------------------------------------------- PCD
def lzf_compress(data: bytes) -> bytes:
    """A greedy LZF compressor (3-byte hash of the last position), written for the tests: literal runs of
    up to 32 bytes, back references of 3..264 bytes up to 8192 bytes back."""
    out, lit, table, i, n = bytearray(), bytearray(), {}, 0, len(data)

    def flush():
        for s in range(0, len(lit), 32):
            chunk = lit[s : s + 32]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        lit.clear()

    while i < n:
        ref = table.get(data[i : i + 3]) if i + 3 <= n else None
        if i + 3 <= n:
            table[data[i : i + 3]] = i
        if ref is not None and 0 < i - ref <= 8192:
            length = 0
            while i + length < n and length < 264 and data[ref + length] == data[i + length]:
                length += 1
            if length >= 3:
                flush()
                off, ln = i - ref - 1, length - 2
                if ln < 7:
                    out.append((ln << 5) | (off >> 8))
                else:
                    out.append((7 << 5) | (off >> 8))
                    out.append(ln - 7)
                out.append(off & 255)
                i += length
                continue
        lit.append(data[i])
        i += 1
    flush()
    return bytes(out)


def write_pcd(path, fields, sizes, types, columns, kind):
    """A PCD writer: ``columns`` a list of [N] arrays with the given numpy types."""
    n = len(columns[0])
    head = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS "
        + " ".join(fields)
        + "\nSIZE "
        + " ".join(map(str, sizes))
        + "\nTYPE "
        + " ".join(types)
        + "\nCOUNT "
        + " ".join("1" for _ in fields)
        + f"\nWIDTH {n}\nHEIGHT 1\n"
        f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {kind}\n"
    ).encode()
    dts = [np.dtype(f"<{t.lower() if t != 'F' else 'f'}{s}") for t, s in zip(types, sizes)]
    if kind == "ascii":
        body = "".join(
            " ".join(repr(float(c[i])) if dt.kind == "f" else str(int(c[i])) for c, dt in zip(columns, dts)) + "\n"
            for i in range(n)
        ).encode()
    elif kind == "binary":
        rec = np.empty(n, dtype=[(f, dt) for f, dt in zip(fields, dts)])
        for f, c in zip(fields, columns):
            rec[f] = c
        body = rec.tobytes()
    else:
        raw = b"".join(np.asarray(c, dtype=dt).tobytes() for c, dt in zip(columns, dts))
        packed = lzf_compress(raw)
        assert lzf_decompress(packed, len(raw)) == raw
        body = struct.pack("<II", len(packed), len(raw)) + packed
    path.write_bytes(head + body)
    return path


def test_lzf_round_trip_with_back_references():
    rng = np.random.default_rng(3)
    data = bytes(rng.integers(0, 4, 3000).astype(np.uint8)) + b"abc" * 400 + bytes(range(256)) * 3
    packed = lzf_compress(data)
    assert len(packed) < len(data) // 2
    assert lzf_decompress(packed, len(data)) == data
    with pytest.raises(ValueError, match="truncated"):
        lzf_decompress(packed[:-5], len(data))


@pytest.mark.parametrize("kind", ["ascii", "binary", "binary_compressed"])
def test_pcd_three_encodings_with_packed_rgb(tmp_path, cloud, kind):
    xyz, rgb, inten = cloud
    packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    rgb_float = packed.view(np.float32)
    ring = np.arange(200, dtype=np.uint16) % 32
    path = write_pcd(
        tmp_path / f"{kind}.pcd",
        ["x", "y", "z", "rgb", "intensity", "ring"],
        [4, 4, 4, 4, 4, 2],
        ["F", "F", "F", "U" if kind == "ascii" else "F", "F", "U"],
        [xyz[:, 0], xyz[:, 1], xyz[:, 2], packed if kind == "ascii" else rgb_float, inten, ring],
        kind,
    )
    c = read_point_cloud(path)
    np.testing.assert_allclose(c.points, xyz, atol=1e-6)
    np.testing.assert_allclose(c.colors, rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(c.intensity, inten, atol=1e-6)
    np.testing.assert_array_equal(c.extra["ring"], ring)


def test_pcd_nan_rows_are_dropped_and_counted(tmp_path, cloud):
    xyz = cloud[0].copy()
    xyz[[3, 50], 1] = np.nan
    path = write_pcd(tmp_path / "nan.pcd", ["x", "y", "z"], [4, 4, 4], ["F", "F", "F"], list(xyz.T), "binary")
    c = read_point_cloud(path)
    assert c.num_points == 198 and any("dropped 2 rows" in n for n in c.notes)


@pytest.mark.parametrize("kind", ["binary", "binary_compressed", "ascii"])
def test_pcd_truncated(tmp_path, cloud, kind):
    xyz = cloud[0]
    path = write_pcd(tmp_path / "t.pcd", ["x", "y", "z"], [4, 4, 4], ["F", "F", "F"], list(xyz.T), kind)
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(PointCloudFileError, match="t.pcd.*truncated"):
        read_point_cloud(path)


def test_pcd_corrupt_compressed_stream_and_bad_header(tmp_path, cloud):
    xyz = cloud[0]
    path = write_pcd(tmp_path / "c.pcd", ["x", "y", "z"], [4, 4, 4], ["F", "F", "F"], list(xyz.T), "binary_compressed")
    raw = bytearray(path.read_bytes())
    start = raw.index(b"binary_compressed\n") + len(b"binary_compressed\n") + 8
    raw[start] = 0xFF  # a back reference before the start of the output
    raw[start + 1] = 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(PointCloudFileError, match="c.pcd.*corrupt"):
        read_point_cloud(path)
    bad = tmp_path / "h.pcd"
    bad.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA binary\n")
    with pytest.raises(PointCloudFileError, match="h.pcd.*disagree"):
        read_point_cloud(bad)


# ----------------------------------------------------------------------------------------------- LAS / LAZ
@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_written_by_laspy(tmp_path, cloud, suffix):
    laspy = pytest.importorskip("laspy")
    if suffix == ".laz" and not laspy.LazBackend.detect_available():
        pytest.skip("no LAZ backend (pip install lazrs)")
    xyz, rgb, inten = cloud
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = [0.001, 0.001, 0.001]
    header.offsets = [500000.0, 4000000.0, 0.0]
    las = laspy.LasData(header)
    x64 = xyz.astype(np.float64)
    las.x, las.y, las.z = x64[:, 0] + 500000.0, x64[:, 1] + 4000000.0, x64[:, 2]
    las.red, las.green, las.blue = (rgb.astype(np.uint16) * 257).T  # true 16-bit colours
    las.intensity = (inten * 1000).astype(np.uint16)
    las.classification = (np.arange(200) % 3).astype(np.uint8)
    path = tmp_path / f"c{suffix}"
    las.write(str(path))
    c = read_point_cloud(path)
    np.testing.assert_allclose(c.points - [500000.0, 4000000.0, 0.0], xyz, atol=6e-4)  # 1 mm scale, float64 kept
    np.testing.assert_allclose(c.colors, rgb / 255.0, atol=1e-6)
    assert any("16-bit" in n for n in c.notes)
    np.testing.assert_array_equal(c.intensity, (inten * 1000).astype(np.uint16))
    np.testing.assert_array_equal(c.extra["classification"], np.arange(200) % 3)
    assert any("no WKT" in n for n in c.notes)
    feet = read_point_cloud(path, units="ft")
    np.testing.assert_allclose(feet.points, c.points * 0.3048)


def test_las_truncated_and_wrong_signature(tmp_path, cloud):
    laspy = pytest.importorskip("laspy")
    las = laspy.LasData(laspy.LasHeader(point_format=0, version="1.2"))
    las.x, las.y, las.z = cloud[0].T
    path = tmp_path / "t.las"
    las.write(str(path))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(PointCloudFileError, match="t.las"):
        read_point_cloud(path)
    bad = tmp_path / "b.las"
    bad.write_bytes(b"NOPE" + bytes(300))
    with pytest.raises(PointCloudFileError, match="b.las.*LASF"):
        read_point_cloud(bad)


# ----------------------------------------------------------------------------------------------- raw / numpy / text
def test_kitti_and_nuscenes_bin(tmp_path, cloud):
    xyz, _, inten = cloud
    np.c_[xyz, inten].astype("<f4").tofile(tmp_path / "000001.bin")
    ring = (np.arange(200) % 32).astype(np.float32)
    np.c_[xyz, inten * 255, ring].astype("<f4").tofile(tmp_path / "sweep.pcd.bin")
    k = read_point_cloud(tmp_path / "000001.bin")
    assert k.format == "kitti_bin"
    np.testing.assert_array_equal(k.points, xyz)
    np.testing.assert_array_equal(k.intensity, inten)
    nu = read_point_cloud(tmp_path / "sweep.pcd.bin")
    assert nu.format == "nuscenes_bin"
    np.testing.assert_array_equal(nu.extra["ring"], ring)
    (tmp_path / "cut.bin").write_bytes((tmp_path / "000001.bin").read_bytes()[:-6])
    with pytest.raises(PointCloudFileError, match="cut.bin.*not a whole number.*10 bytes left over"):
        read_point_cloud(tmp_path / "cut.bin")


def test_bin_of_another_width_is_an_error_naming_it(tmp_path, cloud):
    """A headerless .bin read with the default 4 columns: a 6-column x y z r g b file (mmdet3d's ScanNet / S3DIS
    points; 200 points = 300 rows of 4, so the size alone cannot tell) and a nuScenes file (whole-number intensity
    and ring) renamed .bin are errors naming their width; with columns= they read. 4-column files with whole-number
    intensities, or fractional ones with many zeros, are not flagged."""
    xyz, rgb, inten = cloud
    np.c_[xyz, rgb].astype("<f4").tofile(tmp_path / "scene.bin")
    with pytest.raises(
        PointCloudFileError, match="scene.bin.*4 float32 values per point.*6 values per point.*x y z r g b"
    ):
        read_point_cloud(tmp_path / "scene.bin")
    six = read_point_cloud(tmp_path / "scene.bin", columns="x y z r g b")
    np.testing.assert_array_equal(six.points, xyz)
    np.testing.assert_allclose(six.colors * 255, rgb, atol=1e-3)
    ring = (np.arange(200) % 32).astype(np.float32)
    np.c_[xyz, np.round(inten * 255), ring].astype("<f4").tofile(tmp_path / "sweep.bin")
    with pytest.raises(PointCloudFileError, match="sweep.bin.*5 values per point"):
        read_point_cloud(tmp_path / "sweep.bin")
    assert read_point_cloud(tmp_path / "sweep.bin", columns="x y z intensity ring").num_points == 200
    whole = np.round(inten * 255)
    np.c_[xyz, whole].astype("<f4").tofile(tmp_path / "int_intensity.bin")
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "int_intensity.bin").intensity, whole)
    zeros = np.where(np.arange(200) % 3 == 0, 0.0, inten).astype(np.float32)
    np.c_[xyz, zeros].astype("<f4").tofile(tmp_path / "zeros.bin")
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "zeros.bin").intensity, zeros)


def test_npy_npz_and_column_options(tmp_path, cloud):
    xyz, rgb, inten = cloud
    np.save(tmp_path / "a.npy", np.c_[xyz, rgb.astype(np.float32)])
    a = read_point_cloud(tmp_path / "a.npy")
    np.testing.assert_allclose(a.colors, rgb / 255.0, atol=1e-6)
    assert "clipped" not in a.describe()
    unit = read_point_cloud(tmp_path / "a.npy", colour_scale=1)  # 0-255 colours read as [0, 1] ones: said so
    assert float(unit.colors.max()) == 1.0
    assert f"{int(np.count_nonzero(rgb > 1)):,} colour values fall outside [0, 1]" in unit.describe()
    np.save(tmp_path / "b.npy", np.c_[inten, xyz[:, [2, 0, 1]]])
    b = read_point_cloud(tmp_path / "b.npy", columns="i z x y")
    np.testing.assert_array_equal(b.points, xyz)
    np.testing.assert_array_equal(b.intensity, inten)
    np.savez(tmp_path / "c.npz", coord=xyz, rgb=rgb, label=np.arange(200))
    c = read_point_cloud(tmp_path / "c.npz")
    np.testing.assert_array_equal(c.points, xyz)
    np.testing.assert_array_equal(c.extra["label"], np.arange(200))
    with pytest.raises(ValueError, match="must include x, y and z"):
        read_point_cloud(tmp_path / "b.npy", columns="i a b c")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(PointCloudFileError, match="bad.npy"):
        read_point_cloud(tmp_path / "bad.npy")


def test_text_with_header_units_and_axes(tmp_path, cloud):
    xyz, rgb, inten = cloud
    rows = "\n".join(f"{x},{y},{z},{r},{g},{b},{i}" for (x, y, z), (r, g, b), i in zip(xyz, rgb, inten))
    (tmp_path / "h.csv").write_text("X,Y,Z,Red,Green,Blue,Intensity\n" + rows + "\n")
    c = read_point_cloud(tmp_path / "h.csv")
    np.testing.assert_allclose(c.points, xyz, atol=1e-5)
    np.testing.assert_allclose(c.colors, rgb / 255.0, atol=1e-6)
    mm = read_point_cloud(tmp_path / "h.csv", units="mm", axes="x -z y")
    np.testing.assert_allclose(mm.points, np.c_[xyz[:, 0], -xyz[:, 2], xyz[:, 1]] * 1e-3, atol=1e-8)
    (tmp_path / "r.txt").write_text("1 2 3\n4 5 6\n7 8\n")
    with pytest.raises(PointCloudFileError, match="r.txt.*data line 3 has 2 values"):
        read_point_cloud(tmp_path / "r.txt")
    with pytest.raises(ValueError, match="axes"):
        read_point_cloud(tmp_path / "h.csv", axes="x x y")
    with pytest.raises(ValueError, match="units"):
        read_point_cloud(tmp_path / "h.csv", units="furlong")


def test_dispatch_expand_and_unknown(tmp_path, cloud):
    np.save(tmp_path / "a.npy", cloud[0])
    cloud[0].astype("<f4").tofile(tmp_path / "b.xyzbin")
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "c.npy", cloud[0])
    assert detect_format("x/y.pcd.bin") == "nuscenes_bin" and detect_format("Y.LAZ") == "las"
    assert expand_inputs([tmp_path]) == [tmp_path / "a.npy"]
    assert expand_inputs([tmp_path], recursive=True) == [tmp_path / "a.npy", tmp_path / "sub" / "c.npy"]
    assert expand_inputs([str(tmp_path / "*.npy"), tmp_path / "a.npy"]) == [tmp_path / "a.npy"]
    with pytest.raises(ValueError, match="unknown point-cloud extension"):
        read_point_cloud(tmp_path / "b.xyzbin")
    c = read_point_cloud(tmp_path / "b.xyzbin", format="kitti_bin", columns="x y z")
    assert c.num_points == 200
    with pytest.raises(FileNotFoundError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.ply")])
