"""How far a segmentation UNet looks: the receptive-field radius, in level-0 voxels, of one output voxel.

Per axis, let an output voxel ``p`` (level 0) depend on the input voxels ``[lo(p), hi(p)]``. Walking the
network backwards from ``p`` with cell intervals ``[a, b]`` at the current level:

* a submanifold conv of radius ``r`` (``r = max(dilation * (k // 2))``; a residual block: ``r1 + r2``, its
  two convs in sequence) at level ``l``: ``[a - r, b + r]``;
* the inverse (up) conv into level ``l`` from ``l + 1``: ``[floor(a / 2), floor(b / 2)]``;
* the ``2³`` stride-2 down conv into level ``l + 1`` from ``l``: ``[2a, 2b + 1]``;
* a decoder stage reads both the up path and the skip of its level: the union (hull) of both.

The radius is ``R = max_p max(p - lo(p), hi(p) - p)`` over one period ``p = 0 .. 2^L - 1`` of the
``L``-level pyramid (the dependency pattern repeats with period ``2^L``). A prediction at voxel ``p`` is
therefore unchanged by any voxel farther than ``R`` voxels along some axis, which is what exact tiling
(:mod:`.tiling`) needs. For LargeKernel3D-Seg with the paper's ``7³`` kernels and MinkUNet34C depths this is
several hundred voxels: the deep levels dominate (a conv at level 4 adds ``16 r`` voxels).
"""

from __future__ import annotations

from typing import List, Tuple

from torch import nn


def conv_radius(module: nn.Module) -> int:
    """Radius (in sites of its own level) of one submanifold conv layer, also composite ones (SW-LK with its
    dilated branch: the larger of both; depth-wise + point-wise: the sum)."""
    own = 0
    k = getattr(module, "kernel_size", None)
    if k is not None:
        ks = (k,) * 3 if isinstance(k, int) else tuple(k)
        d = getattr(module, "dilation", None) or 1
        ds = (d,) * 3 if isinstance(d, int) else tuple(d)
        own = max(int(dd) * (int(kk) // 2) for kk, dd in zip(ks, ds))
        children = [conv_radius(c) for c in module.children()]
        return max([own, *children])  # parallel branches of one layer
    return sum((conv_radius(c) for c in module.children()), 0)  # a sequence of layers (depth-wise, point-wise)


def _stage_radius(stage: nn.Module) -> int:
    return sum(
        conv_radius(block.get_submodule("conv1")) + conv_radius(block.get_submodule("conv2"))
        for block in stage.children()
    )


def unet_radii(model: nn.Module) -> Tuple[int, List[int], List[int]]:
    """``(stem radius, encoder stage radii [levels 1..L], decoder stage radii [levels L-1..0])`` of a
    :class:`~largekernel3d.models.minkunet.MinkUNet`."""
    for name in ("stem", "encoder", "decoder", "down", "up"):
        if not hasattr(model, name):
            raise TypeError(
                f"receptive_field_radius needs a MinkUNet-style network (stem / down / encoder / up / "
                f"decoder), got {type(model).__name__} without {name!r}"
            )
    return (
        conv_radius(model.get_submodule("stem.conv")),
        [_stage_radius(s) for s in model.get_submodule("encoder").children()],
        [_stage_radius(s) for s in model.get_submodule("decoder").children()],
    )


def receptive_field_radius(model: nn.Module) -> int:
    """``R`` of the module docstring for a MinkUNet / LargeKernel3DSeg, in level-0 voxels."""
    stem, enc, dec = unet_radii(model)
    levels = len(enc)

    def encoder(level: int, a: int, b: int) -> Tuple[int, int]:
        if level == 0:
            return a - stem, b + stem
        r = enc[level - 1]
        a, b = a - r, b + r
        return encoder(level - 1, 2 * a, 2 * b + 1)

    def decoder(level: int, a: int, b: int) -> Tuple[int, int]:
        r = dec[levels - 1 - level]
        a, b = a - r, b + r
        skip = encoder(level, a, b)
        up = encoder(levels, a // 2, b // 2) if level == levels - 1 else decoder(level + 1, a // 2, b // 2)
        return min(skip[0], up[0]), max(skip[1], up[1])

    radius = 0
    for p in range(2**levels):
        lo, hi = decoder(0, p, p)
        radius = max(radius, p - lo, hi - p)
    return radius


__all__ = ["conv_radius", "unet_radii", "receptive_field_radius"]
