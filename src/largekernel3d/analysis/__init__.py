"""Reports and pictures: the efficiency table, segmentation views (PLY / PNG), bird's-eye-view PNGs of LiDAR
frames with boxes, and self-contained HTML 3D views (WebGL, offline) for detection and segmentation."""

from .bev_view import render_bev
from .html_view import write_html_view
from .erf import ERFResult, effective_receptive_field
from .erf_plot import plot_erf_grid

__all__ = ["render_bev", "write_html_view", "ERFResult", "effective_receptive_field", "plot_erf_grid"]
