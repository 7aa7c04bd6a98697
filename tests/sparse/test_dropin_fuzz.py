"""Malformed weights, features, indices, kernel maps and group tables fed into every public op of the engine.

Each case must either raise ``TypeError``/``ValueError`` or return the correct result (checked against a dense
PyTorch reference). The engine's CPU kernels take raw pointers, so a missing check shows up as a crash of the
interpreter: the cases therefore run in a child process (this file run as a script), which prints one line per
case; the test fails on a crash (naming the case that was running) or on any case that did not behave.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

ACCEPTED = (TypeError, ValueError)
CASES: List[Tuple[str, str, Callable[[], object]]] = []


def error_case(fn: Callable[[], object]) -> Callable[[], object]:
    """The call must raise ``TypeError`` or ``ValueError``."""
    CASES.append((fn.__name__, "error", fn))
    return fn


def result_case(fn: Callable[[], object]) -> Callable[[], object]:
    """The call must succeed and return ``True`` (it compares itself with a reference)."""
    CASES.append((fn.__name__, "result", fn))
    return fn


# -- inputs -------------------------------------------------------------------------------------------------
def _sites(n: int = 80, shape=(8, 8, 8), batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cells = batch * int(np.prod(shape))
    flat = torch.randperm(cells, generator=g)[:n]
    cols = []
    for s in reversed(shape):
        cols.append(flat % s)
        flat = flat // s
    cols.append(flat)
    return torch.stack(cols[::-1], dim=1).to(torch.int32)


def _tensor(c: int = 4, dtype=torch.float32, seed: int = 0):
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites(seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    return SparseConvTensor(torch.randn(idx.shape[0], c, generator=g, dtype=dtype), idx, [8, 8, 8], 2)


def _subm(k: int = 7, c_in: int = 4, c_out: int = 4, **kw):
    from largekernel3d.sparse import SubMConv3d

    torch.manual_seed(3)
    return SubMConv3d(c_in, c_out, k, **kw).eval()


def _dense_subm(x, weight, bias) -> torch.Tensor:
    """Reference submanifold conv (odd kernel): zero-padded ``F.conv3d`` read at the sites."""
    k = weight.shape[1]
    out = torch.nn.functional.conv3d(x.dense(), weight.movedim(-1, 1), bias, padding=k // 2)
    idx = x.indices.long()
    return out.movedim(1, -1)[tuple(idx.t())]


def _run(module, x):
    with torch.no_grad():
        return module(x)


def _kmap(k: int = 3):
    from largekernel3d.sparse import ConvGeometry, build_submanifold_map

    x = _tensor()
    return x, build_submanifold_map(x.indices, x.spatial_shape, x.batch_size, ConvGeometry.create(3, k))


def _forged(changes):
    """A hand-made kernel map: a valid 3^3 map with the fields ``changes(fields)`` returns replaced (it may also
    edit the cloned pair lists in place)."""
    import dataclasses

    x, kmap = _kmap()
    fields = {f.name: getattr(kmap, f.name) for f in dataclasses.fields(kmap) if f.init}
    fields["stored_in"], fields["stored_out"] = kmap.pair_in.clone(), kmap.pair_out.clone()
    fields["half_stored"] = False
    fields.update(changes(fields))
    return x, type(kmap)(**fields)


# -- conv weights ---------------------------------------------------------------------------------------------
@error_case
def conv_weight_small_kernel_on_7_layer():
    conv = _subm(7)
    conv.weight.data = torch.randn(4, 3, 3, 3, 4)
    _run(conv, _tensor())


@error_case
def conv_weight_spconv21_layout():
    conv = _subm(7, 4, 6)
    conv.weight.data = torch.randn(7, 7, 7, 6, 4)
    _run(conv, _tensor())


@error_case
def conv_weight_spconv21_layout_square_channels():
    conv = _subm(7, 4, 4)
    conv.weight.data = torch.randn(7, 7, 7, 4, 4)  # same numel, other shape
    _run(conv, _tensor())


@error_case
def conv_weight_four_dims():
    conv = _subm(3)
    conv.weight.data = torch.randn(4, 27, 4)
    _run(conv, _tensor())


@error_case
def conv_weight_wrong_in_channels():
    conv = _subm(3)
    conv.weight.data = torch.randn(4, 3, 3, 3, 2)
    _run(conv, _tensor())


@error_case
def conv_weight_wrong_out_channels():
    conv = _subm(3)
    conv.weight.data = torch.randn(9, 3, 3, 3, 4)
    _run(conv, _tensor())


@error_case
def conv_weight_float64_on_float32():
    conv = _subm(3)
    conv.weight.data = torch.randn(4, 3, 3, 3, 4, dtype=torch.float64)
    _run(conv, _tensor())


@error_case
def conv_weight_integer():
    conv = _subm(3)
    conv.weight = torch.nn.Parameter(torch.randint(0, 3, (4, 3, 3, 3, 4)), requires_grad=False)
    _run(conv, _tensor())


@error_case
def conv_bias_wrong_length():
    conv = _subm(3)
    conv.bias.data = torch.randn(5)
    _run(conv, _tensor())


@error_case
def conv_bias_two_dims():
    conv = _subm(3)
    conv.bias.data = torch.randn(4, 1)
    _run(conv, _tensor())


@error_case
def strided_conv_weight_wrong_kernel():
    from largekernel3d.sparse import SparseConv3d

    conv = SparseConv3d(4, 4, 3, stride=2, padding=1).eval()
    conv.weight.data = torch.randn(4, 2, 2, 2, 4)
    _run(conv, _tensor())


@error_case
def inverse_conv_weight_wrong_kernel():
    from largekernel3d.sparse import SparseConv3d, SparseInverseConv3d

    down = SparseConv3d(4, 4, 3, stride=2, padding=1, indice_key="d").eval()
    up = SparseInverseConv3d(4, 4, 3, indice_key="d").eval()
    up.weight.data = torch.randn(4, 5, 5, 5, 4)
    _run(up, _run(down, _tensor()))


@error_case
def grouped_conv_weight_wrong_group_width():
    conv = _subm(3, 4, 4, groups=2)
    conv.weight.data = torch.randn(4, 3, 3, 3, 4)
    _run(conv, _tensor())


@result_case
def conv_weight_non_contiguous():
    conv = _subm(3)
    w = torch.randn(4, 3, 3, 3, 4).transpose(0, 4)  # same shape, other strides
    conv.weight.data = w
    x = _tensor()
    return torch.allclose(_run(conv, x).features, _dense_subm(x, w.contiguous(), conv.bias), atol=1e-5)


@result_case
def conv_weight_non_contiguous_training():
    conv = _subm(5).train()
    w = torch.randn(4, 5, 5, 5, 4).transpose(0, 4)
    conv.weight.data = w
    x = _tensor()
    feats = x.features.clone().requires_grad_(True)
    out = conv(x.replace_feature(feats)).features
    out.square().sum().backward()
    ref_f = x.features.clone().requires_grad_(True)
    ref_w = w.contiguous().requires_grad_(True)
    ref = _dense_subm(x.replace_feature(ref_f), ref_w, conv.bias.detach())
    ref.square().sum().backward()
    return (
        torch.allclose(out, ref, atol=1e-4)
        and torch.allclose(feats.grad, ref_f.grad, atol=1e-3)
        and torch.allclose(conv.weight.grad, ref_w.grad, atol=1e-3)
    )


# -- features and sites ---------------------------------------------------------------------------------------
@error_case
def conv_features_one_dim():
    x = _tensor()
    x._features = x.features[:, 0]
    _run(_subm(3, 1, 4), x)


@error_case
def conv_features_three_dims():
    x = _tensor()
    x._features = x.features.unsqueeze(2)
    _run(_subm(3), x)


@error_case
def conv_features_integer():
    x = _tensor()
    x._features = x.features.to(torch.int32)
    _run(_subm(3), x)


@error_case
def conv_features_too_few_rows():
    x = _tensor()
    x._features = x.features[:-5]
    _run(_subm(7), x)


@error_case
def conv_features_too_many_rows_unvalidated():
    from largekernel3d.sparse import SparseConvTensor

    x = _tensor()
    y = SparseConvTensor(torch.randn(500, 4), x.indices, x.spatial_shape, x.batch_size, validate=False)
    _run(_subm(7), y)


@error_case
def features_setter_not_a_tensor():
    x = _tensor()
    x.features = np.zeros((x.indices.shape[0], 4), np.float32)


@result_case
def conv_features_non_contiguous():
    x = _tensor(8)
    y = x.replace_feature(x.features[:, ::2])
    conv = _subm(3)
    return torch.allclose(_run(conv, y).features, _dense_subm(y, conv.weight, conv.bias), atol=1e-5)


@error_case
def sites_out_of_range_unvalidated():
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites()
    idx[3, 2] = 40
    _run(_subm(7), SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))


@error_case
def sites_negative_unvalidated():
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites()
    idx[5, 3] = -3
    _run(_subm(7), SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))


@error_case
def sites_batch_out_of_range_unvalidated():
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites()
    idx[0, 0] = 7
    _run(_subm(3), SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))


@error_case
def sites_out_of_range_strided_unvalidated():
    from largekernel3d.sparse import SparseConv3d, SparseConvTensor

    idx = _sites()
    idx[3, 1] = 1000
    _run(
        SparseConv3d(4, 4, 3, stride=2).eval(),
        SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False),
    )


@error_case
def sites_float_unvalidated():
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites().float()
    _run(_subm(3), SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))


@error_case
def sites_wrong_width_unvalidated():
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites()[:, :3]
    _run(_subm(3), SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))


@result_case
def sites_duplicate_unvalidated():
    """Duplicated sites (unchecked) give some finite result or an error, never a crash."""
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites()
    idx[1] = idx[0]
    out = _run(_subm(7), SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))
    return bool(torch.isfinite(out.features).all())


@error_case
def sites_replaced_after_construction():
    x = _tensor()
    bad = x.indices.clone()
    bad[0, 1] = 99
    x.indices = bad
    _run(_subm(7), x)


@error_case
def spatial_shape_one_too_small():
    from largekernel3d.sparse import SparseConvTensor

    idx = _sites()
    SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, int(idx[:, 3].max())], 2)


@error_case
def pool_features_integer():
    from largekernel3d.sparse import SparseMaxPool3d

    x = _tensor()
    x._features = x.features.to(torch.int64)
    SparseMaxPool3d(3, 2)(x)


@error_case
def pool_sites_out_of_range_unvalidated():
    from largekernel3d.sparse import SparseConvTensor, SparseMaxPool3d

    idx = _sites()
    idx[4, 1] = 77
    SparseMaxPool3d(3, 2)(SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [8, 8, 8], 2, validate=False))


@error_case
def build_map_sites_out_of_range():
    from largekernel3d.sparse import ConvGeometry, build_submanifold_map

    idx = _sites()
    idx[2, 2] = 8
    build_submanifold_map(idx, [8, 8, 8], 2, ConvGeometry.create(3, 7))


@error_case
def build_map_sites_one_dim():
    from largekernel3d.sparse import ConvGeometry, build_regular_map

    build_regular_map(_sites()[:, 0], [8, 8, 8], 2, ConvGeometry.create(3, 3, 2))


@error_case
def build_transposed_map_batch_out_of_range():
    from largekernel3d.sparse import ConvGeometry, build_transposed_map

    idx = _sites()
    idx[2, 0] = -1
    build_transposed_map(idx, [8, 8, 8], 2, ConvGeometry.create(3, 3, 2))


# -- kernel maps ---------------------------------------------------------------------------------------------
@error_case
def sparse_conv_map_of_other_kernel():
    from largekernel3d.sparse import sparse_conv

    x, kmap = _kmap(3)
    sparse_conv(x.features, torch.randn(4, 7, 7, 7, 4), kmap)


@error_case
def sparse_conv_map_of_other_sites():
    from largekernel3d.sparse import sparse_conv

    _, kmap = _kmap(3)
    sparse_conv(torch.randn(10, 4), torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def sparse_conv_not_a_map():
    from largekernel3d.sparse import sparse_conv

    x = _tensor()
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), {"pairs": None})


@error_case
def sparse_conv_groups_not_dividing():
    from largekernel3d.sparse import sparse_conv

    x, kmap = _kmap(3)
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap, groups=3)


@error_case
def forged_map_pair_out_of_range():
    from largekernel3d.sparse import sparse_conv

    def change(f):
        f["stored_in"][7] = 10**6
        return {}

    x, kmap = _forged(change)
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def forged_map_negative_output_row():
    from largekernel3d.sparse import sparse_conv

    def change(f):
        f["stored_out"][-1] = -2
        return {}

    x, kmap = _forged(change)
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def forged_map_starts_past_pairs():
    from largekernel3d.sparse import sparse_conv

    x, kmap = _forged(lambda f: {"offset_starts": tuple(f["offset_starts"][:-1]) + (f["offset_starts"][-1] + 50,)})
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def forged_map_starts_decreasing():
    from largekernel3d.sparse import sparse_conv

    def change(f):
        s = list(f["offset_starts"])
        s[5], s[6] = s[6], s[5] - 1
        return {"offset_starts": tuple(s)}

    x, kmap = _forged(change)
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def forged_map_too_few_offsets():
    from largekernel3d.sparse import sparse_conv

    x, kmap = _forged(lambda f: {"offset_starts": tuple(f["offset_starts"][:10]) + (f["offset_starts"][-1],)})
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def forged_map_float_pairs():
    from largekernel3d.sparse import sparse_conv

    x, kmap = _forged(lambda f: {"stored_in": f["stored_in"].double()})
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@error_case
def forged_map_pair_lengths_differ():
    from largekernel3d.sparse import sparse_conv

    x, kmap = _forged(lambda f: {"stored_out": f["stored_out"][:-3]})
    sparse_conv(x.features, torch.randn(4, 3, 3, 3, 4), kmap)


@result_case
def forged_map_int32_pairs():
    """int32 pair lists are read as int64 (or refused), never as raw int64 memory."""
    from largekernel3d.sparse import sparse_conv

    x, good = _kmap(3)
    _, kmap = _forged(lambda f: {"stored_in": f["stored_in"].int(), "stored_out": f["stored_out"].int()})
    w = torch.randn(4, 3, 3, 3, 4)
    with torch.no_grad():
        try:
            out = sparse_conv(x.features, w, kmap)
        except ACCEPTED:
            return True
        return torch.allclose(out, sparse_conv(x.features, w, good), atol=1e-5)


# -- SW-LK group convolution ---------------------------------------------------------------------------------
def _group_inputs(k: int = 7):
    from largekernel3d.nn.partition import SpatialPartition

    x, kmap = _kmap(k)
    part = SpatialPartition.create(k, "center1")
    g = part.num_groups
    return x, kmap, part.group_index(), g


@error_case
def group_conv_weight_wrong_groups():
    from largekernel3d.sparse.group_conv import group_conv

    x, kmap, gi, g = _group_inputs()
    with torch.no_grad():
        group_conv(x.features, None, torch.randn(g - 3, 4, 4), kmap, gi)


@error_case
def group_conv_group_index_out_of_range():
    from largekernel3d.sparse.group_conv import group_conv

    x, kmap, gi, g = _group_inputs()
    gi = gi.clone()
    gi[11] = g + 40
    with torch.no_grad():
        group_conv(x.features, None, torch.randn(g, 4, 4), kmap, gi)


@error_case
def group_conv_group_index_negative():
    from largekernel3d.sparse.group_conv import group_conv

    x, kmap, gi, g = _group_inputs()
    gi = gi.clone()
    gi[0] = -1
    with torch.no_grad():
        group_conv(x.features, None, torch.randn(g, 4, 4), kmap, gi)


@error_case
def group_conv_group_index_float():
    from largekernel3d.sparse.group_conv import group_conv

    x, kmap, gi, g = _group_inputs()
    with torch.no_grad():
        group_conv(x.features, None, torch.randn(g, 4, 4), kmap, gi.double() + 0.5)


@error_case
def group_conv_encoding_wrong_shape():
    from largekernel3d.sparse.group_conv import group_conv

    x, kmap, gi, g = _group_inputs()
    with torch.no_grad():
        group_conv(x.features, torch.randn(27, 4), torch.randn(g, 4, 4), kmap, gi)


@error_case
def group_conv_features_integer():
    from largekernel3d.sparse.group_conv import group_conv

    x, kmap, gi, g = _group_inputs()
    with torch.no_grad():
        group_conv(x.features.int(), None, torch.randn(g, 4, 4).int(), kmap, gi)


@error_case
def group_conv_forged_map():
    from largekernel3d.nn.partition import SpatialPartition
    from largekernel3d.sparse.group_conv import group_conv

    def change(f):
        f["stored_out"][3] = 5000
        return {}

    x, kmap = _forged(change)
    part = SpatialPartition.create(3, "center1")
    with torch.no_grad():
        group_conv(x.features, None, torch.randn(part.num_groups, 4, 4), kmap, part.group_index())


@error_case
def group_aggregate_num_groups_too_small():
    from largekernel3d.sparse.group_conv import group_aggregate

    x, kmap, gi, g = _group_inputs()
    with torch.no_grad():
        group_aggregate(x.features, None, kmap, gi, g - 1)


@error_case
def swlk_weight_too_few_groups():
    from largekernel3d.nn.swlk_conv import SWLKConv3d

    layer = SWLKConv3d(4, 4, 7).eval()
    layer.weight.data = torch.randn(layer.num_groups - 2, 4, 4)
    _run(layer, _tensor())


# -- point input ----------------------------------------------------------------------------------------------
@error_case
def voxelize_points_one_dim():
    from largekernel3d.sparse import voxelize

    voxelize(torch.randn(30), 0.5)


@error_case
def voxelize_negative_voxel_size():
    from largekernel3d.sparse import voxelize

    voxelize(torch.randn(30, 4), -0.5)


@error_case
def batch_sparse_length_mismatch():
    from largekernel3d.sparse import batch_sparse

    batch_sparse([torch.zeros(3, 3, dtype=torch.int32)], [torch.randn(3, 2), torch.randn(3, 2)], [4, 4, 4])


def main(names: List[str]) -> None:
    """Run the named cases (all when none are named), printing a start line and a result line per case."""
    torch.set_num_threads(2)
    for name, kind, fn in CASES:
        if names and name not in names:
            continue
        print(json.dumps({"start": name}), flush=True)
        try:
            value = fn()
        except ACCEPTED as err:
            status = "ok" if kind == "error" else f"raised {type(err).__name__}: {err}"
        except Exception as err:  # noqa: BLE001 - any other exception type is a finding
            status = f"raised {type(err).__name__}: {err}"
        else:
            status = "ok" if (kind == "result" and value is True) else f"returned {value!r} (expected {kind})"
        print(json.dumps({"case": name, "status": status}), flush=True)


def _run_children() -> Tuple[Dict[str, str], Dict[str, str]]:
    """Run every case in child processes; after a crash, go on with the cases after the one that crashed.
    Returns ``(statuses, crashes)`` (crashes: case name -> exit code and stderr tail)."""
    remaining = [name for name, _, _ in CASES]
    statuses: Dict[str, str] = {}
    crashes: Dict[str, str] = {}
    while remaining:
        proc = subprocess.run([sys.executable, __file__, *remaining], capture_output=True, text=True, timeout=600)
        started = []
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                if "start" in rec:
                    started.append(rec["start"])
                else:
                    statuses[rec["case"]] = rec["status"]
        unfinished = [name for name in started if name not in statuses]
        if proc.returncode == 0 and not unfinished:
            break
        culprit = unfinished[0] if unfinished else (remaining[0] if not started else started[-1])
        crashes[culprit] = f"rc={proc.returncode}: {proc.stderr[-600:]}"
        remaining = remaining[remaining.index(culprit) + 1 :]
    return statuses, crashes


def test_malformed_inputs_raise_or_compute_correctly():
    statuses, crashes = _run_children()
    assert not crashes, "the child process died in: " + "\n".join(f"{k} ({v})" for k, v in crashes.items())
    bad = {name: status for name, status in statuses.items() if status != "ok"}
    assert not bad, "\n".join(f"{name}: {status}" for name, status in bad.items())
    assert sorted(statuses) == sorted(name for name, _, _ in CASES)


if __name__ == "__main__":
    main(sys.argv[1:])


def test_builder_maps_skip_the_content_pass_and_forged_maps_do_not(monkeypatch):
    """Maps from the builders (and their adjoints) are in range by construction and are not scanned again; a map
    assembled by hand from the same fields is."""
    from largekernel3d.sparse import validation
    from largekernel3d.sparse.kernel_map import CONTENT_CHECKED

    scanned = []
    real = validation._check_map_content
    monkeypatch.setattr(validation, "_check_map_content", lambda kmap, name: scanned.append(kmap) or real(kmap, name))
    _, kmap = _kmap()
    assert CONTENT_CHECKED in kmap.cache and CONTENT_CHECKED in kmap.transposed().cache
    validation.check_kernel_map(kmap)
    validation.check_kernel_map(kmap.transposed())
    assert scanned == []
    _, forged = _forged(lambda f: {})
    assert CONTENT_CHECKED not in forged.cache and CONTENT_CHECKED not in forged.transposed().cache
    validation.check_kernel_map(forged)
    assert scanned == [forged]
