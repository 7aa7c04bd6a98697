"""The effective receptive field (ERF) of a sparse network at a chosen stage, as in RepLKNet (Ding et al., CVPR
2022) and LargeKernel3D (Chen et al., CVPR 2023): how strongly each input voxel moves one output site.

Definitions. The input has features ``x ∈ R^{N×C}`` on sites ``p_j`` (voxel coordinates), the stage's output
features ``y ∈ R^{M×C'}`` on sites ``q_i``. The contribution of input site ``j`` to output site ``i`` is

    g_i(j) = Σ_c | ∂(Σ_{c'} y_{i,c'}) / ∂x_{j,c} |

(the gradient of the channel-sum of the centre's features, in absolute value summed over the input channels).
Each centre's map is normalised to unit mass, ``ĝ_i(j) = g_i(j) / Σ_j g_i(j)`` (every centre counts the same,
whatever the scale of its activations), and the maps of the centres ``i ∈ I`` (drawn at random among the output
sites of each scene) are accumulated by offset from the centre:

    E(δ) = 1/|I| Σ_{i∈I} Σ_{j : p_j - π(q_i) = δ} ĝ_i(j),        Σ_δ E(δ) = 1,

where ``π(q)`` is the position of output site ``q`` on the input grid. Numbers taken from ``E``: the radius
``r_t = min{r : Σ_{|δ| ≤ r} E(δ) ≥ t}`` holding the fraction ``t`` of the mass (``|δ|`` the Euclidean length in
voxels, or in metres ``|δ ⊙ v|`` for the voxel size ``v``) and the share of the mass farther than ``d`` metres,
``Σ_{|δ ⊙ v| > d} E(δ)``.

Position of an output site ``π(q)``, per axis an affine map ``π(q) = a q + b`` traced by forward hooks on the
layers that change the sites, in execution order up to the stage (submanifold layers keep sites and positions):

* a regular conv or pool (kernel ``k``, stride ``s``, padding ``p``, dilation ``d``) reads the inputs
  ``s q - p + d m``, ``m = 0 .. k-1``; its output sits at the window centre: ``π'(q) = π(s q - p + d (k-1) / 2)``;
* a transposed conv writes ``s q - p + d m``: ``π'(o) = π((o + p - d (k-1) / 2) / s)``;
* an inverse conv restores the sites of the input of the regular conv with its ``indice_key``, and their
  positions.

For MinkUNet level ``l`` (``2³``/s2 down convs) this is ``π(q) = 2^l q + (2^l - 1) / 2``; for the detection
backbones' ``3³``/s2 convs with padding 1, ``π(q) = 2^l q``. Offsets are therefore multiples of half a voxel;
they are kept exactly (in half-voxel units).

One backward pass per centre (after one forward pass per scene, ``retain_graph``): the gradient of a sum over
several centres is the sum of their gradients, which cannot be split back per centre where the centres' supports
overlap — and at the stages worth analysing they do: the theoretical receptive field of a UNet output, or of an
encoder stage of LargeKernel3D-Seg (about 100 input voxels), covers a whole scene (one output voxel of MinkUNet34C
already has a non-zero gradient on every voxel of a ScanNet scene at 10 cm). Batching the centres as copies of
the scene along the batch axis would be exact but costs a forward pass per centre, more than the backward it
saves. The network runs in eval mode (BatchNorm with its running statistics, a per-site affine map, so sites do
not mix through batch statistics) with its parameters frozen (only the input gradient is computed); the forward
pass stops at the stage.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

OUTPUT_STAGE = "output"
"""The stage name that means the network's own output (no hook)."""
DEFAULT_FRACTIONS = (0.2, 0.5, 0.9)
DEFAULT_BEYOND_M = 0.5
_KEY_BITS = 21  # per axis, for packing half-voxel offsets into one int64


