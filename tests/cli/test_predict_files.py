"""``lk3d predict seg|det --input PATH...``: one command from a checkpoint and files in several formats to
labelled points / boxes, pictures and the summary table; the split-based behaviour without ``--input``."""

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from plyfile import PlyData, PlyElement

from largekernel3d.analysis.segmentation_views import class_colors
from largekernel3d.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from det_tiny import TINY_DET  # noqa: E402


@pytest.fixture(scope="module")
def seg_ckpt(tmp_path_factory):
    from cli_tiny import TINY

    folder = tmp_path_factory.mktemp("pf_seg")
    cfg = folder / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(dict(TINY, output_dir=str(folder / "run"))))
    assert main(["train", "seg", "--config", str(cfg), "--set", "train.epochs=1"]) == 0
    return folder / "run" / "checkpoints" / "last.pt"


def test_predict_seg_on_ply_pcd_and_npy(seg_ckpt, tmp_path, capsys):
    rng = np.random.default_rng(5)
    xyz = rng.uniform(0, 6, (900, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (900, 3)).astype(np.uint8)
    v = np.empty(900, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    inputs = tmp_path / "in"
    inputs.mkdir()
    PlyData([PlyElement.describe(v, "vertex")]).write(str(inputs / "room.ply"))
    head = (
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 900\nHEIGHT 1\nPOINTS 900\nDATA binary\n"
    )
    (inputs / "scan.pcd").write_bytes(head.encode() + xyz.astype("<f4").tobytes())
    np.save(tmp_path / "cloud.npy", np.c_[xyz, rgb])
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "seg",
                "--checkpoint",
                str(seg_ckpt),
                "--device",
                "cpu",
                "--input",
                str(inputs),
                str(tmp_path / "*.npy"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| file | points | voxels |" in text and "| room.ply | 900 |" in text and "wrote 3 file(s)" in text
    for stem in ("room", "scan", "cloud"):
        labels = np.load(out / f"{stem}_labels.npy")
        ply = PlyData.read(str(out / f"{stem}_pred.ply"))["vertex"].data
        assert labels.shape == (900,) and np.array_equal(ply["label"], labels)
        np.testing.assert_allclose(ply["x"], xyz[:, 0])
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        names = (out / f"{stem}_classes.txt").read_text().splitlines()
        # the 3D viewer embeds every point (moved to the origin) coloured by its predicted class
        page = (out / f"{stem}.html").read_text(encoding="utf-8")
        data = json.loads(
            re.search(r'<script id="lk3d-data" type="application/json">(.*?)</script>', page, re.S).group(1)
        )
        shown = np.frombuffer(base64.b64decode(data["points"]), "<f4").reshape(-1, 3)
        np.testing.assert_allclose(shown, xyz - xyz.min(axis=0), atol=1e-5)
        rgb = np.frombuffer(base64.b64decode(data["colors"]), "u1").reshape(-1, 3)
        np.testing.assert_array_equal(rgb, np.round(class_colors(len(names))[labels] * 255))
        assert sum(int(line.split()[-1]) for line in names) == 900
    # the same colours through the PLY and the .npy give the same labels
    assert np.array_equal(np.load(out / "room_labels.npy"), np.load(out / "cloud_labels.npy"))


def test_predict_seg_without_input_keeps_the_split_behaviour(seg_ckpt, tmp_path):
    assert (
        main(
            [
                "predict",
                "seg",
                "--checkpoint",
                str(seg_ckpt),
                "--device",
                "cpu",
                "--output",
                str(tmp_path),
                "--limit",
                "1",
            ]
        )
        == 0
    )
    assert len(list(tmp_path.glob("*.ply"))) == 1 and not list(tmp_path.glob("*_labels.npy"))


def test_predict_det_on_a_kitti_bin(tmp_path, capsys):
    folder = tmp_path / "det"
    cfg = folder / "tiny_det.yaml"
    folder.mkdir()
    data = dict(TINY_DET["data"], num_train_frames=2, num_val_frames=1)
    cfg.write_text(
        yaml.safe_dump(
            dict(TINY_DET, data=data, output_dir=str(folder / "run"), train=dict(TINY_DET["train"], epochs=1))
        )
    )
    assert main(["train", "det", "--config", str(cfg)]) == 0
    rng = np.random.default_rng(2)
    pts = np.c_[rng.uniform(-12, 12, (3000, 2)), rng.uniform(-2.5, 0.5, 3000), rng.uniform(0, 1, 3000)]
    velodyne = tmp_path / "velodyne"
    velodyne.mkdir()
    pts.astype("<f4").tofile(velodyne / "000007.bin")
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "det",
                "--checkpoint",
                str(folder / "run" / "checkpoints" / "last.pt"),
                "--device",
                "cpu",
                "--input",
                str(velodyne / "000007.bin"),
                "--output",
                str(out),
                "--score-threshold",
                "0.0",
                "--no-views",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| 000007.bin | 3,000 |" in text
    record = json.loads((out / "000007.json").read_text())
    lines = (out / "000007_kitti.txt").read_text().splitlines()
    assert len(record["boxes"]) == len(record["scores"]) == len(lines) and record["points_in_range"] == 3000
    assert all(len(line.split()) == 16 for line in lines) and not (out / "000007.png").exists()

    # many files: a corrupt one is an error row (the others are written, exit status 1); a cloud outside the model's
    # range and model inputs the file lacks are notes
    others = tmp_path / "others"
    others.mkdir()
    (pts + [0.0, 0.0, 150.0, 0.0]).astype("<f4").tofile(others / "far.bin")
    (others / "cut.bin").write_bytes(pts.astype("<f4").tobytes()[:-6])
    pts.astype("<f4").tofile(others / "near.bin")
    base = ["predict", "det", "--checkpoint", str(folder / "run" / "checkpoints" / "last.pt"), "--device", "cpu"]
    assert main(base + ["--input", str(others), "--output", str(tmp_path / "out2"), "--no-views"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert re.search(r"\| cut.bin \|.*\| error: \d+ bytes is not a whole number", text)
    assert "wrote 2 file(s)" in text and "1 failed" in text
    assert (tmp_path / "out2" / "far.json").is_file() and (tmp_path / "out2" / "near.json").is_file()
    assert re.search(r"note: far.bin: no point lies in the model's range .*check --units and --axes", text)
    assert "note: near.bin" not in text
    typo = ["--input", str(others / "near.bin"), "--output", str(tmp_path / "out3"), "--no-views"]
    assert main(base + typo + ["--columns", "x y z intensty"]) == 0
    assert "note: near.bin: the model's input column(s) intensity are not in the file" in capsys.readouterr().out


def test_missing_input_is_named(seg_ckpt, tmp_path, capsys):
    assert main(["predict", "seg", "--checkpoint", str(seg_ckpt), "--input", str(tmp_path / "nope.ply")]) == 2
    assert "nope.ply" in capsys.readouterr().err


def test_two_inputs_of_one_name_get_distinct_stems_and_the_table_says_which():
    from largekernel3d.inference import FileSummary, summary_table
    from largekernel3d.inference.batch import unique_stems

    paths = [Path("a/x.npy"), Path("b/x.txt"), Path("c/scan.pcd.bin")]
    stems = unique_stems(paths)
    assert stems == ["x", "x_2", "scan"]
    rows = [FileSummary(p, 10, 5, 1, 0.1, {"Car": 1}, stem=s) for p, s in zip(paths, stems)]
    table = summary_table(rows, "det")
    assert "| x.npy |" in table and "| x.txt (as x_2) |" in table and "| scan.pcd.bin |" in table


def test_labels_cover_every_file_row_with_minus_one_for_dropped_rows(seg_ckpt, tmp_path):
    """A PCD with a NaN row: the PLY and the pictures hold the 299 points, `_labels.npy` one label per file row."""
    rng = np.random.default_rng(9)
    xyz = rng.uniform(0, 4, (300, 3)).astype(np.float32)
    xyz[17] = np.nan
    head = (
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 300\nHEIGHT 1\nPOINTS 300\nDATA binary\n"
    )
    (tmp_path / "holes.pcd").write_bytes(head.encode() + xyz.astype("<f4").tobytes())
    out = tmp_path / "out"
    args = ["predict", "seg", "--checkpoint", str(seg_ckpt), "--device", "cpu", "--no-views"]
    assert main(args + ["--input", str(tmp_path / "holes.pcd"), "--output", str(out)]) == 0
    labels = np.load(out / "holes_labels.npy")
    ply = PlyData.read(str(out / "holes_pred.ply"))["vertex"].data
    assert labels.shape == (300,) and labels[17] == -1 and len(ply) == 299
    np.testing.assert_array_equal(np.delete(labels, 17), ply["label"])
    assert (np.delete(labels, 17) >= 0).all()
