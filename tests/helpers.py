"""Shared test helpers: random sparse tensors and the dense PyTorch references every sparse operator is
checked against.

Conventions (see ``largekernel3d.sparse.conv``): weights are ``[C_out, *kernel, C_in // groups]``.

* regular conv      ``out[q] = sum_k W[k] in[stride q - padding + dilation k]``  = ``F.convNd``
* submanifold conv  ``out[p] = sum_k W[k] in[p + dilation (k - kernel // 2)]``  = ``F.convNd`` with
  asymmetric zero padding ``(dilation * (k // 2), dilation * (k - 1 - k // 2))``, read at the input sites
* transposed conv   ``out[stride q - padding + dilation k] += W[k] in[q]``       = ``F.conv_transposeNd``
"""

from __future__ import annotations

import contextlib
import socket
import warnings
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from largekernel3d.sparse import SparseConvTensor, voxelize

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
KITTI_FRAME = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def as_tuple(v, ndim: int) -> Tuple[int, ...]:
    return (v,) * ndim if isinstance(v, int) else tuple(int(x) for x in v)


def random_sites(batch_size: int, spatial_shape: Sequence[int], num_sites: int, generator: torch.Generator) -> Tensor:
    """``num_sites`` distinct random sites ``[N, 1 + D]`` int32 (unsorted), batch index first."""
    cells = batch_size * int(np.prod(spatial_shape))
    num_sites = min(num_sites, cells)
    flat = torch.randperm(cells, generator=generator)[:num_sites]
    cols = []
    for s in reversed(list(spatial_shape)):
        cols.append(flat % s)
        flat = flat // s
    cols.append(flat)
    return torch.stack(cols[::-1], dim=1).to(torch.int32)


def random_sparse_tensor(
    spatial_shape: Sequence[int],
    channels: int,
    num_sites: Optional[int] = None,
    batch_size: int = 1,
    density: float = 0.3,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    requires_grad: bool = False,
) -> SparseConvTensor:
    """A random :class:`SparseConvTensor`: ``num_sites`` (or ``density`` of all cells) distinct sites in
    random order, standard-normal features."""
    g = torch.Generator().manual_seed(seed)
    if num_sites is None:
        num_sites = max(1, int(density * batch_size * int(np.prod(spatial_shape))))
    indices = random_sites(batch_size, spatial_shape, num_sites, g)
    features = torch.randn(indices.shape[0], channels, generator=g, dtype=dtype)
    features.requires_grad_(requires_grad)
    return SparseConvTensor(features, indices, list(spatial_shape), batch_size)


def random_weight(
    out_channels: int, kernel_size: Sequence[int], in_per_group: int, seed: int = 1, dtype: torch.dtype = torch.float64
) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out_channels, *kernel_size, in_per_group, generator=g, dtype=dtype)


def site_mask(indices: Tensor, batch_size: int, spatial_shape: Sequence[int]) -> Tensor:
    """Boolean dense ``[B, *spatial_shape]`` grid, True at ``indices``."""
    mask = torch.zeros((batch_size, *spatial_shape), dtype=torch.bool)
    mask[tuple(indices.long().t())] = True
    return mask


def gather_sites(dense: Tensor, indices: Tensor) -> Tensor:
    """Rows ``[N, C]`` of a channels-first dense ``[B, C, *spatial]`` tensor at ``indices``."""
    idx = indices.long()
    return dense.movedim(1, -1)[tuple(idx.t())]


def torch_weight(weight: Tensor) -> Tensor:
    """spconv layout ``[C_out, *kernel, C_in/G]`` → ``F.convNd`` layout ``[C_out, C_in/G, *kernel]``."""
    return weight.movedim(-1, 1)