@dataclass(frozen=True)
class ERFResult:
    """The accumulated effective receptive field ``E(δ)`` of one network at one stage (module docstring).

    Attributes:
        label: a name for the network (e.g. ``"MinkUNet34C, random init"``).
        stage: the analysed module (``"output"``: the network's output).
        axes: names of the three coordinate axes in index order (``("x", "y", "z")`` for the segmentation
            tensors, ``("z", "y", "x")`` for the detection grids).
        voxel_size: metres per voxel along each index axis.
        offsets: float64 ``[K, 3]`` offsets ``δ`` from the centre in input voxels (multiples of 0.5), index order.
        mass: float64 ``[K]`` ``E(δ)``, summing to 1.
        centres: centres accumulated (with a non-zero gradient).
        skipped: centres left out because their gradient was zero (e.g. all channels cut by a ReLU).
        scenes: scenes (forward passes) used.
        stride: per index axis, input voxels per output voxel of the stage (``a`` of ``π``).
    """

    label: str
    stage: str
    axes: Tuple[str, str, str]
    voxel_size: Tuple[float, float, float]
    offsets: Tensor
    mass: Tensor
    centres: int
    skipped: int
    scenes: int
    stride: Tuple[float, float, float] = (1.0, 1.0, 1.0)

    def distances(self, unit: str = "voxel") -> Tensor:
        """Euclidean length of every offset, in voxels (``unit="voxel"``) or metres (``"m"``)."""
        if unit == "voxel":
            return self.offsets.norm(dim=1)
        if unit == "m":
            return (self.offsets * torch.tensor(self.voxel_size, dtype=torch.float64)).norm(dim=1)
        raise ValueError(f"unit must be 'voxel' or 'm', got {unit!r}")

    def radius(self, fraction: float, unit: str = "voxel") -> float:
        """``r_t`` for ``t = fraction``: the smallest radius holding that fraction of the mass."""
        return mass_radius(self.distances(unit), self.mass, fraction)

    def share_beyond(self, metres: float = DEFAULT_BEYOND_M) -> float:
        """Share of the mass at offsets longer than ``metres`` (by more than 1e-9 m: rounding of ``δ ⊙ v``)."""
        return float(self.mass[self.distances("m") > metres + 1e-9].sum() / self.mass.sum())

    def summary(self, fractions: Sequence[float] = DEFAULT_FRACTIONS, beyond_m: float = DEFAULT_BEYOND_M) -> Dict:
        """The numbers of the report: radii (voxels and metres) per fraction and the share beyond ``beyond_m``."""
        return {
            "label": self.label,
            "stage": self.stage,
            "centres": self.centres,
            "skipped_centres": self.skipped,
            "scenes": self.scenes,
            "axes": list(self.axes),
            "voxel_size_m": list(self.voxel_size),
            "stride": list(self.stride),
            "radius_voxels": {f"{round(100 * t)}%": self.radius(t, "voxel") for t in fractions},
            "radius_m": {f"{round(100 * t)}%": self.radius(t, "m") for t in fractions},
            f"share_beyond_{beyond_m:g}m": self.share_beyond(beyond_m),
        }

    def save(self, path) -> None:
        """Write the distribution and its metadata to an ``.npz`` file (read back with :meth:`load`)."""
        np.savez_compressed(
            path,
            offsets=self.offsets.numpy(),
            mass=self.mass.numpy(),
            label=self.label,
            stage=self.stage,
            axes=np.array(self.axes),
            voxel_size=np.array(self.voxel_size),
            counts=np.array([self.centres, self.skipped, self.scenes]),
            stride=np.array(self.stride),
        )

    @classmethod
    def load(cls, path) -> "ERFResult":
        """The result written by :meth:`save`."""
        with np.load(path) as f:
            c = [int(v) for v in f["counts"]]
            return cls(
                str(f["label"]),
                str(f["stage"]),
                tuple(str(a) for a in f["axes"]),
                tuple(float(v) for v in f["voxel_size"]),
                torch.from_numpy(f["offsets"]),
                torch.from_numpy(f["mass"]),
                c[0],
                c[1],
                c[2],
                tuple(float(v) for v in f["stride"]),
            )


