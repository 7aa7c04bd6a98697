"""Convert a plain 7x7x7 submanifold conv into a spatial-wise large-kernel (SW-LK) layer and back.

``swlk_from_plain`` replaces the 343 per-offset weights by the means over the SW-LK groups (the official
``convert_weights.py``): exact for a weight that is constant over every group, an approximation otherwise.
``to_submconv`` expands the groups back into a plain layer that spconv (or this engine) can run.

    python examples/convert_plain_to_swlk.py [--sites 600]
"""

from __future__ import annotations

import argparse
import time

import torch

import largekernel3d.sparse as spconv
from largekernel3d.nn import SpatialPartition, swlk_from_plain, to_submconv
from largekernel3d.nn.convert import plain_from_grouped


def random_input(sites: int, channels: int, size: int = 24, seed: int = 0) -> spconv.SparseConvTensor:
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(size**3, generator=g)[:sites]
    idx = torch.stack([torch.zeros_like(flat), flat // size**2, flat // size % size, flat % size], dim=1).int()
    return spconv.SparseConvTensor(torch.randn(sites, channels, generator=g), idx, [size] * 3, 1)


def timed(layer, x) -> tuple:
    with torch.no_grad():
        layer(x)  # kernel map and weight layout built once
        t = time.perf_counter()
        out = layer(x).features
    return out, (time.perf_counter() - t) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=600)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    c = args.channels
    x = random_input(args.sites, c)
    plain = spconv.SubMConv3d(c, c, 7, bias=True, indice_key="k7").eval()

    # a weight that is constant over the groups converts exactly
    partition = SpatialPartition.create(7, "center1")
    with torch.no_grad():
        plain.weight.copy_(plain_from_grouped(torch.randn(partition.num_groups, c, c) * 0.05, partition))
    swlk = swlk_from_plain(plain, indice_key="k7").eval()
    ref, t_plain = timed(plain, x)
    out, t_swlk = timed(swlk, x)
    exact = float((out - ref).abs().max() / ref.abs().max())
    print(
        f"group-constant 7^3 weight: {partition.num_groups} groups, max relative difference {exact:.1e} "
        f"(plain {t_plain:.1f} ms, SW-LK {t_swlk:.1f} ms)"
    )

    # a general weight: the group means approximate it
    with torch.no_grad():
        plain.weight.normal_(0, 0.05)
    approx = swlk_from_plain(plain, indice_key="k7").eval()
    ref, _ = timed(plain, x)
    out, _ = timed(approx, x)
    rel = float((out - ref).norm() / ref.norm())
    print(f"random 7^3 weight: relative error of the group-mean approximation {rel:.2f}")

    # back to a plain layer, which runs anywhere spconv runs
    back = to_submconv(approx, indice_key="k7").eval()
    back_out, _ = timed(back, x)
    round_trip = float((back_out - out).abs().max() / out.abs().max())
    print(f"SW-LK -> plain SubMConv3d: max relative difference {round_trip:.1e}")
    if exact > 1e-5 or round_trip > 1e-5:
        print("MISMATCH")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