def torch_transposed_weight(weight: Tensor, groups: int) -> Tensor:
    """spconv layout ``[C_out, *kernel, C_in/G]`` → ``F.conv_transposeNd`` layout ``[C_in, C_out/G, *kernel]``."""
    c_out, cig = weight.shape[0], weight.shape[-1]
    kernel = weight.shape[1:-1]
    nd = len(kernel)
    w = weight.reshape(groups, c_out // groups, *kernel, cig)
    w = w.permute(0, nd + 2, 1, *range(2, nd + 2))  # [G, C_in/G, C_out/G, *kernel]
    return w.reshape(groups * cig, c_out // groups, *kernel)


def dense_conv(
    x: SparseConvTensor, weight: Tensor, bias: Optional[Tensor], stride=1, padding=0, dilation=1, groups: int = 1
) -> Tensor:
    """Reference regular conv on the densified input: ``[B, C_out, *out_shape]``."""
    return _CONV[x.ndim](x.dense(), torch_weight(weight), bias, stride, padding, dilation, groups)


def dense_subm_conv(x: SparseConvTensor, weight: Tensor, bias: Optional[Tensor], dilation=1, groups: int = 1) -> Tensor:
    """Reference submanifold conv: zero-padded dense conv (asymmetric for even kernels) read at x's sites
    (``[N, C_out]`` in x's row order)."""
    nd = x.ndim
    ks = weight.shape[1:-1]
    dil = as_tuple(dilation, nd)
    pads = []
    for k, d in reversed(list(zip(ks, dil))):
        lo = d * (k // 2)
        pads += [lo, d * (k - 1) - lo]
    dense = F.pad(x.dense(), pads)
    out = _CONV[nd](dense, torch_weight(weight), bias, 1, 0, dil, groups)
    return gather_sites(out, x.indices)


def dense_conv_transpose(
    x: SparseConvTensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    output_padding=0,
) -> Tensor:
    """Reference transposed conv on the densified input: ``[B, C_out, *out_shape]``."""
    return _CONV_T[x.ndim](
        x.dense(), torch_transposed_weight(weight, groups), bias, stride, padding, output_padding, groups, dilation
    )


def reached_sites(
    x: SparseConvTensor, kernel_size, stride=1, padding=0, dilation=1, transposed: bool = False, output_padding=0
) -> Tensor:
    """Dense boolean ``[B, *out_shape]``: output cells a regular (or transposed) conv of x's sites reaches."""
    nd = x.ndim
    ones = torch.ones(1, 1, *as_tuple(kernel_size, nd), dtype=torch.float64)
    ind = site_mask(x.indices, x.batch_size, x.spatial_shape).unsqueeze(1).double()
    if transposed:
        hit = _CONV_T[nd](ind, ones, None, stride, padding, output_padding, 1, dilation)
    else:
        hit = _CONV[nd](ind, ones, None, stride, padding, dilation)
    return hit[:, 0] > 0.5


def dense_window_sum(x: SparseConvTensor, kernel_size, stride=1, padding=0, dilation=1) -> Tuple[Tensor, Tensor]:
    """Per output cell: sum of active input features under the window ``[B, C, *out]`` and the number of
    active inputs ``[B, *out]``."""
    nd = x.ndim
    c = x.features.shape[1]
    ks = as_tuple(kernel_size, nd)
    ones = torch.ones(c, 1, *ks, dtype=x.features.dtype)
    total = _CONV[nd](x.dense(), ones, None, stride, padding, dilation, c)
    ind = site_mask(x.indices, x.batch_size, x.spatial_shape).unsqueeze(1).to(x.features.dtype)
    count = _CONV[nd](ind, ones[:1], None, stride, padding, dilation)[:, 0]
    return total, count


def dense_max_pool(x: SparseConvTensor, kernel_size, stride, padding=0, dilation=1) -> Tensor:
    """Reference sparse max pool: dense max over the grid filled with ``-inf`` off the active sites."""
    dense = x.dense()
    mask = site_mask(x.indices, x.batch_size, x.spatial_shape).unsqueeze(1)
    filled = torch.where(mask, dense, torch.full_like(dense, float("-inf")))
    return _MAX_POOL[x.ndim](filled, kernel_size, stride, padding, dilation)


def kitti_sparse_tensor(
    channels: int = 4,
    voxel_size: float = 0.2,
    frames: Sequence[str] = ("000001",),
) -> Optional[SparseConvTensor]:
    """KITTI velodyne ``frames`` (one batch element each) cropped to x in [0, 40), y in [-20, 20),
    z in [-3, 1) m, voxelised by :func:`largekernel3d.sparse.voxelize` (mean of x, y, z, reflectance per
    voxel, then their squares up to ``channels``), as a float32 tensor on the grid [20, 200, 200] with
    (z, y, x) coordinates like spconv's detectors; ``None`` when the shared data is absent."""
    paths = [KITTI_FRAME.parent / f"{f}.bin" for f in frames]
    if not all(p.exists() for p in paths):
        return None
    lo, hi = torch.tensor([0.0, -20.0, -3.0]), torch.tensor([40.0, 20.0, 1.0])
    shape = [int(round(v)) for v in ((hi - lo) / voxel_size).flip(0).tolist()]
    all_feats, all_indices = [], []
    for b, path in enumerate(paths):
        points = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 4))
        points = points[((points[:, :3] >= lo) & (points[:, :3] < hi)).all(dim=1)]
        vox = voxelize(points[:, :3], voxel_size, features=points, origin=lo.tolist())
        zyx = vox.coords.flip(1).to(torch.int32)
        keep = (zyx < torch.tensor(shape, dtype=torch.int32)).all(dim=1)  # float rounding at the far edge
        feats = torch.cat([vox.features] + [vox.features ** (i + 2) for i in range(channels // 4)], dim=1)
        all_feats.append(feats[keep, :channels])
        all_indices.append(torch.cat([torch.full((int(keep.sum()), 1), b, dtype=torch.int32), zyx[keep]], dim=1))
    return SparseConvTensor(torch.cat(all_feats).contiguous(), torch.cat(all_indices).contiguous(), shape, len(paths))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gradcheck_sparse_module(module: torch.nn.Module, x: SparseConvTensor) -> bool:
    """``torch.autograd.gradcheck`` (fast mode) of ``module(x).features`` with respect to ``x.features`` and every
    parameter of ``module`` at once (the sites of ``x`` fixed); use float64 modules and inputs."""
    from torch.func import functional_call

    names = [n for n, _ in module.named_parameters()]
    inputs = [x.features.clone().requires_grad_(True)] + [
        p.detach().clone().requires_grad_(True) for p in module.parameters()
    ]

    def f(feats, *params):
        y = SparseConvTensor(feats, x.indices, x.spatial_shape, x.batch_size, validate=False)
        return functional_call(module, dict(zip(names, params)), (y,)).features

    return torch.autograd.gradcheck(f, inputs, fast_mode=True)


def optional_spconv():
    """``spconv.pytorch`` when it imports (its build helper's deprecation warning silenced), else ``None``: the
    comparison tests skip without it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import spconv.pytorch as spconv_pytorch
    except ImportError:
        return None
    return spconv_pytorch


def free_port() -> int:
    """A free TCP port on the loopback interface (for gloo process groups in tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