def mass_radius(distances: Tensor, masses: Tensor, fraction: float) -> float:
    """``min{r : Σ_{d_k ≤ r} m_k ≥ fraction · Σ_k m_k}`` for masses ``m_k >= 0`` at distances ``d_k``.

    Exact: ``r`` is one of the distances (masses at equal distances count together)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    d = torch.as_tensor(distances, dtype=torch.float64).reshape(-1)
    m = torch.as_tensor(masses, dtype=torch.float64).reshape(-1)
    if d.shape != m.shape or d.numel() == 0:
        raise ValueError(
            f"distances and masses must be two non-empty vectors of one length, got {tuple(d.shape)} "
            f"and {tuple(m.shape)}"
        )
    if bool((m < 0).any()) or float(m.sum()) <= 0:
        raise ValueError("masses must be >= 0 with a positive total")
    uniq, inverse = torch.unique(d, return_inverse=True)  # sorted distances
    per = torch.zeros_like(uniq).index_add_(0, inverse, m)
    cum = per.cumsum(0)
    target = fraction * float(cum[-1])
    pos = int(torch.searchsorted(cum, torch.tensor([target * (1 - 1e-12)], dtype=torch.float64)).item())
    return float(uniq[min(pos, uniq.numel() - 1)])


# -- tracing the positions of output sites -------------------------------------------------------------------
@dataclass
class _Affine:
    scale: List[float]
    offset: List[float]


@dataclass
class _PositionTracer:
    """``π`` of the module docstring, updated by forward hooks in execution order."""

    ndim: int
    current: _Affine = field(init=False)
    saved: Dict[str, _Affine] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.current = _Affine([1.0] * self.ndim, [0.0] * self.ndim)

    def hook(self, module: nn.Module, _inputs, _output) -> None:
        g = module.geometry
        a, b = self.current.scale, self.current.offset
        if getattr(module, "inverse", False):
            key = module.indice_key
            if key not in self.saved:
                raise ValueError(
                    f"the inverse conv with indice_key {key!r} ran before its regular conv; the ERF "
                    f"positions cannot be traced"
                )
            self.current = _Affine(list(self.saved[key].scale), list(self.saved[key].offset))
            return
        k, s, p, d = g.kernel_size, g.stride, g.padding, g.dilation
        if getattr(module, "transposed", False):
            self.current = _Affine(
                [a[i] / s[i] for i in range(self.ndim)],
                [b[i] + a[i] * (p[i] - d[i] * (k[i] - 1) / 2) / s[i] for i in range(self.ndim)],
            )
            return
        if getattr(module, "indice_key", None) is not None:
            self.saved[module.indice_key] = _Affine(list(a), list(b))
        self.current = _Affine(
            [a[i] * s[i] for i in range(self.ndim)],
            [b[i] + a[i] * (d[i] * (k[i] - 1) / 2 - p[i]) for i in range(self.ndim)],
        )


def _site_changing(module: nn.Module) -> bool:
    # regular / transposed / inverse convs and pools (ours and spconv's carry `subm`); SW-LK and submanifold
    # layers keep their sites
    return hasattr(module, "geometry") and getattr(module, "subm", True) is False


class _StageReached(Exception):
    def __init__(self, output) -> None:
        super().__init__("stage reached")
        self.output = output


def stage_names(network: nn.Module) -> List[str]:
    """The names a stage can take: ``"output"`` and every named submodule of ``network``."""
    return [OUTPUT_STAGE] + [name for name, _ in network.named_modules() if name]


@contextlib.contextmanager
def _hooks(network: nn.Module, stage: str, tracer: _PositionTracer) -> Iterator[None]:
    handles = [m.register_forward_hook(tracer.hook) for m in network.modules() if _site_changing(m)]
    if stage != OUTPUT_STAGE:
        modules = dict(network.named_modules())
        if stage not in modules or not stage:
            near = [n for n in stage_names(network) if n.count(".") <= 1][:30]
            for h in handles:
                h.remove()
            raise ValueError(
                f"--stage {stage!r} is not a module of {type(network).__name__}; use 'output' or a "
                f"module name such as {near}"
            )

        def stop(_module, _inputs, output):
            raise _StageReached(output)

        handles.append(modules[stage].register_forward_hook(stop))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _run_to_stage(network: nn.Module, x, stage: str, tracer: _PositionTracer):
    with _hooks(network, stage, tracer):
        try:
            out = network(x)
        except _StageReached as reached:
            out = reached.output
    if not (hasattr(out, "features") and hasattr(out, "indices")):
        raise ValueError(
            f"stage {stage!r} of {type(network).__name__} returns {type(out).__name__}, not a sparse "
            f"tensor; choose a module whose output is a SparseConvTensor"
        )
    return out


def _forward(network: nn.Module, x, stage: str) -> Tuple[Tensor, object, Tensor, Tensor]:
    """``(input features with requires_grad, stage output, a, b)`` with ``π(q) = a q + b``."""
    feats = x.features.detach().clone().requires_grad_(True)
    tracer = _PositionTracer(x.indices.shape[1] - 1)
    xin = x.replace_feature(feats)
    xin.indice_dict = {}  # kernel maps of this pass only: another network may use the same keys differently
    out = _run_to_stage(network, xin, stage, tracer)
    return (
        feats,
        out,
        torch.tensor(tracer.current.scale, dtype=torch.float64),
        torch.tensor(tracer.current.offset, dtype=torch.float64),
    )


# -- accumulation --------------------------------------------------------------------------------------------
def _pack(keys: Tensor) -> Tensor:
    shift = 1 << (_KEY_BITS - 1)
    if bool((keys.abs() >= shift).any()):
        raise ValueError("offsets too large to pack (more than 2^19 voxels)")
    k = keys + shift
    return (k[:, 0] << (2 * _KEY_BITS)) | (k[:, 1] << _KEY_BITS) | k[:, 2]


def _unpack(packed: Tensor) -> Tensor:
    mask = (1 << _KEY_BITS) - 1
    cols = [(packed >> (2 * _KEY_BITS)) & mask, (packed >> _KEY_BITS) & mask, packed & mask]
    return torch.stack(cols, dim=1) - (1 << (_KEY_BITS - 1))


class _Accumulator:
    def __init__(self) -> None:
        self.keys: List[Tensor] = []
        self.mass: List[Tensor] = []

    def add(self, packed: Tensor, mass: Tensor) -> None:
        self.keys.append(packed)
        self.mass.append(mass)
        if len(self.keys) >= 16:
            self.reduce()

    def reduce(self) -> Tuple[Tensor, Tensor]:
        if not self.keys:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.float64)
        keys, inverse = torch.unique(torch.cat(self.keys), return_inverse=True)
        mass = torch.zeros(keys.numel(), dtype=torch.float64).index_add_(0, inverse, torch.cat(self.mass))
        self.keys, self.mass = [keys], [mass]
        return keys, mass


def centre_gradients(
    network: nn.Module, x, centres: Sequence[int], stage: str = OUTPUT_STAGE
) -> Tuple[Tensor, Tensor, Tensor]:
    """The raw maps ``g_i(j)`` of the module docstring.

    Args:
        network: takes ``x`` (its parameters should be frozen and BatchNorm in eval mode: see
            :func:`effective_receptive_field`).
        x: input sparse tensor (features ``[N, C]``, indices ``[N, 1 + 3]``).
        centres: rows ``i`` of the stage's output.
        stage: ``"output"`` or a module name of ``network``.

    Returns ``(g [len(centres), N] float64, positions [len(centres), 3] float64 = π(q_i), stride [3])``.
    """
    feats, out, scale, shift = _forward(network, x, stage)
    rows = []
    for c in centres:
        (grad,) = torch.autograd.grad(out.features[int(c)].sum(), feats, retain_graph=True, allow_unused=False)
        rows.append(grad.detach().abs().sum(dim=1).to(torch.float64))
    pos = out.indices[torch.as_tensor(list(centres), dtype=torch.long), 1:].to(torch.float64) * scale + shift
    g = torch.stack(rows) if rows else torch.zeros(0, feats.shape[0], dtype=torch.float64)
    return g, pos, scale


def effective_receptive_field(
    network: nn.Module,
    inputs: Iterable,
    stage: str = OUTPUT_STAGE,
    centres_per_scene: int = 64,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    axes: Sequence[str] = ("x", "y", "z"),
    label: str = "",
    seed: int = 0,
    progress: bool = True,
) -> ERFResult:
    """``E(δ)`` (module docstring) of ``network`` at ``stage`` over the scenes ``inputs``.

    Args:
        network: a module mapping a sparse tensor to a sparse tensor (a segmentation network, a detection
            backbone). It is put in eval mode and its parameters are frozen during the call (both restored).
        inputs: sparse tensors of batch size 1 (features ``[N, C]``, indices ``[N, 4]``).
        stage: ``"output"`` or the name of a submodule (``network.named_modules()``), e.g. ``"encoder.1"``
            (MinkUNet encoder stage 2) or ``"conv3"`` (detection backbone); its first call's output is analysed.
        centres_per_scene: output sites drawn at random (without replacement) per scene; all when fewer.
        voxel_size: metres per voxel along each index axis of the input.
        axes: the axis names in index order.
        label: stored in the result.
        seed: seeds the choice of the centres.
        progress: show a tqdm bar over the centres.
    """
    from tqdm.auto import tqdm

    if isinstance(centres_per_scene, bool) or not isinstance(centres_per_scene, int) or centres_per_scene < 1:
        raise ValueError(f"centres_per_scene must be a positive int, got {centres_per_scene!r}")
    voxel = tuple(float(v) for v in voxel_size)
    if len(voxel) != 3 or min(voxel) <= 0:
        raise ValueError(f"voxel_size must be 3 positive numbers (metres per index axis), got {voxel_size!r}")
    axes = tuple(str(a) for a in axes)
    if sorted(axes) != ["x", "y", "z"]:
        raise ValueError(f"axes must name x, y and z once each in index order, got {axes!r}")
    inputs = list(inputs)
    if not inputs:
        raise ValueError("inputs is empty: give at least one scene")
    was_training = network.training
    flags = [(p, p.requires_grad) for p in network.parameters()]
    acc, used, skipped, stride = _Accumulator(), 0, 0, (1.0, 1.0, 1.0)
    bar = tqdm(
        total=len(inputs) * centres_per_scene,
        desc=f"ERF {label or type(network).__name__}",
        disable=not progress,
        unit="centre",
    )
    try:
        network.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        for s, x in enumerate(inputs):
            if int(x.batch_size) != 1:
                raise ValueError(f"inputs[{s}] has batch_size {x.batch_size}; give one scene per sparse tensor")
            feats, out, scale, shift = _forward(network, x, stage)
            stride = tuple(float(v) for v in scale)
            gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + s)
            m = out.features.shape[0]
            chosen = torch.randperm(m, generator=gen)[:centres_per_scene]
            bar.total -= centres_per_scene - len(chosen)
            twice_in = 2 * x.indices[:, 1:].to(torch.int64)
            twice_pos = 2 * (out.indices[chosen.long(), 1:].to(torch.float64) * scale + shift)
            if bool((twice_pos != twice_pos.round()).any()):
                raise ValueError(
                    f"stage {stage!r}: output positions {twice_pos[0].tolist()} / 2 are not on the "
                    f"half-voxel lattice (a transposed conv with an odd window?); analyse another stage"
                )
            twice_pos = twice_pos.round().to(torch.int64)
            for i, c in enumerate(chosen.tolist()):
                (grad,) = torch.autograd.grad(out.features[c].sum(), feats, retain_graph=True)
                g = grad.detach().abs().sum(dim=1).to(torch.float64)
                total = float(g.sum())
                bar.update(1)
                if not math.isfinite(total) or total <= 0:
                    skipped += 1
                    continue
                nz = torch.nonzero(g).squeeze(1)
                acc.add(_pack(twice_in[nz] - twice_pos[i]), g[nz] / total)
                used += 1
            del out, feats
    finally:
        bar.close()
        network.train(was_training)
        for p, flag in flags:
            p.requires_grad_(flag)
    if used == 0:
        raise ValueError(
            f"every centre of stage {stage!r} had a zero gradient (e.g. all channels cut by a ReLU); "
            f"analyse another stage or more scenes"
        )
    keys, mass = acc.reduce()
    return ERFResult(
        label=label,
        stage=stage,
        axes=axes,
        voxel_size=voxel,
        offsets=_unpack(keys).to(torch.float64) / 2,
        mass=mass / used,
        centres=used,
        skipped=skipped,
        scenes=len(inputs),
        stride=stride,
    )


# -- dense views for the figure ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ERFPlanes:
    """Top-down views of ``E`` on a window of ``±half_width`` metres (arrays ``[n_y, n_x]``, row = y).

    Attributes:
        slice: ``E`` on the horizontal plane through the centre (mean of the two planes at ``±0.5`` voxel when
            the centre lies between planes).
        projection: ``E`` summed over z.
        extent: ``(x_min, x_max, y_min, y_max)`` in metres (pixel edges, for ``imshow``).
    """

    slice: np.ndarray
    projection: np.ndarray
    extent: Tuple[float, float, float, float]


def erf_planes(result: ERFResult, half_width_m: float) -> ERFPlanes:
    """The slice through the centre and the top-down projection of ``result`` within ``±half_width_m``."""
    order = [result.axes.index(a) for a in ("x", "y", "z")]
    twice = (result.offsets[:, order] * 2).round().to(torch.int64)
    parity = twice[0] % 2 if twice.numel() else torch.zeros(3, dtype=torch.int64)
    vs = [result.voxel_size[i] for i in order]
    cells = (twice - parity) // 2  # integer lattice; cell centre = cell + parity / 2
    half = [int(math.ceil(half_width_m / v)) for v in vs[:2]]
    keep = (cells[:, 0].abs() <= half[0]) & (cells[:, 1].abs() <= half[1])
    c, mass = cells[keep], result.mass[keep]
    shape = (2 * half[1] + 1, 2 * half[0] + 1)
    proj = np.zeros(shape)
    np.add.at(proj, ((c[:, 1] + half[1]).numpy(), (c[:, 0] + half[0]).numpy()), mass.numpy())
    planes = [0] if int(parity[2]) == 0 else [0, -1]  # z-cells at 0 (even) or at ±0.5 (odd parity)
    sl = np.zeros(shape)
    on = torch.isin(c[:, 2], torch.tensor(planes))
    np.add.at(sl, ((c[on, 1] + half[1]).numpy(), (c[on, 0] + half[0]).numpy()), mass[on].numpy() / len(planes))
    px, py = float(parity[0]) / 2, float(parity[1]) / 2
    extent = (
        (-half[0] - 0.5 + px) * vs[0],
        (half[0] + 0.5 + px) * vs[0],
        (-half[1] - 0.5 + py) * vs[1],
        (half[1] + 0.5 + py) * vs[1],
    )
    return ERFPlanes(slice=sl, projection=proj, extent=extent)


__all__ = [
    "ERFResult",
    "ERFPlanes",
    "OUTPUT_STAGE",
    "effective_receptive_field",
    "centre_gradients",
    "mass_radius",
    "erf_planes",
    "stage_names",
]
