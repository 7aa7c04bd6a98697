"""Ablation runs: aggregation over seeds by hand, the verdict against the baseline, tables, and real tiny runs
(2 configurations x 2 seeds on generated scenes) with reuse and resume of run folders."""

import csv
import json
import math

import numpy as np
import pytest

from largekernel3d.training import ablation as A
from largekernel3d.training.config import ConfigError

# -- synthetic numbers ------------------------------------------------------------------------------------------


def _record(variant, seed, present, union, curve=None, params=1000, latency=10.0, step=0.5, cpu=0.25):
    curve = curve or [(1, present / 2), (2, present)]
    return A.RunRecord(
        variant=variant,
        seed=seed,
        final={"miou_present": present, "miou_union": union},
        curves={"miou_present": curve, "miou_union": [(e, v * union / present) for e, v in curve]},
        params=params,
        latency_ms=latency,
        step_seconds=step,
        epochs=2,
        steps=4,
        step_cpu_seconds=cpu,
    )


def _set(variants=("base", "wide", "noisy"), baseline="base"):
    return A.AblationSet(
        name="toy", task="seg", base={}, variants=tuple((v, (), f"{v} config") for v in variants), baseline=baseline
    )


def test_spread_by_hand():
    s = A.Spread.of([0.30, 0.36, 0.33])
    assert s.mean == pytest.approx(0.33)
    # sample std: deviations -0.03, 0.03, 0 -> sqrt((9e-4 + 9e-4) / 2) = 0.03
    assert s.std == pytest.approx(0.03)
    assert (s.min, s.max, s.n) == (0.30, 0.36, 3)
    assert s.range == pytest.approx(0.06)
    one = A.Spread.of([0.4])
    assert one.std == 0.0 and one.range == 0.0 and one.n == 1


def test_verdict_rule():
    base = A.Spread.of([0.30, 0.32])  # mean 0.31, range 0.02
    assert A.verdict(A.Spread.of([0.325, 0.335]), base) == "within noise"  # delta 0.02 <= range 0.02
    assert A.verdict(A.Spread.of([0.34, 0.36]), base) == "better"  # delta 0.04 > 0.02
    assert A.verdict(A.Spread.of([0.26, 0.27]), base) == "worse"  # delta -0.045
    # the larger of the two ranges decides: a noisy variant 0.20..0.50 (mean 0.35, range 0.30) is within noise
    assert A.verdict(A.Spread.of([0.20, 0.50]), base) == "within noise"
    assert A.verdict(A.Spread.of([0.5]), A.Spread.of([0.3])) == "n/a (1 seed)"


def test_aggregate_means_spreads_and_verdicts_by_hand():
    aset = _set()
    recs = [
        _record("base", 0, 0.30, 0.25, latency=10, cpu=0.2),
        _record("base", 1, 0.32, 0.27, latency=12, cpu=0.3),
        _record("wide", 0, 0.40, 0.30, params=4000),
        _record("wide", 1, 0.42, 0.33, params=4000),
        _record("noisy", 0, 0.10, 0.08),
        _record("noisy", 1, 0.60, 0.50),
    ]
    rows = {r.variant: r for r in A.aggregate(aset, recs)}
    assert [r.variant for r in A.aggregate(aset, recs)] == ["base", "wide", "noisy"]
    b, w, n = rows["base"], rows["wide"], rows["noisy"]
    assert b.is_baseline and b.verdict == "baseline" and b.delta == 0.0
    assert b.scores["miou_present"].mean == pytest.approx(0.31)
    assert b.scores["miou_union"].mean == pytest.approx(0.26)
    assert b.latency_ms.mean == pytest.approx(11.0) and b.seeds == (0, 1)
    assert b.step_cpu_seconds.mean == pytest.approx(0.25) and b.step_cpu_seconds.range == pytest.approx(0.1)
    assert w.delta == pytest.approx(0.41 - 0.31) and w.verdict == "better" and w.params == 4000
    assert w.scores["miou_union"].min == pytest.approx(0.30) and w.scores["miou_union"].max == pytest.approx(0.33)
    assert n.delta == pytest.approx(0.35 - 0.31) and n.verdict == "within noise"  # range 0.5 swamps it
    md = A.markdown_table(aset, list(rows.values()))
    assert "| **base** | 31.0 (30.0–32.0) | 26.0 (25.0–27.0) | — | baseline | 0.00 M | 11 | 0.50 | 0.250 | 0 1 |" in md
    assert "| wide | 41.0 (40.0–42.0) | 31.5 (30.0–33.0) | +10.0 | better | 0.00 M |" in md
    assert "| noisy | 35.0 (10.0–60.0) |" in md and "within noise" in md
    assert "min–max range over seeds" in md


