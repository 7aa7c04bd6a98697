"""The offline HTML viewer: the embedded data round-trips, the page fetches nothing, and in headless Chromium
(software WebGL) it reports no error and draws points and class-coloured boxes (skipped without Chromium)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from largekernel3d.analysis.html_view import BOX_EDGES, box_segments, write_html_view
from largekernel3d.analysis.segmentation_views import class_colors

CHROMIUM_NAMES = (
    "chromium-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "headless_shell",
)
CLASS_NAMES = ("Car", "Pedestrian", "Cyclist", "Truck")


def find_chromium() -> Optional[str]:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium binary (apt-get install chromium-headless-shell)")
    return found


def run_chromium(binary: str, page: Path, profile: Path, *mode: str) -> str:
    """Load ``page`` headless with software WebGL (SwiftShader); returns stdout (``--dump-dom``)."""
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--window-size=800,600",
        "--hide-scrollbars",
        "--virtual-time-budget=8000",
        *mode,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_status(binary: str, page: Path, profile: Path) -> dict:
    dom = run_chromium(binary, page, profile, "--dump-dom")
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    status = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    if status.get("data-status") == "error: this browser has no WebGL":
        pytest.skip(f"{binary} has no WebGL here (not even SwiftShader)")
    return status


def screenshot(binary: str, page: Path, profile: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    shot = page.with_suffix(".png")
    run_chromium(binary, page, profile, f"--screenshot={shot}")
    return mpimg.imread(shot)[..., :3]


def count_color(image: np.ndarray, color: np.ndarray, tol: float = 0.04) -> int:
    return int((np.abs(image - color).max(-1) < tol).sum())


def embedded(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="lk3d-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


def decode(b64: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def detection_scene(seed: int = 0, n: int = 30000):
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.uniform([-20, -20, -2], [20, 20, 0], (n, 3)), rng.uniform(0, 1, (n, 1))], 1)
    boxes = np.array([[-6.0, 4.0, -1.0, 9.0, 4.0, 2.5, 0.4], [7.0, -5.0, -1.0, 8.0, 6.0, 3.0, -1.1]])
    boxes[:, :2] += rng.uniform(-1, 1, (2, 2))
    return points, boxes, np.array([0, 2]), np.array([0.91, 0.47])


def test_embedded_data_round_trips_and_page_is_offline(tmp_path):
    points, boxes, labels, scores = detection_scene()
    page = write_html_view(
        tmp_path / "det.html",
        points,
        boxes=boxes,
        box_labels=labels,
        box_scores=scores,
        class_names=CLASS_NAMES,
        title="detection <test>",
    )
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and " src=" not in text
    assert "detection &lt;test&gt;" in text and "Car (1 box)" in text and "Cyclist (1 box)" in text
    data = embedded(page)
    np.testing.assert_array_equal(decode(data["points"], "<f4").reshape(-1, 3), points[:, :3].astype(np.float32))
    lines = decode(data["lines"], "<f4").reshape(2, -1, 2, 3)
    assert lines.shape[1] == len(BOX_EDGES) + 1 == 13
    # own check of the edges: every segment joins two corners ``c + R(yaw) (+-dx/2, +-dy/2, +-dz/2)`` that differ in
    # one coordinate sign, i.e. has the length of one of the box's sizes, and the tick ends at the front face centre
    for box, segs in zip(boxes, lines):
        lengths = np.linalg.norm(segs[:12, 1] - segs[:12, 0], axis=1)
        assert sorted(np.round(lengths, 4)) == sorted(np.round(np.repeat(box[3:6], 4), 4))
        front = box[:3] + box[3] / 2 * np.array([np.cos(box[6]), np.sin(box[6]), 0.0])
        np.testing.assert_allclose(segs[12], [box[:3], front], atol=1e-5)
    colors = decode(data["line_colors"], "u1").reshape(2, -1, 3)
    palette = np.round(class_colors(4) * 255)
    assert (colors[0] == palette[0]).all() and (colors[1] == palette[2]).all()
    assert [t["text"] for t in data["tags"]] == ["Car 0.91", "Cyclist 0.47"]


def test_subsampling_is_said_in_the_legend(tmp_path):
    rng = np.random.default_rng(1)
    points = rng.normal(0, 10, (120_000, 3))
    labels = rng.integers(0, 3, 120_000)
    page = write_html_view(
        tmp_path / "seg.html", points, point_labels=labels, class_names=CLASS_NAMES[:3], max_points=50_000
    )
    assert "showing 50,000 of 120,000 points (random subsample)" in page.read_text(encoding="utf-8")
    data = embedded(page)
    shown = decode(data["points"], "<f4").reshape(-1, 3)
    rgb = decode(data["colors"], "u1").reshape(-1, 3)
    assert shown.shape == (50_000, 3)
    index = {tuple(p): i for i, p in enumerate(points.astype(np.float32))}
    picked = np.array([index[tuple(p)] for p in shown])  # a subset of the input, each point once
    assert len(set(picked.tolist())) == 50_000
    np.testing.assert_array_equal(rgb, np.round(class_colors(3)[labels[picked]] * 255))


def test_bad_input_is_named(tmp_path):
    points, boxes, labels, _ = detection_scene()
    with pytest.raises(ValueError, match="points"):
        write_html_view(tmp_path / "a.html", points[:, :2])
    with pytest.raises(ValueError, match="box_labels"):
        write_html_view(tmp_path / "a.html", points, boxes=boxes, box_labels=labels[:1])
    with pytest.raises(ValueError, match="colors"):
        write_html_view(tmp_path / "a.html", points, colors=np.zeros((3, 3)))
    assert box_segments(np.zeros((0, 7))).shape == (0, 13, 2, 3)


def test_detection_page_draws_in_headless_chromium(chromium, tmp_path):
    points, boxes, labels, scores = detection_scene(n=120_000)
    page = write_html_view(
        tmp_path / "det.html",
        points,
        boxes=boxes,
        box_labels=labels,
        box_scores=scores,
        class_names=CLASS_NAMES,
        max_points=100_000,
    )
    status = page_status(chromium, page, tmp_path / "profile")
    assert status.get("data-status") == "ok", status
    drawn = int(status["data-drawn-pixels"])
    assert drawn > 0.05 * 800 * 600, drawn
    image = screenshot(chromium, page, tmp_path / "profile")
    assert image.shape[:2] == (600, 800)
    palette = class_colors(len(CLASS_NAMES))
    # box lines in class colours (the legend swatch alone is 11 x 11 pixels); classes without boxes nowhere
    assert count_color(image, palette[0]) > 300 and count_color(image, palette[2]) > 300
    assert count_color(image, palette[1]) == 0 and count_color(image, palette[3]) == 0


def test_segmentation_page_draws_class_colours(chromium, tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 60_000)
    points = rng.normal(0, 1, (60_000, 3)) * [6, 6, 1] + np.array([[-8, 0, 0], [8, 0, 0], [0, 8, 0]])[labels]
    labels[:100] = -1  # ignored points are grey
    page = write_html_view(tmp_path / "seg.html", points, point_labels=labels, class_names=CLASS_NAMES[:3])
    status = page_status(chromium, page, tmp_path / "profile")
    assert status.get("data-status") == "ok", status
    image = screenshot(chromium, page, tmp_path / "profile")
    palette = class_colors(3)
    for k in range(3):
        assert count_color(image, palette[k]) > 2000, k


def test_a_broken_page_reports_its_error(chromium, tmp_path):
    points, boxes, labels, scores = detection_scene(n=1000)
    page = write_html_view(tmp_path / "det.html", points, boxes=boxes, box_labels=labels)
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace('"points": "', '"points": "#', 1), encoding="utf-8")  # not base64 any more
    status = page_status(chromium, page, tmp_path / "profile")
    assert status.get("data-status", "").startswith("error"), status
