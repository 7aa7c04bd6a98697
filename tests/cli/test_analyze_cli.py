"""``lk3d analyze erf``: the PNG (header and pixel size), the Markdown / JSON summary and the saved distributions,
for random weights and for checkpoints, and errors that name the argument."""

import json
import struct

import pytest
import yaml

from cli_tiny import TINY
from largekernel3d.analysis.erf import ERFResult
from largekernel3d.analysis.erf_plot import erf_figure_size
from largekernel3d.cli.main import main

SMALL = ["--centres", "3", "--scenes", "1"]


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _swlk_yaml(tmp_path):
    cfg = dict(TINY, output_dir=str(tmp_path / "run_lk"))
    cfg["model"] = dict(TINY["model"], stage_conv_types="swlk", stage_kernel_sizes=[5, 5, 3, 3])
    path = tmp_path / "tiny_lk.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_random_init_writes_png_markdown_json_and_npz(tmp_path, tiny_yaml, capsys):
    out = tmp_path / "erf"
    rc = main(
        [
            "analyze",
            "erf",
            "--config",
            str(tiny_yaml),
            "--model",
            "largekernel3d_seg",
            "--compare",
            "minkunet14a",
            "--out",
            str(out),
            *SMALL,
        ]
    )
    assert rc == 0
    assert _png_size(out / "erf.png") == erf_figure_size(1, 2)
    summary = json.loads((out / "erf.json").read_text())
    assert [r["label"] for r in summary["results"]] == ["largekernel3d_seg, random init", "minkunet14a, random init"]
    assert summary["settings"]["voxel_size_m"] == [0.25, 0.25, 0.25]
    for r in summary["results"]:
        radii = [r["radius_voxels"][k] for k in ("20%", "50%", "90%")]
        assert radii == sorted(radii) and radii[-1] > 0
        assert r["radius_m"]["90%"] == pytest.approx(0.25 * r["radius_voxels"]["90%"])
        assert 0 <= r["share_beyond_0.5m"] < 1
    md = (out / "erf.md").read_text()
    assert "| largekernel3d_seg, random init |" in md and "mass > 0.5 m" in md
    back = ERFResult.load(out / "erf_0_1.npz")
    assert back.label == "minkunet14a, random init" and float(back.mass.sum()) == pytest.approx(1.0)
    assert back.radius(0.9) == pytest.approx(summary["results"][1]["radius_voxels"]["90%"])
    assert "wrote" in capsys.readouterr().out


def test_checkpoints_add_the_trained_row(tmp_path, tiny_yaml):
    runs = []
    for cfg in (tiny_yaml, _swlk_yaml(tmp_path)):
        run = tmp_path / f"run_{len(runs)}"
        assert main(["train", "seg", "--config", str(cfg), "--output", str(run)]) == 0
        runs.append(run / "checkpoints" / "last.pt")
    out = tmp_path / "erf"
    rc = main(
        [
            "analyze",
            "erf",
            "--checkpoint",
            str(runs[0]),
            "--compare-checkpoint",
            str(runs[1]),
            "--out",
            str(out),
            "--stage",
            "encoder.1",
            *SMALL,
        ]
    )
    assert rc == 0
    assert _png_size(out / "erf.png") == erf_figure_size(2, 2)
    results = json.loads((out / "erf.json").read_text())["results"]
    assert [r["label"].split(", ")[1] for r in results] == ["random init", "random init", "trained", "trained"]
    assert {r["stage"] for r in results} == {"encoder.1"}
    assert [r["stride"] for r in results] == [[4.0, 4.0, 4.0]] * 4  # encoder stage 2: level 2


def test_errors_name_the_argument(tmp_path, tiny_yaml, capsys):
    base = ["analyze", "erf", "--config", str(tiny_yaml), "--out", str(tmp_path / "e"), *SMALL]
    assert main(base + ["--model", "largekernel3d_seg", "--compare", "centerpoint_voxelres"]) == 2
    assert "not of one task" in capsys.readouterr().err
    assert main(base + ["--model", "largekernel3d_seg", "--stage", "encoder.9"]) == 2
    assert "not a module" in capsys.readouterr().err
    assert main(base + ["--model", "resnet50"]) == 2
    assert "not a model name" in capsys.readouterr().err
