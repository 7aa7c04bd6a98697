"""ScanNet readers: every layout gives the same scene; NYU40 → ScanNet-20 mapping (the official labels.ply through
the label table: its ``label`` is the raw-category id); split by room; bad folders and files give errors naming the
path; the real VoteNet sample and the official v1 scan when present."""

import csv

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from largekernel3d.data import (
    IGNORE_INDEX,
    NYU40_TO_SCANNET20,
    SCANNET20_CLASSES,
    ScanNetDataset,
    nyu40_to_scannet20,
    room_id,
    split_scenes_by_room,
)

# The benchmark's valid NYU40 ids in class order (ScanNet's own evaluation script / data README).
VALID_NYU40 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]


def make_scene(n=200, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-2, 3, (n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    nyu = rng.integers(0, 41, n).astype(np.int64)
    return xyz, rgb, nyu


def expected_labels(nyu):
    out = np.full(len(nyu), IGNORE_INDEX)
    for k, v in enumerate(VALID_NYU40):
        out[nyu == v] = k
    return out


RAW_ID_SHIFT = 100  # the test label table's raw-category id of NYU40 id n (> 0) is n + 100: never n itself


def write_label_table(path, rows=None):
    """A ``scannetv2-labels.combined.tsv`` at ``path``: ``rows`` of ``(id, nyu40id)``, by default raw id ``n + 100``
    -> NYU40 ``n`` for n = 1..40 (and a plural row repeating an id, as ScanNet's table does)."""
    rows = rows if rows is not None else [(n + RAW_ID_SHIFT, n) for n in range(1, 41)] + [(101, 1)]
    lines = ["id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyu40class"]
    lines += [f"{i}\tcat{i}\tcat{i}\t1\t{n}\t0\tclass{n}" for i, n in rows]
    path.write_text("\n".join(lines) + "\n")


def write_official(root, name, xyz, rgb, nyu, labels=True, table=True):
    """An official scan folder ``root/scans/<name>`` whose labels.ply holds the raw-category ids of ``nyu`` (0 stays
    0, unannotated) and, with ``table``, the label table in ``root``."""
    d = root / "scans" / name
    d.mkdir(parents=True)
    v = np.zeros(
        len(xyz),
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")],
    )
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    v["alpha"] = 255
    PlyData([PlyElement.describe(v, "vertex")], text=False).write(str(d / f"{name}_vh_clean_2.ply"))
    if labels:
        lv = np.zeros(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("label", "u2")])
        lv["x"], lv["y"], lv["z"] = xyz.T
        lv["label"] = np.where(nyu > 0, nyu + RAW_ID_SHIFT, 0)
        PlyData([PlyElement.describe(lv, "vertex")]).write(str(d / f"{name}_vh_clean_2.labels.ply"))
    if table and not (root / "scannetv2-labels.combined.tsv").exists():
        write_label_table(root / "scannetv2-labels.combined.tsv")


def test_mapping_table():
    assert len(SCANNET20_CLASSES) == 20
    ids = np.arange(41)
    mapped = nyu40_to_scannet20(ids)
    np.testing.assert_array_equal(mapped, expected_labels(ids))
    assert NYU40_TO_SCANNET20[22] == IGNORE_INDEX  # ceiling
    assert NYU40_TO_SCANNET20[39] == SCANNET20_CLASSES.index("otherfurniture")
    with pytest.raises(ValueError, match="0..40"):
        nyu40_to_scannet20(np.array([1, 41]), "x.npy")
    with pytest.raises(ValueError, match="0..40"):
        nyu40_to_scannet20(np.array([-1]))


def test_mapping_matches_label_tsv(shared_data):
    """The class names of the mapped NYU40 ids in ScanNet's own tsv are our class names."""
    tsv = shared_data / "scannet" / "scannetv2-labels.combined.tsv"
    names = {}
    with open(tsv) as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            names[int(row["nyu40id"])] = row["nyu40class"]
    for k, nyu in enumerate(VALID_NYU40):
        assert names[nyu].replace(" ", "").replace("refridgerator", "refrigerator") == SCANNET20_CLASSES[k]


def test_all_layouts_give_the_same_scene(tmp_path):
    xyz, rgb, nyu = make_scene()
    want = expected_labels(nyu)
    # official
    write_official(tmp_path / "official", "scene0007_00", xyz, rgb, nyu)
    # folder (Pointcept): labels already 20-class, -1 = ignore
    d = tmp_path / "folder" / "train" / "scene0007_00"
    d.mkdir(parents=True)
    np.save(d / "coord.npy", xyz)
    np.save(d / "color.npy", rgb)
    np.save(d / "segment20.npy", np.where(want == IGNORE_INDEX, -1, want).astype(np.int16))
    # pth dict (Pointcept's older format) and pth tuple (SparseConvNet: colours in [-1, 1], -100 ignore)
    (tmp_path / "pth_dict").mkdir()
    torch.save(
        {"coord": xyz, "color": rgb.astype(np.float32), "semantic_gt20": np.where(want < 0, -1, want)},
        tmp_path / "pth_dict" / "scene0007_00.pth",
    )
    (tmp_path / "pth_tuple").mkdir()
    torch.save(
        (xyz, rgb.astype(np.float32) / 127.5 - 1.0, want.astype(np.float64)),
        tmp_path / "pth_tuple" / "scene0007_00_inst_nostuff.pth",
    )
    # VoteNet
    (tmp_path / "votenet").mkdir()
    np.save(tmp_path / "votenet" / "scene0007_00_vert.npy", np.concatenate([xyz, rgb.astype(np.float32)], 1))
    np.save(tmp_path / "votenet" / "scene0007_00_sem_label.npy", nyu.astype(np.uint32))
    # mmdet3d
    (tmp_path / "mm" / "points").mkdir(parents=True)
    (tmp_path / "mm" / "semantic_mask").mkdir()
    np.concatenate([xyz, rgb.astype(np.float32)], 1).tofile(tmp_path / "mm" / "points" / "scene0007_00.bin")
    nyu.tofile(tmp_path / "mm" / "semantic_mask" / "scene0007_00.bin")

    for folder, layout in (
        ("official", "official"),
        ("folder", "folder"),
        ("pth_dict", "pth"),
        ("pth_tuple", "pth"),
        ("votenet", "votenet"),
        ("mm", "mmdet3d"),
    ):
        ds = ScanNetDataset(tmp_path / folder)
        assert ds.layout == layout, folder
        assert ds.scene_names == ["scene0007_00"]
        s = ds[0]
        assert s.points.dtype == np.float32 and s.colors.dtype == np.float32 and s.labels.dtype == np.int64
        np.testing.assert_allclose(s.points, xyz, atol=1e-6, err_msg=folder)
        np.testing.assert_allclose(s.colors, rgb / 255.0, atol=1e-5, err_msg=folder)
        np.testing.assert_array_equal(s.labels, want, err_msg=folder)
        assert ds.num_classes == 20 and ds.class_names == SCANNET20_CLASSES


def test_unlabelled_official_scene_and_scene_selection(tmp_path):
    xyz, rgb, nyu = make_scene(50)
    write_official(tmp_path, "scene0100_00", xyz, rgb, nyu, labels=False)
    write_official(tmp_path, "scene0101_00", xyz, rgb, nyu)
    ds = ScanNetDataset(tmp_path, scenes=["scene0101_00", "scene0100_00"])
    assert ds.scene_names == ["scene0101_00", "scene0100_00"]
    assert ds[1].labels is None and ds[0].labels is not None
    with pytest.raises(ValueError, match="scene0999_00"):
        ScanNetDataset(tmp_path, scenes=["scene0999_00"])
    with pytest.raises(IndexError):
        ds[2]


def test_official_axis_alignment(tmp_path):
    xyz, rgb, nyu = make_scene(30)
    write_official(tmp_path, "scene0200_00", xyz, rgb, nyu)
    theta = 0.3
    m = np.eye(4)
    m[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    m[:3, 3] = [1.0, -2.0, 0.5]
    meta = tmp_path / "scans" / "scene0200_00" / "scene0200_00.txt"
    meta.write_text("colorHeight = 968\naxisAlignment = " + " ".join(f"{v:.9f}" for v in m.ravel()) + "\n")
    s = ScanNetDataset(tmp_path, axis_align=True)[0]
    np.testing.assert_allclose(s.points, xyz @ m[:3, :3].T + m[:3, 3], atol=1e-5)
    meta.write_text("axisAlignment = 1 2 3\n")
    with pytest.raises(ValueError, match="16 numbers"):
        ScanNetDataset(tmp_path, axis_align=True)[0]
    (tmp_path / "vn").mkdir()
    np.save(tmp_path / "vn" / "scene0000_00_vert.npy", np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="official layout only"):
        ScanNetDataset(tmp_path / "vn", axis_align=True)


def test_bad_folders_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        ScanNetDataset(tmp_path / "does_not_exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no ScanNet scenes found.*expected one of"):
        ScanNetDataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="layout must be one of"):
        ScanNetDataset(tmp_path / "empty", layout="nope")
    # wrong number of columns
    d = tmp_path / "bad" / "scene0000_00"
    d.mkdir(parents=True)
    np.save(d / "coord.npy", np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match=r"coord\.npy.*3 columns"):
        ScanNetDataset(tmp_path / "bad")[0]
    # labels out of range
    np.save(d / "coord.npy", np.zeros((10, 3), np.float32))
    np.save(d / "segment20.npy", np.full(10, 25))
    with pytest.raises(ValueError, match=r"segment20\.npy.*< 20"):
        ScanNetDataset(tmp_path / "bad")[0]
    # rows disagree
    np.save(d / "segment20.npy", np.zeros(9, np.int64))
    with pytest.raises(ValueError, match="9 labels for 10 points"):
        ScanNetDataset(tmp_path / "bad")[0]
    # a scene with no points
    np.save(d / "coord.npy", np.zeros((0, 3), np.float32))
    np.save(d / "segment20.npy", np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="has no points"):
        ScanNetDataset(tmp_path / "bad")[0]
    # NYU40 ids out of range in the VoteNet layout
    v = tmp_path / "vn"
    v.mkdir()
    np.save(v / "scene0000_00_vert.npy", np.zeros((4, 6), np.float32))
    np.save(v / "scene0000_00_sem_label.npy", np.array([1, 2, 3, 99], np.uint32))
    with pytest.raises(ValueError, match="sem_label.npy.*0..40"):
        ScanNetDataset(v)[0]
    # colours outside 0..255
    np.save(v / "scene0000_00_vert.npy", np.full((4, 6), 300.0, np.float32))
    np.save(v / "scene0000_00_sem_label.npy", np.array([1, 2, 3, 4], np.uint32))
    with pytest.raises(ValueError, match="colours must lie in"):
        ScanNetDataset(v)[0]
    # a corrupt PLY
    o = tmp_path / "off" / "scans" / "scene0000_00"
    o.mkdir(parents=True)
    (o / "scene0000_00_vh_clean_2.ply").write_bytes(b"not a ply")
    with pytest.raises(ValueError, match="not a readable PLY"):
        ScanNetDataset(tmp_path / "off")[0]
    # a pth that is neither dict nor tuple
    p = tmp_path / "pth"
    p.mkdir()
    torch.save(np.zeros(3), p / "scene0000_00.pth")
    with pytest.raises(ValueError, match="expected a dict or a"):
        ScanNetDataset(p)[0]


def test_split_by_room():
    names = [f"scene{r:04d}_{s:02d}" for r in range(7) for s in range(1 + r % 3)]
    train, val = split_scenes_by_room(names, val_fraction=0.3, seed=0)
    assert sorted(train + val) == sorted(names)
    assert train and val
    assert not {room_id(n) for n in train} & {room_id(n) for n in val}
    assert len(val) >= 0.3 * len(names)
    assert split_scenes_by_room(names, 0.3, seed=0) == (train, val)
    assert any(split_scenes_by_room(names, 0.3, seed=s) != (train, val) for s in range(1, 6))
    assert room_id("scene0000_02") == "scene0000"
    with pytest.raises(ValueError, match="two rooms"):
        split_scenes_by_room(["scene0000_00", "scene0000_01"])
    with pytest.raises(ValueError, match="val_fraction"):
        split_scenes_by_room(names, 1.5)


def test_votenet_sample(shared_data):
    root = shared_data / "scannet" / "votenet_50k"
    ds = ScanNetDataset(root)
    assert ds.layout == "votenet" and len(ds) == 15
    s = ds[ds.scene_names.index("scene0000_00")]
    assert s.points.shape == (50000, 3)
    assert 0.0 <= s.colors.min() and s.colors.max() <= 1.0
    # counts from the data README: wall 8475, floor 6312, cabinet 6020, curtain 3416, sofa 3110, table 2774
    counts = {SCANNET20_CLASSES[c]: int((s.labels == c).sum()) for c in range(20)}
    assert (counts["wall"], counts["floor"], counts["cabinet"], counts["curtain"], counts["sofa"], counts["table"]) == (
        8475,
        6312,
        6020,
        3416,
        3110,
        2774,
    )
    raw = np.load(root / "scene0000_00_sem_label.npy")
    assert int((s.labels == IGNORE_INDEX).sum()) == int(np.isin(raw, VALID_NYU40, invert=True).sum())
    train, val = split_scenes_by_room(ds.scene_names)
    assert not {room_id(n) for n in train} & {room_id(n) for n in val}


def test_mmdet3d_tiny_sample(shared_data):
    ds = ScanNetDataset(shared_data / "scannet" / "mmdet3d_tiny")
    s = ds[0]
    assert ds.layout == "mmdet3d" and s.points.shape == (100, 3)
    raw = np.fromfile(shared_data / "scannet" / "mmdet3d_tiny" / "semantic_mask" / "scene0000_00.bin", np.int64)
    np.testing.assert_array_equal(s.labels, expected_labels(raw))


def test_official_labels_go_through_the_label_table(tmp_path):
    """labels.ply holds raw-category ids: mapped through the table (found next to scans/, or given), never read as
    NYU40 ids; without a table, or with ids the table lacks, a clear error (or, asked for, those vertices ignored)."""
    xyz, rgb, nyu = make_scene(60, seed=3)
    nyu[:4] = [2, 2, 1, 0]  # floor, floor, wall, unannotated
    write_official(tmp_path / "a", "scene0300_00", xyz, rgb, nyu)
    s = ScanNetDataset(tmp_path / "a")[0]
    np.testing.assert_array_equal(s.labels, expected_labels(nyu))
    assert list(s.labels[:4]) == [1, 1, 0, IGNORE_INDEX]  # raw 102 -> NYU40 2 -> floor, 101 -> wall

    write_official(tmp_path / "b", "scene0301_00", xyz, rgb, nyu, table=False)
    with pytest.raises(FileNotFoundError, match="raw-category id.*scannetv2-labels.combined.tsv.*label_map"):
        ScanNetDataset(tmp_path / "b")[0]
    table = tmp_path / "elsewhere.tsv"
    write_label_table(table)
    np.testing.assert_array_equal(ScanNetDataset(tmp_path / "b", label_map=table)[0].labels, expected_labels(nyu))
    with pytest.raises(FileNotFoundError, match="label_map"):
        ScanNetDataset(tmp_path / "b", label_map=tmp_path / "missing.tsv")

    short = tmp_path / "short.tsv"
    write_label_table(short, [(n + RAW_ID_SHIFT, n) for n in range(2, 41)])  # no raw id 101 (wall)
    with pytest.raises(ValueError, match=r"raw-category ids \[101\]"):
        ScanNetDataset(tmp_path / "b", label_map=short)[0]
    ignored = ScanNetDataset(tmp_path / "b", label_map=short, unknown_labels="ignore")[0].labels
    want = expected_labels(nyu)
    want[nyu == 1] = IGNORE_INDEX
    np.testing.assert_array_equal(ignored, want)
    with pytest.raises(ValueError, match="unknown_labels"):
        ScanNetDataset(tmp_path / "b", unknown_labels="skip")


def test_label_table_errors_name_the_file(tmp_path):
    from largekernel3d.data.scannet import read_label_map

    bad = tmp_path / "bad.tsv"
    bad.write_text("raw_category\tnyu40class\nwall\twall\n")
    with pytest.raises(ValueError, match="bad.tsv.*'id' and 'nyu40id'"):
        read_label_map(bad)
    bad.write_text("id\tnyu40id\n3\tfloor\n")
    with pytest.raises(ValueError, match="bad.tsv.*line 2"):
        read_label_map(bad)
    bad.write_text("id\tnyu40id\n3\t41\n")
    with pytest.raises(ValueError, match="outside 0..40"):
        read_label_map(bad)
    table = tmp_path / "ok.tsv"
    write_label_table(table, [(3, 2), (5, 8), (5, 8), (7, 3), (7, 4)])  # repeated ids; the later row wins
    t = read_label_map(table)
    assert (t[0], t[3], t[5], t[7], t[4]) == (0, 2, 8, 4, -1)


def test_label_map_applies_to_the_official_layout_only(tmp_path):
    xyz, rgb, nyu = make_scene(20)
    v = tmp_path / "votenet"
    v.mkdir()
    np.save(v / "scene0000_00_vert.npy", np.concatenate([xyz, rgb], axis=1).astype(np.float32))
    np.save(v / "scene0000_00_sem_label.npy", nyu.astype(np.uint32))
    table = tmp_path / "t.tsv"
    write_label_table(table)
    with pytest.raises(ValueError, match="label_map applies to the official layout only"):
        ScanNetDataset(v, label_map=table)


def test_official_v1_scan(shared_data):
    """The real official files: labels.ply's raw ids mapped through ScanNet's v2 table give the README's per-class
    vertex counts; the v1 id 12 (trashcan) is not in the v2 table."""
    root = shared_data / "scannet" / "official_v1"
    with pytest.raises(ValueError, match=r"raw-category ids \[12\] \(600 vertices\)"):
        ScanNetDataset(root)[0]
    s = ScanNetDataset(root, unknown_labels="ignore")[0]
    assert s.points.shape == (81369, 3)
    counts = {SCANNET20_CLASSES[c]: int((s.labels == c).sum()) for c in range(20)}
    # data README, official_v1 label histogram: wall 13,310, floor 9,974, couch 4,732, bookshelf 5,971, curtain 6,438
    assert (counts["wall"], counts["floor"], counts["sofa"], counts["bookshelf"], counts["curtain"]) == (
        13310,
        9974,
        4732,
        5971,
        6438,
    )
    assert counts["bathtub"] == 0 and int((s.labels == IGNORE_INDEX).sum()) == 81369 - sum(counts.values())
