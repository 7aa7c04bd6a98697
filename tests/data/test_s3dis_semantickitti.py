"""S3DIS and SemanticKITTI readers on synthetic files in every layout, bad input, and the real samples."""

import numpy as np
import pytest
import yaml

from largekernel3d.data import (
    IGNORE_INDEX,
    S3DIS_CLASSES,
    SEMANTICKITTI_CLASSES,
    SEMANTICKITTI_LEARNING_MAP,
    S3DISDataset,
    SemanticKITTIDataset,
)


def write_original_room(root, area, room, rng):
    ann = root / f"Area_{area}" / room / "Annotations"
    ann.mkdir(parents=True)
    pts, labels = [], []
    for cls, k in (("wall", 1), ("chair", 2), ("stairs", 1), ("ceiling", 1)):
        arr = np.concatenate([np.round(rng.uniform(0, 5, (20, 3)), 3), rng.integers(0, 256, (20, 3))], axis=1)
        text = "\n".join(" ".join(f"{v:.3f}" if j < 3 else str(int(v)) for j, v in enumerate(row)) for row in arr)
        if cls == "ceiling":
            text = text.replace("\n", "\x10\n", 1)  # a stray byte, as in one official file
        (ann / f"{cls}_{k}.txt").write_text(text + "\n")
        pts.append(arr)
        labels.append(np.full(20, S3DIS_CLASSES.index("clutter" if cls == "stairs" else cls)))
    # Annotations are read in file-name order
    order = np.argsort([f"{c}_{k}.txt" for c, k in (("wall", 1), ("chair", 2), ("stairs", 1), ("ceiling", 1))])
    return np.concatenate([pts[i] for i in order]), np.concatenate([labels[i] for i in order])


def test_s3dis_layouts(tmp_path):
    rng = np.random.default_rng(0)
    data, labels = write_original_room(tmp_path / "orig", 1, "office_1", rng)
    write_original_room(tmp_path / "orig", 5, "hallway_2", rng)
    ds = S3DISDataset(tmp_path / "orig")
    assert ds.layout == "original" and ds.scene_names == ["Area_1_office_1", "Area_5_hallway_2"]
    s = ds[0]
    np.testing.assert_allclose(s.points, data[:, :3], atol=1e-5)
    np.testing.assert_allclose(s.colors, data[:, 3:] / 255, atol=1e-6)
    np.testing.assert_array_equal(s.labels, labels)
    assert S3DISDataset(tmp_path / "orig", areas=[5]).scene_names == ["Area_5_hallway_2"]
    with pytest.raises(ValueError, match="areas"):
        S3DISDataset(tmp_path / "orig", areas=[3])

    f = tmp_path / "folder" / "Area_2" / "conf_1"
    f.mkdir(parents=True)
    np.save(f / "coord.npy", data[:, :3].astype(np.float32))
    np.save(f / "color.npy", data[:, 3:].astype(np.uint8))
    np.save(f / "segment.npy", labels.reshape(-1, 1).astype(np.int16))
    s2 = S3DISDataset(tmp_path / "folder")[0]
    assert s2.name == "Area_2_conf_1"
    np.testing.assert_array_equal(s2.labels, labels)

    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "Area_3_lobby_1.npy", np.concatenate([data, labels[:, None]], 1))
    s3 = S3DISDataset(tmp_path / "npy")[0]
    np.testing.assert_array_equal(s3.labels, labels)
    np.testing.assert_allclose(s3.colors, data[:, 3:] / 255, atol=1e-6)


def test_s3dis_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        S3DISDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no S3DIS rooms.*Annotations"):
        S3DISDataset(tmp_path)
    ann = tmp_path / "Area_1" / "r" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "table_1.txt").write_text("1 2 3 4 5\n")
    with pytest.raises(ValueError, match="table_1.txt.*6 numbers"):
        S3DISDataset(tmp_path)[0]
    (ann / "table_1.txt").write_text("1 2 3 4 5 6\n")
    (ann / "spaceship_1.txt").write_text("1 2 3 4 5 6\n")
    with pytest.raises(ValueError, match="unknown S3DIS class 'spaceship'"):
        S3DISDataset(tmp_path)[0]
    (tmp_path / "n").mkdir()
    np.save(tmp_path / "n" / "Area_1_x.npy", np.concatenate([np.zeros((3, 6)), [[13], [0], [1]]], 1))
    with pytest.raises(ValueError, match="< 13"):
        S3DISDataset(tmp_path / "n")[0]


def test_s3dis_sample(shared_data):
    ds = S3DISDataset(shared_data / "s3dis" / "mmdet3d_tiny")
    s = ds[0]
    assert ds.layout == "mmdet3d" and s.name == "Area_1_office_2" and s.points.shape == (100, 3)
    assert ds.num_classes == 13
    counts = np.bincount(s.labels, minlength=13)
    # README: 12 of 13 classes present, wall 39, ceiling 19, floor 14
    assert (counts > 0).sum() == 12
    assert (
        counts[S3DIS_CLASSES.index("wall")],
        counts[S3DIS_CLASSES.index("ceiling")],
        counts[S3DIS_CLASSES.index("floor")],
    ) == (39, 19, 14)