def test_aggregate_needs_the_baseline():
    with pytest.raises(ValueError, match="baseline 'base'"):
        A.aggregate(_set(), [_record("wide", 0, 0.4, 0.3)])


def test_csv_rows(tmp_path):
    aset = _set(("base", "wide"))
    recs = [
        _record("base", 0, 0.30, 0.25),
        _record("base", 1, 0.32, 0.27),
        _record("wide", 0, 0.40, 0.30),
        _record("wide", 1, 0.44, 0.30),
    ]
    rows = A.aggregate(aset, recs)
    A.write_csv(aset, rows, tmp_path / "t.csv")
    table = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["config"] for r in table] == ["base", "wide"]
    wide = table[1]
    assert float(wide["miou_present_mean"]) == pytest.approx(0.42)
    assert float(wide["miou_present_std"]) == pytest.approx(math.sqrt(2 * 0.02**2), abs=1e-6)  # n - 1 = 1
    assert float(wide["delta_vs_baseline"]) == pytest.approx(0.11) and wide["vs_baseline"] == "better"
    assert wide["seeds"] == "0 1" and wide["n_seeds"] == "2"
    A.write_runs_csv(aset, recs, tmp_path / "runs.csv")
    runs = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert [(r["config"], r["seed"]) for r in runs] == [("base", "0"), ("base", "1"), ("wide", "0"), ("wide", "1")]


def test_curve_matrix_keeps_common_epochs():
    recs = [
        _record("a", 1, 0.4, 0.3, curve=[(1, 0.1), (2, 0.2), (3, 0.4)]),
        _record("a", 0, 0.3, 0.3, curve=[(2, 0.25), (3, 0.3)]),
    ]
    epochs, values = A.curve_matrix(recs, "a", "miou_present")
    np.testing.assert_array_equal(epochs, [2, 3])
    np.testing.assert_allclose(values, [[0.25, 0.3], [0.2, 0.4]])  # rows ordered by seed


def test_parse_set_errors():
    ok = {"name": "s", "base": "x", "baseline": "a", "variants": {"a": [], "b": ["model.init_dim=4"]}}
    aset = A.parse_ablation_set(ok, {})
    assert [v[0] for v in aset.variants] == ["a", "b"] and aset.variants[1][1] == ("model.init_dim=4",)
    with pytest.raises(ConfigError, match="unknown key"):
        A.parse_ablation_set(dict(ok, seeds=[0]), {})
    with pytest.raises(ConfigError, match="missing key 'baseline'"):
        A.parse_ablation_set({k: v for k, v in ok.items() if k != "baseline"}, {})
    with pytest.raises(ValueError, match="baseline 'c' is not one of the variants"):
        A.parse_ablation_set(dict(ok, baseline="c"), {})
    with pytest.raises(ValueError, match="--only: unknown configuration"):
        aset.select(["zz"])
    assert [v[0] for v in aset.select(["b"]).variants] == ["a", "b"]  # the baseline stays


# -- real tiny runs --------------------------------------------------------------------------------------------

TINY_BASE = {
    "name": "tiny",
    "seed": 0,
    "data": {
        "dataset": "generated",
        "num_train_scenes": 2,
        "num_val_scenes": 1,
        "points_per_scene": 1500,
        "voxel_size": 0.25,
        "augment": True,
    },
    "model": {
        "name": "largekernel3d_seg",
        "layers": [1] * 8,
        "planes": [8] * 8,
        "init_dim": 8,
        "stage_kernel_sizes": [3, 3, 3, 3],
        "stage_conv_types": "plain",
    },
    "train": {
        "epochs": 2,
        "batch_size": 1,
        "optimizer": "adamw",
        "lr": 0.01,
        "progress": False,
        "device": "cpu",
        "threads": 1,
    },
}


def _tiny_set():
    return A.parse_ablation_set(
        {
            "name": "tiny",
            "base": "inline",
            "baseline": "plain3",
            "variants": {"plain3": [], "swlk5": ["model.stage_kernel_sizes=[5,5,3,3]", "model.stage_conv_types=swlk"]},
        },
        TINY_BASE,
    )


@pytest.fixture(scope="module")
def tiny_ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    aset = _tiny_set()
    return aset, out, A.run_ablation(aset, [0, 1], out, progress=False, latency_repeats=2)


