"""Many files in one go (what ``lk3d predict seg|det --input`` runs): read, predict, write, summarise.

A file that cannot be read or predicted (corrupt, truncated, of another layout) gets an error row and the others
go on; what looks wrong without being an error (no point in a detector's range, model inputs the file lacks) is a
note of its row, printed as it happens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from tqdm import tqdm

from .detection import DetectionPredictor
from .outputs import find_kitti_calibration, write_det_outputs, write_seg_outputs
from .predictor import detection_features
from .segmentation import SegmentationPredictor


@dataclass
class FileSummary:
    """One row of the summary: the file, its points and voxels, passes, seconds, and what was found
    (class histogram for segmentation, boxes per class for detection)."""

    path: Path
    points: int
    voxels: int
    passes: int
    seconds: float
    found: Dict[str, int] = field(default_factory=dict)
    written: List[Path] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    error: Optional[str] = None
    stem: str = ""


def unique_stems(paths: Sequence[Path]) -> List[str]:
    """Output stems: the file name without point-cloud extensions, ``_2``, ``_3`` ... appended on clashes."""
    stems: List[str] = []
    seen: Dict[str, int] = {}
    for p in paths:
        name = p.name
        for ext in (
            ".pcd.bin",
            ".ply",
            ".pcd",
            ".las",
            ".laz",
            ".bin",
            ".npy",
            ".npz",
            ".txt",
            ".csv",
            ".xyz",
            ".pts",
            ".asc",
        ):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
                break
        seen[name] = seen.get(name, 0) + 1
        stems.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return stems


def predict_files(
    predictor: Union[SegmentationPredictor, DetectionPredictor],
    paths: Sequence[Path],
    out: Path,
    views: bool = True,
    score_threshold: float = 0.3,
    intensity_scale: float = 1.0,
    progress: bool = True,
    verbose: bool = False,
    read_options: Optional[dict] = None,
) -> List[FileSummary]:
    """Predict every file of ``paths`` and write its outputs (:mod:`.outputs`) to ``out``; a file that fails gets a
    row with its ``error`` (the run goes on), warnings land in ``notes`` (both printed at once)."""
    from ..data.pointcloud_files import PointCloudFileError

    rows = []
    for path, stem in tqdm(list(zip(paths, unique_stems(paths))), desc="predict", disable=not progress, unit="file"):
        try:
            row = _predict_one(
                predictor, Path(path), stem, out, views, score_threshold, intensity_scale, verbose, read_options
            )
        except (PointCloudFileError, OSError, ValueError) as err:
            tqdm.write(f"error: {path}: {err}")
            row = FileSummary(Path(path), 0, 0, 0, 0.0, error=str(err))
        row.stem = stem
        rows.append(row)
    return rows


def _predict_one(
    predictor: Union[SegmentationPredictor, DetectionPredictor],
    path: Path,
    stem: str,
    out: Path,
    views: bool,
    score_threshold: float,
    intensity_scale: float,
    verbose: bool,
    read_options: Optional[dict],
) -> FileSummary:
    from ..data.pointcloud_files import read_point_cloud

    cloud = read_point_cloud(path, **(read_options or {}))
    if verbose:
        tqdm.write(cloud.describe())
    if isinstance(predictor, SegmentationPredictor):
        prediction = predictor.predict(cloud.points, cloud.colors)
        written = write_seg_outputs(
            out,
            stem,
            cloud.points,
            prediction,
            views=views,
            title=path.name,
            kept_rows=cloud.kept_rows,
        )
        return FileSummary(
            path,
            cloud.num_points,
            prediction.num_voxels,
            prediction.num_tiles * prediction.num_passes,
            prediction.seconds,
            prediction.histogram(),
            written,
        )
    if not isinstance(predictor, DetectionPredictor):
        raise TypeError(f"predictor must be a SegmentationPredictor or DetectionPredictor, got {type(predictor)}")
    features, missing = detection_features(predictor, cloud, intensity_scale)
    detection = predictor.predict(cloud.points, features)
    notes = []
    if missing:
        notes.append(
            f"the model's input column(s) {', '.join(missing)} are not in the file (its columns: x y z"
            f"{' intensity' if cloud.intensity is not None else ''} {' '.join(cloud.extra)}".rstrip()
            + "): zeros used; name them with --columns if the file has them"
        )
    if detection.points_in_range == 0:
        lo, hi = cloud.points.min(axis=0), cloud.points.max(axis=0)
        notes.append(
            f"no point lies in the model's range {[round(float(v), 2) for v in predictor.range]} (x y z min/max; "
            f"--windows moves x and y only); the file spans {lo.round(2).tolist()} .. {hi.round(2).tolist()}: "
            "check --units and --axes, or move the cloud's origin to the sensor"
        )
    for note in notes:
        tqdm.write(f"note: {path.name}: {note}")
    written = write_det_outputs(
        out,
        stem,
        cloud.points,
        detection,
        score_threshold,
        views,
        find_kitti_calibration(path),
        source=str(path),
        point_cloud_range=None if predictor.windows else predictor.range.tolist(),
    )
    return FileSummary(
        path,
        cloud.num_points,
        detection.num_voxels,
        detection.num_windows,
        detection.seconds,
        detection.counts(score_threshold),
        written,
        notes,
    )


def summary_table(rows: Sequence[FileSummary], task: str, top: int = 4) -> str:
    """A Markdown table: file, points, voxels, passes, seconds, classes (seg: points per class; det: boxes)."""
    what = "boxes per class" if task == "det" else "points per class (most frequent)"
    lines = [f"| file | points | voxels | passes | seconds | {what} |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        name = r.path.name
        if r.stem and not name.startswith(r.stem + "."):  # a renamed stem (two inputs of one name): say which
            name += f" (as {r.stem})"
        if r.error is not None:  # the file is in the first column: its path left out of the message
            message = r.error.splitlines()[0].replace(f"{str(r.path)!r}: ", "").replace(f"{str(r.path)}: ", "")
            lines.append(f"| {name} | – | – | – | – | error: {message[:120]} |")
            continue
        items = list(r.found.items())
        found = ", ".join(f"{k} {v:,}" for k, v in items[:top]) + (", ..." if len(items) > top else "")
        if task == "det":
            found = f"{sum(r.found.values())}: " + (found or "none")
        lines.append(f"| {name} | {r.points:,} | {r.voxels:,} | {r.passes} | {r.seconds:.2f} | {found} |")
    return "\n".join(lines)


__all__ = ["FileSummary", "predict_files", "summary_table", "unique_stems"]
