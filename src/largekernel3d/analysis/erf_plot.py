"""The ERF figure: per row (e.g. random init, trained) and per network (e.g. 3³ vs large kernels) two top-down
heatmaps of the accumulated gradient mass ``E(δ)`` (:mod:`.erf`): the horizontal slice through the centre and the
projection over z, on a log scale ``log10(E / max E)`` (``[-3, 0]``), with circles at the radii holding 50 % and
90 % of the mass (the dashed one at 0.5 m)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .erf import ERFResult, erf_planes

PANEL_INCHES = (3.2, 3.0)
TITLE_INCHES = 0.5
DPI = 100
LOG_RANGE = 3.0


def erf_figure_size(rows: int, networks: int) -> Tuple[int, int]:
    """``(width, height)`` in pixels of :func:`plot_erf_grid`'s PNG for ``rows`` x ``networks`` results."""
    w = PANEL_INCHES[0] * 2 * networks
    h = PANEL_INCHES[1] * rows + TITLE_INCHES
    return int(round(w * DPI)), int(round(h * DPI))


def _log(values: np.ndarray) -> np.ndarray:
    peak = float(values.max()) if values.size else 0.0
    if peak <= 0:
        return np.full(values.shape, -LOG_RANGE)
    with np.errstate(divide="ignore"):
        return np.clip(np.log10(values / peak), -LOG_RANGE, 0.0)


def plot_erf_grid(
    results: Sequence[Sequence[ERFResult]], path: Path, half_width_m: Optional[float] = None, title: str = ""
) -> Path:
    """Write the figure of ``results[row][network]`` (every row with the same number of networks) to ``path``.

    ``half_width_m``: half the side of the shown window in metres (default: the largest 90 % radius, at least
    0.5 m and 1.5 voxels). The numbers are computed from the whole distribution, not only the window."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    rows = [list(r) for r in results]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("results must be a non-empty grid: every row with the same number of networks")
    if half_width_m is None:
        half_width_m = max(
            max(r.radius(0.9, "m") for row in rows for r in row) * 1.1,
            0.5,
            1.5 * max(max(r.voxel_size) for row in rows for r in row),
        )
    n_rows, n_nets = len(rows), len(rows[0])
    width, height = erf_figure_size(n_rows, n_nets)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    top = 1 - TITLE_INCHES / (height / DPI)
    grid = fig.add_gridspec(
        n_rows, 2 * n_nets, left=0.04, right=0.955, bottom=0.06 / n_rows, top=top - 0.02, wspace=0.25, hspace=0.35
    )
    image = None
    for i, row in enumerate(rows):
        for j, res in enumerate(row):
            planes = erf_planes(res, half_width_m)
            for v, (view, values) in enumerate((("slice z=0", planes.slice), ("projection over z", planes.projection))):
                ax = fig.add_subplot(grid[i, 2 * j + v])
                image = ax.imshow(
                    _log(values),
                    origin="lower",
                    extent=planes.extent,
                    cmap="magma",
                    vmin=-LOG_RANGE,
                    vmax=0.0,
                    interpolation="nearest",
                )
                for frac, style in ((0.5, "-"), (0.9, "-")):
                    ax.add_patch(Circle((0, 0), res.radius(frac, "m"), fill=False, color="cyan", lw=0.8, ls=style))
                ax.add_patch(Circle((0, 0), 0.5, fill=False, color="white", lw=0.6, ls="--"))
                ax.set_xlim(planes.extent[:2])
                ax.set_ylim(planes.extent[2:])
                ax.tick_params(labelsize=6)
                name = f"{res.label}\n" if v == 0 else "\n"
                ax.set_title(f"{name}{view}", fontsize=7)
                if v == 0:
                    ax.text(
                        0.02,
                        0.02,
                        f"r50 {res.radius(0.5, 'm'):.2f} m\nr90 {res.radius(0.9, 'm'):.2f} m\n"
                        f">0.5 m {100 * res.share_beyond(0.5):.0f} %",
                        transform=ax.transAxes,
                        fontsize=6,
                        color="white",
                        va="bottom",
                    )
    fig.suptitle(
        title or "effective receptive field: gradient mass by offset (x, y in m), log10(E / max E)",
        fontsize=9,
        y=1 - 0.15 * TITLE_INCHES / (height / DPI),
    )
    if image is not None:
        cax = fig.add_axes([0.965, 0.3, 0.006, 0.4])
        fig.colorbar(image, cax=cax).ax.tick_params(labelsize=5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


__all__ = ["plot_erf_grid", "erf_figure_size"]
