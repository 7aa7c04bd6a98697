"""``lk3d ablate``: a tiny set (2 configurations x 2 seeds, one short epoch on generated scenes) end to end, reuse on
rerun, the shipped sets, and the errors a user meets."""

import csv
import re

import pytest
import yaml

from largekernel3d.cli.ablate import load_set, shipped_sets
from largekernel3d.cli.main import main


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from cli_tiny import TINY

    folder = tmp_path_factory.mktemp("ablate")
    spec = {
        "name": "tiny_cli",
        "task": "seg",
        "description": "two tiny networks",
        "base": dict(TINY),
        "set": ["data.num_val_scenes=1", "train.batch_size=1"],
        "baseline": "plain3",
        "variants": {
            "plain3": {"description": "plain 3^3", "set": []},
            "swlk5": {
                "description": "SW-LK 5^3 in stages 1-2",
                "set": ["model.stage_kernel_sizes=[5,5,3,3]", "model.stage_conv_types=swlk"],
            },
        },
    }
    path = folder / "tiny_set.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, folder / "out"


@pytest.fixture(scope="module")
def ablated(tiny_set):
    path, out = tiny_set
    assert main(["ablate", str(path), "--seeds", "0", "1", "--output", str(out), "--latency-repeats", "2"]) == 0
    return out


def test_table_csv_and_png_are_written(ablated):
    md = (ablated / "ablation.md").read_text()
    assert "## Ablation set `tiny_cli` (seeds 0 1)" in md
    assert "| config | mIoU % (classes in GT) | mIoU % (non-empty union) |" in md
    lines = [x for x in md.splitlines() if x.startswith("| ") and not x.startswith("| --- ")]
    assert len(lines) == 3 and lines[1].startswith("| **plain3** |") and lines[2].startswith("| swlk5 |")
    assert lines[1].endswith("| 0 1 |") and "baseline" in lines[1]
    assert any(v in lines[2] for v in ("within noise", "better", "worse"))
    rows = list(csv.DictReader((ablated / "ablation.csv").open()))
    assert [r["config"] for r in rows] == ["plain3", "swlk5"] and all(r["n_seeds"] == "2" for r in rows)
    runs = list(csv.DictReader((ablated / "ablation_runs.csv").open()))
    assert sorted((r["config"], r["seed"]) for r in runs) == [
        ("plain3", "0"),
        ("plain3", "1"),
        ("swlk5", "0"),
        ("swlk5", "1"),
    ]
    # the CSV means are the means of the per-run values
    for row in rows:
        vals = [float(r["miou_present"]) for r in runs if r["config"] == row["config"]]
        assert float(row["miou_present_mean"]) == pytest.approx(sum(vals) / 2, abs=1e-6)
        assert float(row["miou_present_min"]) == pytest.approx(min(vals), abs=1e-6)
    assert (ablated / "ablation_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for variant in ("plain3", "swlk5"):
        for seed in (0, 1):
            assert (ablated / variant / f"seed{seed}" / "ablation_run.json").is_file()


def test_rerun_reuses_finished_runs(tiny_set, ablated, capsys):
    path, out = tiny_set
    stamp = (out / "swlk5" / "seed1" / "checkpoints" / "last.pt").stat().st_mtime_ns
    before = (out / "ablation.csv").read_text()
    assert main(["ablate", str(path), "--seeds", "0", "1", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("(reused)") + captured.err.count("(reused)") == 4
    assert (out / "swlk5" / "seed1" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp
    # same scores and parameters; only the latency/step-time columns are measurements of the same runs
    keep = ("config", "miou_present_mean", "miou_union_mean", "params", "vs_baseline")
    assert [{k: r[k] for k in keep} for r in csv.DictReader(before.splitlines())] == [
        {k: r[k] for k in keep} for r in csv.DictReader((out / "ablation.csv").open())
    ]


def test_shipped_sets_and_print_configs(capsys, tmp_path):
    assert "scannet_small" in shipped_sets()
    aset = load_set("scannet_small")
    names = [v[0] for v in aset.variants]
    assert aset.baseline == "swlk_k7" and {
        "depthwise_k7",
        "no_pos_enc",
        "center3",
        "thirds",
        "k3",
        "k5",
        "k9",
        "dilated_branch",
    } <= set(names)
    assert main(["ablate", "--list"]) == 0
    assert "scannet_small: 10 configurations" in capsys.readouterr().out
    assert main(["ablate", "scannet_small", "--only", "k9", "--print-configs", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    parts = re.split(r"^# (\S+)$", out, flags=re.M)[1:]
    docs = {name: yaml.safe_load(text) for name, text in zip(parts[::2], parts[1::2])}
    assert list(docs) == ["swlk_k7", "k9"]  # the baseline is kept
    k9 = docs["k9"]
    assert k9["model"]["stage_kernel_sizes"] == [9, 9, 9, 9] and k9["model"]["stage_conv_types"] == "swlk"
    assert k9["output_dir"] == str(tmp_path / "k9" / "seed0") and k9["train"]["progress"] is False


def test_errors_are_named(tiny_set, capsys, tmp_path):
    path, _ = tiny_set
    assert main(["ablate", "no_such_set"]) == 2
    assert "no shipped ablation set" in capsys.readouterr().err
    assert main(["ablate", str(path), "--only", "k99", "--output", str(tmp_path)]) == 2
    assert "unknown configuration(s) ['k99']" in capsys.readouterr().err
    assert main(["ablate", str(path), "--set", "train.epohcs=1", "--output", str(tmp_path)]) == 2
    assert "train.epohcs" in capsys.readouterr().err