def test_tiny_runs_are_recorded(tiny_ablation):
    aset, out, recs = tiny_ablation
    assert [(r.variant, r.seed) for r in recs] == [("plain3", 0), ("swlk5", 0), ("plain3", 1), ("swlk5", 1)]
    for r in recs:
        folder = out / r.variant / f"seed{r.seed}"
        assert (folder / "checkpoints" / "last.pt").is_file() and (folder / A.RUN_FILE).is_file()
        assert [e for e, _ in r.curves["miou_present"]] == [1, 2] and r.steps == 4
        assert 0 < r.final["miou_union"] <= r.final["miou_present"] <= 1  # absent classes only lower the union mean
        assert r.latency_ms > 0 and r.step_seconds > 0 and r.step_cpu_seconds > 0 and not r.reused
        saved = json.loads((folder / A.RUN_FILE).read_text())
        assert saved["config"]["seed"] == r.seed and saved["config"]["output_dir"] == str(folder)
    plain, swlk = recs[0], recs[1]
    assert plain.params != swlk.params  # the SW-LK stages have other weights than the plain 3^3 ones
    assert recs[0].final != recs[2].final  # the seeds give different runs
    rows = A.aggregate(aset, recs)
    p = rows[0].scores["miou_present"]
    assert p.mean == pytest.approx((recs[0].final["miou_present"] + recs[2].final["miou_present"]) / 2)


def test_finished_runs_are_reused(tiny_ablation):
    aset, out, recs = tiny_ablation
    ckpt = out / "plain3" / "seed0" / "checkpoints" / "last.pt"
    stamp = ckpt.stat().st_mtime_ns
    again = A.run_ablation(aset, [0, 1], out, progress=False)
    assert all(r.reused for r in again) and ckpt.stat().st_mtime_ns == stamp
    assert [r.final for r in again] == [r.final for r in recs]
    # train.progress does not change results: a rerun with progress bars reuses the runs too
    assert all(r.reused for r in A.run_ablation(aset, [0], out, ["train.progress=true"], progress=False))


def test_changed_config_in_a_run_folder_is_refused(tiny_ablation):
    aset, out, _ = tiny_ablation
    with pytest.raises(ValueError, match="another configuration .*train"):
        A.run_ablation(aset, [0], out, ["train.lr=0.5"], progress=False)


def test_interrupted_run_resumes(tmp_path):
    """A run folder with a checkpoint but no record (killed after epoch 1 of 2) is resumed, not restarted."""
    aset = _tiny_set().select(["plain3"])
    one = A.run_ablation(aset, [0], tmp_path, ["train.epochs=1"], progress=False)[0]
    folder = tmp_path / "plain3" / "seed0"
    (folder / A.RUN_FILE).unlink()
    # the 1-epoch run is an interrupted 2-epoch run as far as the checkpoint's position goes, but its config
    # says 1 epoch: refused, naming the difference
    with pytest.raises(ValueError, match="unfinished run of another configuration"):
        A.run_ablation(aset, [0], tmp_path, progress=False)
    resumed = A.run_ablation(aset, [0], tmp_path, ["train.epochs=1"], progress=False)[0]
    assert "resumed from" in (folder / "log.txt").read_text()
    assert resumed.final == one.final and resumed.steps == one.steps


def test_detection_set_reports_ap(tmp_path):
    """A detection set: the score is the validation mAP, latency is measured on a detector forward."""
    from det_tiny import TINY_DET

    aset = A.parse_ablation_set(
        {
            "name": "tiny_det",
            "task": "det",
            "base": "inline",
            "baseline": "swlk5",
            "set": ["train.epochs=1", "data.num_train_frames=2", "data.num_val_frames=1"],
            "variants": {
                "swlk5": [],
                "plain3": [
                    "model.backbone.kernel_sizes=[3,3,3,3]",
                    "model.backbone.conv_types=[plain,plain,plain,plain]",
                ],
            },
        },
        TINY_DET,
    )
    assert aset.metrics == ("map",)
    recs = A.run_ablation(aset, [0], tmp_path, progress=False, latency_repeats=1)
    for r in recs:
        assert set(r.final) == {"map"} and 0 <= r.final["map"] <= 1 and r.curves["map"][0][0] == 1
        assert r.latency_ms > 0
    assert recs[1].config["model"]["backbone"]["conv_types"] == ["plain"] * 4
    assert recs[0].final != recs[1].final
    rows = A.aggregate(aset, recs)
    assert rows[1].verdict == "n/a (1 seed)"
    assert "| config | mAP % |" in A.markdown_table(aset, rows)
