"""Validation curves of an ablation set as a PNG: one curve per configuration, the mean over seeds with a band
from the minimum to the maximum over seeds, one panel per score (e.g. both mIoU conventions)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

Curve = Tuple[np.ndarray, np.ndarray]  # (epochs [E], values [n_seeds, E]) as fractions


def plot_ablation_curves(
    path: Path,
    panels: Mapping[str, Mapping[str, Curve]],
    title: str = "",
    baseline: Optional[str] = None,
    order: Optional[Sequence[str]] = None,
) -> Path:
    """Write ``path`` (PNG): for each panel title -> {configuration -> (epochs, values [seeds, E])} the mean
    curve in percent with a min–max band over seeds (no band for one seed); the baseline is drawn thicker and
    black. Returns ``path``."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend switch
    from matplotlib.ticker import MaxNLocator

    if not panels:
        raise ValueError("plot_ablation_curves: no panels to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(order) if order is not None else list(next(iter(panels.values())).keys())
    cmap = colormaps["tab10"]
    styles = ("-", "--", "-.", ":")
    fig = Figure(figsize=(6.5 * len(panels), 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        k = 0
        for name in names:
            if name not in curves:
                continue
            epochs, values = curves[name]
            values = 100.0 * np.asarray(values, dtype=np.float64)
            mean = values.mean(axis=0)
            if name == baseline:
                color, style, width = "black", "-", 2.4
            else:
                color, style, width = cmap(k % 10), styles[(k // 10) % len(styles)], 1.4
                k += 1
            n = values.shape[0]
            ax.plot(
                epochs,
                mean,
                style,
                color=color,
                linewidth=width,
                label=f"{name}{' (baseline)' if name == baseline else ''}",
            )
            if n > 1:
                ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.12, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{panel}")
        ax.grid(True, alpha=0.3)
        ax.set_title(panel)
    seeds = {np.asarray(v[1]).shape[0] for c in panels.values() for v in c.values()}
    band = "band: min–max over seeds" if max(seeds) > 1 else "one seed"
    fig.suptitle(f"{title} — validation, mean over seeds ({band})" if title else f"mean over seeds ({band})")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.8, 0.95))
    fig.savefig(path, dpi=110)
    return path


__all__ = ["plot_ablation_curves"]
