"""Load a spconv checkpoint into the same network built from ``largekernel3d.sparse``.

spconv >= 2.2 checkpoints load with plain ``load_state_dict`` (the state-dict format is the same, 1x1 layers
included); spconv 2.1 checkpoints, whose native-algorithm layers stored ``[*kernel, C_out, C_in]``, load with
``load_spconv_state_dict(..., spconv_version="2.1")``. Writing such a 2.1 weight straight into ``.weight.data``
is refused with a message naming the converter.

The script builds a small network with spconv (when installed) and saves its checkpoint, loads it into our
build of the network and compares the outputs; it then writes the same weights in spconv 2.1's layout and loads
those. Without spconv it writes the checkpoint from our own build.

    python examples/load_spconv_checkpoint.py [--sites 400]
"""

from __future__ import annotations

import argparse
import io
import types

import torch
from torch import nn

import largekernel3d.sparse as lk_spconv
from largekernel3d.sparse.spconv_compat import spconv_uses_matmul_path


def build(spconv: types.ModuleType) -> nn.Module:
    """A stem, a strided conv, a 1x1 conv (the layer kind spconv reads as a plain matrix) and an inverse conv."""
    return spconv.SparseSequential(
        spconv.SubMConv3d(3, 8, 3, bias=False, indice_key="s1"),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        spconv.SparseConv3d(8, 16, 3, stride=2, padding=1, bias=False, indice_key="down"),
        nn.ReLU(),
        spconv.SubMConv3d(16, 16, 1, bias=False, indice_key="s2"),
        spconv.SparseInverseConv3d(16, 8, 3, indice_key="down", bias=False),
    )


def random_input(library: types.ModuleType, sites: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(16**3, generator=g)[:sites]
    idx = torch.stack([torch.zeros_like(flat), flat // 256, flat // 16 % 16, flat % 16], dim=1).int()
    return library.SparseConvTensor(torch.randn(sites, 3, generator=g), idx, [16, 16, 16], 1)


def to_rskc(state: dict, net: nn.Module) -> dict:
    """The state dict as spconv 2.1 wrote it for native-algorithm layers: every conv weight ``[*kernel, C_out,
    C_in]`` (1x1 layers keep the memory spconv reads as a matrix)."""
    out = dict(state)
    for name, module in net.named_modules():
        if isinstance(module, lk_spconv.SparseConvolution) and not spconv_uses_matmul_path(module):
            w = out[f"{name}.weight"]
            out[f"{name}.weight"] = w.permute(*range(1, w.dim() - 1), 0, w.dim() - 1).contiguous()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=400)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    try:
        import spconv.pytorch as spconv
    except ImportError:
        spconv = None
    source = build(spconv if spconv is not None else lk_spconv).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        source[1].running_mean.uniform_(-0.5, 0.5)
        source[1].running_var.uniform_(0.5, 2.0)
    buf = io.BytesIO()
    torch.save(source.state_dict(), buf)  # the checkpoint
    buf.seek(0)
    checkpoint = torch.load(buf)

    ours = build(lk_spconv).eval()
    ours.load_state_dict(checkpoint)
    with torch.no_grad():
        out = ours(random_input(lk_spconv, args.sites)).features
    print(
        f"loaded a {'spconv' if spconv is not None else 'largekernel3d'} checkpoint with load_state_dict: "
        f"{len(checkpoint)} entries, output {tuple(out.shape)}"
    )
    if spconv is not None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # spconv's CPU kernels give wrong sums on more than one torch thread
        with torch.no_grad():
            ref = source(random_input(spconv, args.sites)).features
        torch.set_num_threads(threads)
        err = float((out - ref).abs().max() / ref.abs().max())
        print(f"spconv's output vs ours: max relative difference {err:.2e}")
        if err > 1e-5:
            print("MISMATCH")
            return 1

    old = to_rskc(checkpoint, ours)
    try:
        ours[0].weight.data = old["0.weight"]
        ours(random_input(lk_spconv, args.sites))
    except ValueError as err:
        print(f"writing a spconv 2.1 weight into .weight.data is refused: {str(err)[:90]}...")
    else:
        print("a spconv 2.1 weight was accepted as it is: MISMATCH")
        return 1
    again = build(lk_spconv).eval()
    lk_spconv.load_spconv_state_dict(again, old, spconv_version="2.1")
    with torch.no_grad():
        out21 = again(random_input(lk_spconv, args.sites)).features
    same = torch.allclose(out21, out, atol=1e-6)
    print(f"spconv 2.1 layout loaded with load_spconv_state_dict(spconv_version='2.1'): same output {same}")
    if not same:
        print("MISMATCH")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