def write_kitti(root, seq, frame, n, raw, rng):
    d = root / "sequences" / seq
    (d / "velodyne").mkdir(parents=True, exist_ok=True)
    (d / "labels").mkdir(exist_ok=True)
    scan = rng.normal(size=(n, 4)).astype(np.float32)
    scan.tofile(d / "velodyne" / f"{frame}.bin")
    inst = rng.integers(0, 50, n).astype(np.uint32)
    ((inst << 16) | raw.astype(np.uint32)).tofile(d / "labels" / f"{frame}.label")
    return scan


def test_semantickitti_reader(tmp_path):
    rng = np.random.default_rng(0)
    raw = np.array(list(SEMANTICKITTI_LEARNING_MAP) * 3)
    scan = write_kitti(tmp_path, "00", "000000", len(raw), raw, rng)
    write_kitti(tmp_path, "08", "000000", 10, np.full(10, 40), rng)
    ds = SemanticKITTIDataset(tmp_path, sequences=[0])
    assert ds.scene_names == ["00_000000"] and ds.num_classes == 19
    s = ds[0]
    np.testing.assert_array_equal(s.points, scan[:, :3])
    assert not s.colors.any()
    np.testing.assert_allclose(ds.remission(0), scan[:, 3])
    want = np.array([SEMANTICKITTI_LEARNING_MAP[r] - 1 if SEMANTICKITTI_LEARNING_MAP[r] else IGNORE_INDEX for r in raw])
    np.testing.assert_array_equal(s.labels, want)
    assert len(SemanticKITTIDataset(tmp_path)) == 2
    assert SemanticKITTIDataset(tmp_path, sequences=["08"])[0].labels.tolist() == [8] * 10  # road
    with pytest.raises(ValueError, match=r"sequences \['05'\] not found"):
        SemanticKITTIDataset(tmp_path, sequences=[5])
    # an unknown raw id and a size mismatch
    write_kitti(tmp_path, "09", "000000", 3, np.array([10, 40, 123]), rng)
    with pytest.raises(ValueError, match=r"raw semantic ids \[123\]"):
        SemanticKITTIDataset(tmp_path, sequences=["09"])[0]
    np.zeros(5, np.uint32).tofile(tmp_path / "sequences" / "09" / "labels" / "000000.label")
    with pytest.raises(ValueError, match="5 labels.*3 points"):
        SemanticKITTIDataset(tmp_path, sequences=["09"])[0]
    (tmp_path / "sequences" / "09" / "velodyne" / "000000.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="not a multiple of 16"):
        SemanticKITTIDataset(tmp_path, sequences=["09"])[0]
    with pytest.raises(ValueError, match="sequences/<seq>/velodyne"):
        SemanticKITTIDataset(tmp_path / "sequences" / "09" / "labels")


def test_semantickitti_builtin_map_equals_official_yaml(shared_data):
    path = shared_data / "semantickitti" / "semantic-kitti.yaml"
    with open(path) as fh:
        official = {int(k): int(v) for k, v in yaml.safe_load(fh)["learning_map"].items()}
    assert official == SEMANTICKITTI_LEARNING_MAP
    with open(path) as fh:
        names = yaml.safe_load(fh)["labels"]
    inv = {int(k): int(v) for k, v in yaml.safe_load(open(path))["learning_map_inv"].items()}
    assert tuple(names[inv[k]] for k in range(1, 20)) == SEMANTICKITTI_CLASSES


def test_semantickitti_samples(shared_data):
    base = shared_data / "semantickitti"
    ds = SemanticKITTIDataset(base / "spvnas_sample", config_yaml=base / "semantic-kitti.yaml")
    s = ds[0]
    assert s.points.shape == (123389, 3)
    counts = np.bincount(s.labels[s.labels >= 0], minlength=19)
    # README: raw sidewalk 30092, terrain 30925, vegetation 24514, road 20975; 13 of 19 classes present
    assert counts[SEMANTICKITTI_CLASSES.index("sidewalk")] == 30092
    assert counts[SEMANTICKITTI_CLASSES.index("terrain")] == 30925
    assert counts[SEMANTICKITTI_CLASSES.index("vegetation")] == 24514
    assert (counts > 0).sum() == 13
    tiny = SemanticKITTIDataset(base / "mmdet3d_tiny", sequences=["00"])
    t = tiny[0]
    # README: building 25, vegetation 17, trunk 3, pole 2, unlabeled 2, other-structure 1 (-> ignore)
    assert int((t.labels == IGNORE_INDEX).sum()) == 3
    assert int((t.labels == SEMANTICKITTI_CLASSES.index("building")).sum()) == 25
