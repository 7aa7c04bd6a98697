"""Port an OpenPCDet-style sparse backbone from spconv by changing one import.

The network below is written the way OpenPCDet writes its 3D backbones (``SparseSequential`` blocks of
``SubMConv3d`` / ``SparseConv3d`` + ``BatchNorm1d`` + ``ReLU``, ``indice_key`` s shared per stage, a ``(3, 1, 1)``
output conv). Only the import differs::

    import spconv.pytorch as spconv          # before
    import largekernel3d.sparse as spconv    # after

The script voxelises a KITTI frame (or a generated point cloud when the shared data is absent), runs the
backbone, and, when spconv is installed, runs the same backbone built from spconv with the same weights and
compares the outputs.

    python examples/port_openpcdet_backbone.py [--frame PATH] [--voxel-size 0.2]
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

import largekernel3d.sparse as lk_spconv

DEFAULT_FRAME = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti" / "training" / "velodyne" / "000001.bin"
)


def block(
    spconv: types.ModuleType, conv_type: str, c_in: int, c_out: int, kernel_size, indice_key: str, stride=1, padding=0
) -> nn.Module:
    """conv + BatchNorm1d + ReLU, as OpenPCDet's ``post_act_block``."""
    if conv_type == "subm":
        conv = spconv.SubMConv3d(c_in, c_out, kernel_size, bias=False, indice_key=indice_key)
    else:
        conv = spconv.SparseConv3d(
            c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False, indice_key=indice_key
        )
    return spconv.SparseSequential(conv, nn.BatchNorm1d(c_out, eps=1e-3, momentum=0.01), nn.ReLU())


class SmallBackbone8x(nn.Module):
    """A reduced ``VoxelBackBone8x``: stride 8 in y/x, channels 16-32-64, ``spconv`` is the sparse library module."""

    def __init__(self, spconv: types.ModuleType, in_channels: int, sparse_shape) -> None:
        super().__init__()
        self.spconv = spconv
        self.sparse_shape = list(sparse_shape)
        self.conv_input = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, 16, 3, padding=1, bias=False, indice_key="subm1"),
            nn.BatchNorm1d(16, eps=1e-3, momentum=0.01),
            nn.ReLU(),
        )
        self.conv1 = block(spconv, "subm", 16, 16, 3, "subm1")
        self.conv2 = spconv.SparseSequential(
            block(spconv, "spconv", 16, 32, 3, "spconv2", 2, 1), block(spconv, "subm", 32, 32, 3, "subm2")
        )
        self.conv3 = spconv.SparseSequential(
            block(spconv, "spconv", 32, 64, 3, "spconv3", 2, 1), block(spconv, "subm", 64, 64, 3, "subm3")
        )
        self.conv4 = spconv.SparseSequential(
            block(spconv, "spconv", 64, 64, 3, "spconv4", 2, (0, 1, 1)), block(spconv, "subm", 64, 64, 3, "subm4")
        )
        self.conv_out = block(spconv, "spconv", 64, 64, (3, 1, 1), "spconv_down2", (2, 1, 1))

    def forward(self, voxel_features: torch.Tensor, voxel_coords: torch.Tensor, batch_size: int):
        x = self.spconv.SparseConvTensor(voxel_features, voxel_coords.int(), self.sparse_shape, batch_size)
        x = self.conv_input(x)
        for stage in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv_out):
            x = stage(x)
        return x


def load_points(frame: Optional[Path], seed: int = 0) -> torch.Tensor:
    """``[N, 4]`` (x, y, z, reflectance): the KITTI frame, or a generated ground plane with boxes."""
    if frame is not None and frame.exists():
        return torch.from_numpy(np.fromfile(frame, dtype=np.float32).reshape(-1, 4))
    g = torch.Generator().manual_seed(seed)
    ground = torch.rand(20000, 4, generator=g) * torch.tensor([40.0, 40.0, 0.1, 1.0]) - torch.tensor([0, 20, 1.7, 0])
    boxes = torch.rand(4000, 4, generator=g) * torch.tensor([4.0, 2.0, 1.5, 1.0]) + torch.tensor([10, -1, -1.6, 0])
    return torch.cat([ground, boxes])


def voxelize(points: torch.Tensor, voxel_size: float):
    """Mean point per voxel (``voxel_size`` in x and y, 0.1 m in z: 41 z cells) in the range x [0, 40), y [-20, 20),
    z [-3, 1); ``(features, coords (b, z, y, x), spatial_shape)`` with ``spatial_shape`` one cell larger in z, as
    OpenPCDet's ``grid_size[::-1] + [1, 0, 0]``."""
    lo, hi = torch.tensor([0.0, -20.0, -3.0]), torch.tensor([40.0, 20.0, 1.0])
    size = torch.tensor([voxel_size, voxel_size, 0.1])
    points = points[((points[:, :3] >= lo) & (points[:, :3] < hi)).all(dim=1)]
    grid = [int(round(v)) for v in ((hi - lo) / size).tolist()]
    vox = lk_spconv.voxelize(points[:, :3], size.tolist(), features=points, origin=lo.tolist())
    zyx = vox.coords.flip(1).to(torch.int32)
    keep = (zyx < torch.tensor(grid[::-1], dtype=torch.int32)).all(dim=1)
    coords = torch.cat([torch.zeros(int(keep.sum()), 1, dtype=torch.int32), zyx[keep]], dim=1)
    return vox.features[keep].contiguous(), coords, [grid[2] + 1, grid[1], grid[0]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", type=Path, default=DEFAULT_FRAME)
    parser.add_argument("--voxel-size", type=float, default=0.2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    feats, coords, shape = voxelize(load_points(args.frame), args.voxel_size)
    ours = SmallBackbone8x(lk_spconv, 4, shape).eval()
    with torch.no_grad():
        out = ours(feats, coords, 1)
    print(
        f"voxels {coords.shape[0]} on {shape} -> {out.indices.shape[0]} sites, {out.features.shape[1]} channels, "
        f"grid {out.spatial_shape}"
    )
    try:
        import spconv.pytorch as spconv
    except ImportError:
        print("spconv is not installed: skipped the comparison")
        print("OK")
        return 0
    theirs = SmallBackbone8x(spconv, 4, shape).eval()
    theirs.load_state_dict(ours.state_dict())  # one state-dict format for both libraries
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv's CPU kernels give wrong sums on more than one torch thread
    with torch.no_grad():
        ref = theirs(feats, coords, 1)
    torch.set_num_threads(threads)
    a, b = out.dense(), ref.dense()
    err = float((a - b).abs().max() / b.abs().max())
    print(
        f"spconv {spconv.__name__}: same output grid {list(ref.spatial_shape) == out.spatial_shape}, "
        f"max relative difference {err:.2e}"
    )
    if list(ref.spatial_shape) != out.spatial_shape or err > 1e-4:
        print("MISMATCH")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
