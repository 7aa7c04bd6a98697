"""benchmarks/bench_lk_ratios.py: the ratio table and its verdict against issue #25's targets, and one measured
case on a small generated scene."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_lk_ratios as B  # noqa: E402
from common import generated_indoor_scene  # noqa: E402


def _times(sw7: float, c3: float, c7: float) -> dict:
    return {"sw7": sw7, "c3": c3, "c7": c7, "sw7 cached": sw7 / 2, "c3 cached": c3 / 2}


def test_ratio_rows_flag_the_misses_per_target():
    indoor = generated_indoor_scene(2_000)
    lidar = B.SparseInput("KITTI 000001", indoor.indices, indoor.spatial_shape, "")
    results = [
        (indoor, 32, 1, _times(30.0, 10.0, 40.0)),  # SW-LK 3.0x (miss), plain 4.0x (miss: dense indoor)
        (lidar, 32, 1, _times(20.0, 10.0, 40.0)),  # SW-LK 2.0x (met), plain 4.0x (LiDAR: no plain target)
        (indoor, 64, 2, _times(25.0, 10.0, 30.0)),  # exactly on both targets: met
    ]
    rows, sw_miss, plain_miss = B.ratio_rows(results)
    assert sw_miss == [f"{indoor.name}, 32 ch, 1 thr (3.00×)"]
    assert plain_miss == [f"{indoor.name}, 32 ch, 1 thr (4.00×)"]
    assert [r[7] for r in rows] == ["**3.00**", "**2.00**", "**2.50**"]
    assert rows[1][8] == "4.00 (LiDAR)"
    assert rows[0][9] == "15.0 / 5.0" and rows[0][10] == "15.0 / 5.0 = 3.00"


def test_measure_times_every_case_on_a_small_scene():
    r = B.measure(generated_indoor_scene(3_000), 8, 1, reps=1)
    assert set(r) == set(B.CASES)
    assert all(v > 0 for v in r.values())


def test_work_per_site_counts_pairs_and_slots():
    w = B.work_per_site(generated_indoor_scene(3_000))
    # every site pairs with itself; a 7³ window holds the 3³ one; a site has at most 27 slots, one per non-empty
    # group, and at least one (the centre)
    assert 1.0 <= w["pairs3"] <= w["pairs7"] <= 343
    assert 1.0 <= w["slots"] <= min(27.0, w["pairs7"])
    assert w["pairs7"] / w["pairs3"] > 3  # a surface: the 7³ window holds several times the 3³ neighbours
