"""Group aggregation and SW-LK's group convolution (``largekernel3d.sparse.group_conv``): every dataflow against a
naive per-pair loop and against each other, gradients, gradcheck, and bad input. Paths and tuning values are chosen
with ``dataflow=`` / ``tuning=`` (the rule itself: test_dispatch.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import random_sparse_tensor, torch_threads
from largekernel3d.nn.partition import SpatialPartition
from largekernel3d.sparse import ConvGeometry, build_regular_map, build_submanifold_map
import largekernel3d.sparse.cpu.group_layout as gl
import largekernel3d.sparse.cpu.group_products as gp
from largekernel3d.sparse.cpu import team
from largekernel3d.sparse.cpu.tuning import DEFAULT_TUNING
from largekernel3d.sparse.dispatch import Dataflow
from largekernel3d.sparse.group_conv import group_aggregate, group_conv

AUTO, TORCH_REF = Dataflow.AUTO, Dataflow.TORCH_REF
AGGREGATE_DATAFLOWS = (Dataflow.CPU, TORCH_REF)
# the CPU dataflows of the SW-LK products that can run here (the fused one needs torch on libgomp)
CPU_GROUP_DATAFLOWS = ((Dataflow.CPU_FUSED,) if team.team_available() else ()) + (Dataflow.CPU_CHUNKED,)


def _small_steps(block_rows: int, chunk_rows: int):
    """A tuning whose row blocks and chunks hold ``block_rows`` / ``chunk_rows`` rows, so that groups span many."""
    return dataclasses.replace(
        DEFAULT_TUNING,
        group_block_bytes=1,
        group_min_block_rows=block_rows,
        group_chunk_bytes=1,
        group_min_chunk_rows=chunk_rows,
    )


# Many tiny ops: one torch thread avoids thread-pool wake-ups on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(kernel=(5, 3, 5), shape=(9, 8, 10), channels=3, num_groups=7, seed=0, dtype=torch.float64, batch=2):
    x = random_sparse_tensor(shape, channels, density=0.25, batch_size=batch, dtype=dtype, seed=seed)
    kmap = build_submanifold_map(x.indices, x.spatial_shape, x.batch_size, ConvGeometry.create(3, kernel))
    g = torch.Generator().manual_seed(seed + 1)
    group = torch.randint(0, num_groups, (kmap.kernel_volume,), generator=g)
    enc = torch.randn(kmap.kernel_volume, channels, generator=g, dtype=dtype)
    return x, kmap, group, enc


def naive(features, enc, kmap, group, num_groups):
    """A[i, g(k)] += x[j] + E[k] pair by pair."""
    out = torch.zeros(kmap.num_out, num_groups, features.shape[1], dtype=features.dtype)
    for k in range(kmap.kernel_volume):
        for j, i in zip(*[t.tolist() for t in kmap.pairs(k)]):
            out[i, group[k]] += features[j] + (enc[k] if enc is not None else 0)
    return out


@pytest.mark.parametrize("dataflow", AGGREGATE_DATAFLOWS)
@pytest.mark.parametrize("with_enc", [True, False])
def test_forward_matches_pair_by_pair_sum(dataflow, with_enc):
    x, kmap, group, enc = _setup()
    enc = enc if with_enc else None
    got = group_aggregate(x.features, enc, kmap, group, 7, dataflow=dataflow)
    torch.testing.assert_close(got, naive(x.features, enc, kmap, group, 7), rtol=1e-12, atol=1e-12)


def test_backends_agree_forward_and_backward_float32():
    x, kmap, group, enc = _setup(kernel=7, shape=(12, 12, 12), channels=5, num_groups=27, dtype=torch.float32)
    results = []
    for dataflow in AGGREGATE_DATAFLOWS:
        feats = x.features.clone().requires_grad_(True)
        e = enc.clone().requires_grad_(True)
        a = group_aggregate(feats, e, kmap, group, 27, dataflow=dataflow)
        up = torch.randn(a.shape, generator=torch.Generator().manual_seed(5))
        results.append((a, *torch.autograd.grad(a, (feats, e), up)))
    for u, v in zip(*results):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dataflow", AGGREGATE_DATAFLOWS)
def test_backward_is_the_adjoint(dataflow):
    """<dA, A(x, E)> is linear in (x, E): the gradients are its exact adjoint on random data."""
    x, kmap, group, enc = _setup(num_groups=5)
    feats = x.features.clone().requires_grad_(True)
    e = enc.clone().requires_grad_(True)
    a = group_aggregate(feats, e, kmap, group, 5, dataflow=dataflow)
    up = torch.randn(a.shape, dtype=a.dtype, generator=torch.Generator().manual_seed(3))
    d_x, d_e = torch.autograd.grad(a, (feats, e), up)
    ref_x = torch.zeros_like(feats)
    ref_e = torch.zeros_like(e)
    for k in range(kmap.kernel_volume):
        j, i = kmap.pairs(k)
        ref_x.index_add_(0, j, up[i, group[k]])
        ref_e[k] += up[i, group[k]].sum(0)
    torch.testing.assert_close(d_x, ref_x)
    torch.testing.assert_close(d_e, ref_e)


@pytest.mark.parametrize("dataflow", AGGREGATE_DATAFLOWS)
def test_gradcheck_float64(dataflow):
    x, kmap, group, enc = _setup(kernel=3, shape=(5, 4, 5), channels=2, num_groups=4)
    feats = x.features.clone().requires_grad_(True)
    e = enc.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f, w: group_aggregate(f, w, kmap, group, 4, dataflow=dataflow), (feats, e))


@pytest.mark.parametrize("dataflow", AGGREGATE_DATAFLOWS)
def test_general_maps_strided_regular_conv(dataflow):
    """The kernels only assume a pair list: a strided regular map (N_in != N_out) works too."""
    x = random_sparse_tensor((9, 9, 9), 3, density=0.2, seed=4)
    kmap = build_regular_map(x.indices, x.spatial_shape, 1, ConvGeometry.create(3, 3, stride=2, padding=1))
    group = torch.arange(27) % 4
    got = group_aggregate(x.features, None, kmap, group, 4, dataflow=dataflow)
    torch.testing.assert_close(got, naive(x.features, None, kmap, group, 4))


@pytest.mark.parametrize("dataflow", AGGREGATE_DATAFLOWS)
def test_no_pairs_and_no_sites(dataflow):
    x = random_sparse_tensor((6, 6, 6), 2, num_sites=1, seed=1)
    kmap = build_submanifold_map(x.indices, x.spatial_shape, 1, ConvGeometry.create(3, 3))
    a = group_aggregate(x.features, None, kmap, torch.zeros(27, dtype=torch.int64), 1, dataflow=dataflow)
    torch.testing.assert_close(a[:, 0], x.features)  # only the centre pair
    empty = build_submanifold_map(torch.zeros(0, 4, dtype=torch.int32), [4, 4, 4], 1, ConvGeometry.create(3, 3))
    out = group_aggregate(
        torch.zeros(0, 2, dtype=torch.float64), None, empty, torch.zeros(27, dtype=torch.int64), 3, dataflow=dataflow
    )
    assert out.shape == (0, 3, 2)


def test_bad_input_names_the_argument():
    x, kmap, group, enc = _setup()
    with pytest.raises(ValueError, match="dataflow='cuda' is not a Dataflow"):
        group_aggregate(x.features, enc, kmap, group, 7, dataflow="cuda")
    with pytest.raises(ValueError, match="dataflow=CPU_FUSED is not a dataflow of group aggregation"):
        group_aggregate(x.features, enc, kmap, group, 7, dataflow=Dataflow.CPU_FUSED)
    with pytest.raises(
        ValueError, match="dataflow=CPU cannot run .* float32/float64 CPU tensors; got features torch.float16"
    ):
        group_aggregate(x.features.half(), None, kmap, group, 7, dataflow=Dataflow.CPU)
    with pytest.raises(ValueError, match="group_index"):
        group_aggregate(x.features, enc, kmap, group[:-1], 7)
    with pytest.raises(ValueError, match="encoding"):
        group_aggregate(x.features, enc[:, :2], kmap, group, 7)
    with pytest.raises(ValueError, match="rows"):
        group_aggregate(x.features[:-1], enc, kmap, group, 7)
    with pytest.raises(TypeError, match="encoding"):
        group_aggregate(x.features, enc.float(), kmap, group, 7)


@pytest.mark.parametrize("grouping", ["random", "center1"])
@pytest.mark.parametrize("dtype, chunk", [(torch.float64, 7), (torch.float32, 1 << 16)])
@pytest.mark.parametrize("dataflow", CPU_GROUP_DATAFLOWS)
def test_group_conv_numba_compact_equals_torch_dense_forward_and_gradients(dtype, chunk, grouping, dataflow):
    """The CPU path (compact slots, GEMMs per non-empty group block, in chunks of ``chunk`` rows; the
    identity centre group of ``center1`` read/written in place; the input and encoding gradients as a
    mirrored product for ``center1``, through the gradient of ``A`` for a random grouping) against the dense
    path (A [N, G C] @ W [G C, C_out], autograd), on a sparse cloud where many groups are empty."""
    tuning = dataclasses.replace(DEFAULT_TUNING, group_gemm_rows=chunk, group_chunk_bytes=1, group_min_chunk_rows=chunk)
    x, kmap, group, enc = _setup(kernel=7, shape=(14, 13, 15), channels=4, num_groups=27, dtype=dtype, seed=8)
    if grouping != "random":
        group = SpatialPartition.create(7, grouping).group_index()
    weight = torch.randn(27, 4, 5, dtype=dtype, generator=torch.Generator().manual_seed(9))
    results = []
    for flow in (dataflow, TORCH_REF):
        leaves = [t.clone().requires_grad_(True) for t in (x.features, enc, weight)]
        out = group_conv(leaves[0], leaves[1], leaves[2], kmap, group, dataflow=flow, tuning=tuning)
        up = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(10))
        results.append((out, *torch.autograd.grad(out, leaves, up)))
    rel = 1e-12 if dtype == torch.float64 else 1e-5
    for u, v in zip(*results):  # error relative to the largest entry (float32 sums of ~100 terms)
        torch.testing.assert_close(u, v, rtol=rel, atol=rel * float(v.detach().abs().max()))


@pytest.mark.parametrize("dataflow", CPU_GROUP_DATAFLOWS + (TORCH_REF,))
@pytest.mark.parametrize("grouping", ["random", "center1"])
def test_group_conv_gradcheck_float64(dataflow, grouping):
    x, kmap, group, enc = _setup(kernel=3, shape=(5, 4, 5), channels=2, num_groups=4)
    num_groups = 4
    if grouping == "center1":  # mirror-symmetric: the input/encoding gradients take the mirrored product
        group = SpatialPartition.create(3, grouping).group_index()
        num_groups = 27
    weight = torch.randn(num_groups, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    leaves = [t.clone().requires_grad_(True) for t in (x.features, enc, weight)]
    assert torch.autograd.gradcheck(
        lambda f, e, w: group_conv(f, e, w, kmap, group, dataflow=dataflow), leaves, fast_mode=True
    )


def test_mirrored_weight_only_for_symmetric_maps_and_groupings():
    """The input gradient is a mirrored product exactly when the map is symmetric (submanifold, odd kernel)
    and the grouping mirror-symmetric: every SW-LK partition, not a random grouping or a regular map."""
    x, kmap, group, _ = _setup(kernel=5, num_groups=27)
    weight = torch.randn(27, 3, 4, dtype=torch.float64)
    for name in ("center1", "center3", "thirds"):
        sym = SpatialPartition.create(5, name).group_index().numpy()
        num_groups = int(sym.max()) + 1
        sigma = gp.mirror_groups(kmap, sym, num_groups)
        assert sigma is not None
        mirrored = gp._mirrored_weight_of(weight[:num_groups], sigma)
        assert mirrored.shape == (num_groups, 4, 3)
        k = 3  # offset k's group reads the transposed weight of its mirror offset's group
        assert torch.equal(mirrored[sym[k]], weight[sym[kmap.kernel_volume - 1 - k]].t())
    assert gp.mirror_groups(kmap, group.numpy(), 27) is None
    regular = build_regular_map(x.indices, x.spatial_shape, x.batch_size, ConvGeometry.create(3, 5, 1, 2))
    center1 = SpatialPartition.create(5, "center1").group_index().numpy()
    assert gp.mirror_groups(regular, center1, 27) is None


def test_group_conv_bad_weight():
    x, kmap, group, enc = _setup()
    with pytest.raises(ValueError, match="weight must be"):
        group_conv(x.features, enc, torch.randn(7, 2, 4, dtype=torch.float64), kmap, group)
    with pytest.raises(TypeError, match="weight"):
        group_conv(x.features, enc, torch.randn(7, 3, 4), kmap, group)


def test_numba_path_keeps_torchs_thread_count():
    """The numba path never changes torch's thread count (it starts no OpenMP pool of its own)."""
    assert torch.get_num_threads() == 1
    x, kmap, group, enc = _setup(kernel=5, num_groups=27, dtype=torch.float32)
    weight = torch.randn(27, 3, 2, requires_grad=True)
    group_conv(x.features, enc, weight, kmap, group, dataflow=AUTO).sum().backward()
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("encoding", [True, False])
@pytest.mark.parametrize("grouping", ["random", "center1", "center3"])
@pytest.mark.parametrize("chunk_rows", [None, 7])
@pytest.mark.parametrize("dataflow", CPU_GROUP_DATAFLOWS)
def test_group_conv_inference_path_equals_training_path(encoding, grouping, chunk_rows, dataflow):
    """Without autograd, group_conv takes the chunked inference path (no full ``A`` kept; a group that
    holds only the identity centre offset, as in the default SW-LK partition, is one dense GEMM); it must
    give the training path's output and the torch path's, also when group blocks span several chunks."""
    tuning = DEFAULT_TUNING if chunk_rows is None else _small_steps(chunk_rows, chunk_rows)
    x, kmap, group, enc = _setup(kernel=7, shape=(12, 11, 13), channels=5, num_groups=27, dtype=torch.float64, seed=3)
    if grouping != "random":
        group = SpatialPartition.create(7, grouping).group_index()
    assert (gp.identity_group(kmap, group.numpy())[0] >= 0) == (grouping == "center1")
    enc = enc if encoding else None
    weight = torch.randn(27, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        inference = group_conv(x.features, enc, weight, kmap, group, dataflow=dataflow, tuning=tuning)
    training = group_conv(
        x.features.clone().requires_grad_(), enc, weight, kmap, group, dataflow=dataflow, tuning=tuning
    )
    reference = group_conv(x.features, enc, weight, kmap, group, dataflow=TORCH_REF)
    torch.testing.assert_close(inference, training.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inference, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("grouping", ["random", "center1", "thirds"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_group_conv_fused_and_chunked_products_match_torch(threads, fused, grouping, dtype, monkeypatch):
    """The products on torch's team fused per row block (:mod:`.group_fused`; small blocks and tiles here,
    so that groups span several of each) and the chunked bags + GEMM + scatter: forward (inference and
    training) and all gradients against the torch path, at 1, 2 and 3 threads. With the mirror-symmetric
    SW-LK groupings (``center1``, whose centre group is the identity offset; ``thirds``, whose centre group
    is not) both gradients come from one product of ``dOut`` over the forward's bag entries with their
    encoding rows skipped; a random grouping keeps ``A`` and forms its gradient."""
    if fused and not team.team_available():
        pytest.skip("the fused products need a torch build with libgomp")
    calls = _record_fused_calls(monkeypatch)
    dataflow = Dataflow.CPU_FUSED if fused else Dataflow.CPU_CHUNKED
    tuning = _small_steps(9, 5)
    x, kmap, group, enc = _setup(kernel=7, shape=(14, 13, 15), channels=4, num_groups=27, dtype=dtype, seed=5)
    if grouping != "random":
        group = SpatialPartition.create(7, grouping).group_index()
    weight = torch.randn(27, 4, 6, dtype=dtype, generator=torch.Generator().manual_seed(6))
    rel = 1e-12 if dtype == torch.float64 else 1e-5
    with torch_threads(threads):
        with torch.no_grad():
            inference = group_conv(x.features, enc, weight, kmap, group, dataflow=dataflow, tuning=tuning)
        leaves = [t.clone().requires_grad_(True) for t in (x.features, enc, weight)]
        out = group_conv(*leaves, kmap, group, dataflow=dataflow, tuning=tuning)
        up = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(7))
        grads = torch.autograd.grad(out, leaves, up)
    ref_leaves = [t.clone().requires_grad_(True) for t in (x.features, enc, weight)]
    ref = group_conv(*ref_leaves, kmap, group, dataflow=TORCH_REF)
    ref_grads = torch.autograd.grad(ref, ref_leaves, up)
    for u, v in zip((inference, out) + grads, (ref, ref) + ref_grads):
        torch.testing.assert_close(u, v, rtol=rel, atol=rel * float(v.detach().abs().max()))
    if fused:  # forward twice (bags with encodings), then the mirrored d_x and d_W in one pass
        assert calls == [("forward", 2), ("forward", 2)] + ([("backward", True, True)] if grouping != "random" else [])
    else:
        assert calls == []


def _record_fused_calls(monkeypatch) -> list:
    """Record each :mod:`.group_fused` call: ``("forward", use)`` or ``("backward", with d_x, with d_W)``."""
    from largekernel3d.sparse.cpu import group_fused

    calls = []
    forward, backward = group_fused.accumulate, group_fused.backward

    def record_forward(*args, **kwargs):
        calls.append(("forward", args[3]))
        return forward(*args, **kwargs)

    def record_backward(*args, **kwargs):
        calls.append(("backward", args[8] is not None, args[1] is not None))
        return backward(*args, **kwargs)

    monkeypatch.setattr(group_fused, "accumulate", record_forward)
    monkeypatch.setattr(group_fused, "backward", record_backward)
    return calls


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(
    "wanted", [(True, False, False), (False, False, True), (False, True, False), (True, True, True)]
)
def test_group_conv_mirrored_backward_computes_only_the_gradients_asked_for(threads, fused, wanted, monkeypatch):
    """The backward pass of a SW-LK grouping (fused, or chunk by chunk) with only some of ``x``, ``E``, ``W``
    requiring gradients: each requested gradient matches the torch path; the fused pass runs only the parts
    asked for (none when only ``E`` needs a gradient); the forward keeps no ``[slots, C]`` bags for it."""
    if fused and not team.team_available():
        pytest.skip("the fused products need a torch build with libgomp")
    calls = _record_fused_calls(monkeypatch)
    dataflow = Dataflow.CPU_FUSED if fused else Dataflow.CPU_CHUNKED
    tuning = _small_steps(7, 3)
    x, kmap, _, enc = _setup(kernel=5, shape=(12, 11, 13), channels=3, num_groups=27, dtype=torch.float64, seed=8)
    group = SpatialPartition.create(5, "center1").group_index()
    weight = torch.randn(27, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    up = torch.randn(kmap.num_out, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    leaves = [t.clone().requires_grad_(w) for t, w in zip((x.features, enc, weight), wanted)]
    with torch_threads(threads):
        out = group_conv(*leaves, kmap, group, dataflow=dataflow, tuning=tuning)
        num_slots = gl.GroupLayout.for_map(kmap, group.numpy(), 27, compact=True).num_slots
        assert all(t is None or t.shape[0] != num_slots for t in out.grad_fn.saved_tensors)
        grads = torch.autograd.grad(out, [t for t in leaves if t.requires_grad], up)
    ref_leaves = [t.clone().requires_grad_(True) for t in (x.features, enc, weight)]
    ref_grads = torch.autograd.grad(group_conv(*ref_leaves, kmap, group, dataflow=TORCH_REF), ref_leaves, up)
    for got, expected in zip(grads, [g for g, w in zip(ref_grads, wanted) if w]):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    need_x, _, need_w = wanted
    if fused:
        assert calls[1:] == ([("backward", need_x, need_w)] if need_x or need_w else [])
    else:
        assert calls == []


@pytest.mark.parametrize("threads", [1, 2])
def test_swlk_grouping_never_fills_a_lazily_mirrored_map(threads, monkeypatch):
    """A numba map of odd kernels leaves its offsets before the centre unwritten until its pair lists are read
    (``KernelMap.half_stored``). The compact layout (serial or on the team), the forward and the backward of
    a SW-LK grouping read the offsets after the centre in their place: nothing is filled, the layout is the
    one of the torch builder's complete map, entry for entry, and the output and the gradients are the torch
    path's on that map."""
    from largekernel3d.sparse.cpu import maps

    fills = []
    real = maps.mirror_lower_half
    monkeypatch.setattr(maps, "mirror_lower_half", lambda *a, **k: (fills.append(1), real(*a, **k)))
    on_team = dataclasses.replace(DEFAULT_TUNING, group_team_layout_min_pairs=1)  # the team layout at 2 threads
    x = random_sparse_tensor((12, 11, 13), 3, density=0.25, batch_size=2, dtype=torch.float64, seed=4)
    geometry = ConvGeometry.create(3, 5)
    lazy = build_submanifold_map(x.indices, x.spatial_shape, 2, geometry, dataflow=Dataflow.CPU)
    full = build_submanifold_map(x.indices, x.spatial_shape, 2, geometry, dataflow=TORCH_REF)
    assert lazy.half_stored and not full.half_stored
    group = SpatialPartition.create(5, "center3").group_index()  # its centre group holds mirrored pairs
    num_groups = int(group.max()) + 1
    gen = torch.Generator().manual_seed(5)
    enc = torch.randn(25 * 5, 3, dtype=torch.float64, generator=gen)
    weight = torch.randn(num_groups, 3, 4, dtype=torch.float64, generator=gen)
    up = torch.randn(x.features.shape[0], 4, dtype=torch.float64, generator=gen)
    results = []
    with torch_threads(threads):
        for kmap, dataflow in ((lazy, AUTO), (full, TORCH_REF)):
            leaves = [t.clone().requires_grad_(True) for t in (x.features, enc, weight)]
            out = group_conv(*leaves, kmap, group, dataflow=dataflow, tuning=on_team)
            results.append((out, *torch.autograd.grad(out, leaves, up)))
    layouts = [gl.GroupLayout.for_map(kmap, group.numpy(), num_groups, compact=True) for kmap in (lazy, full)]
    assert fills == []
    for name in ("rows", "bag_ptr", "gstart", "entries"):
        np.testing.assert_array_equal(getattr(layouts[0], name), getattr(layouts[1], name))
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    # the per-pair slots (read mirrored) point at the complete map's pairs, once it is filled
    assert (layouts[0].rows[layouts[0].slot] == lazy.pair_out.numpy()).all() and fills == [1]


def test_slot_layout_memoised_on_the_kernel_map():
    """Layers sharing a kernel map (one indice_key) build the group slots once; another grouping gets its own."""
    x, kmap, group, enc = _setup(kernel=5, num_groups=27)
    a = gl.GroupLayout.for_map(kmap, group.numpy(), 27, compact=True)
    assert gl.GroupLayout.for_map(kmap, group.numpy(), 27, compact=True) is a
    assert gl.GroupLayout.for_map(kmap, group.numpy(), 27, compact=False) is not a
    other = torch.roll(group, 1)
    assert gl.GroupLayout.for_map(kmap, other.numpy(), 27, compact=True) is not a


@pytest.mark.parametrize("with_encoding", [True, False])
def test_compact_layout_holds_every_pair_once_in_its_slot(with_encoding):
    """The compact layout against a pair-by-pair account: one slot per non-empty (group, output row),
    group-major with rows ascending, each slot's bag exactly the input rows (and encoding rows) of its
    pairs, offsets ascending; the per-pair slots point back to the same slots."""
    x, kmap, group, _ = _setup(kernel=5, num_groups=9, seed=3)
    group_np = group.numpy()
    slots = gl.GroupLayout(kmap, group_np, 9, compact=True)
    entries = slots._bag_entries(with_encoding)
    width = 2 if with_encoding else 1
    expected = {}
    for k in range(kmap.kernel_volume):
        for j, i in zip(*[t.tolist() for t in kmap.pairs(k)]):
            expected.setdefault((int(group_np[k]), i), []).extend([j, kmap.num_in + k] if with_encoding else [j])
    got = {}
    for g in range(9):
        rows = slots.rows[slots.gstart[g] : slots.gstart[g + 1]].tolist()
        assert rows == sorted(set(rows))
        for s in range(int(slots.gstart[g]), int(slots.gstart[g + 1])):
            got[(g, int(slots.rows[s]))] = entries[width * slots.bag_ptr[s] : width * slots.bag_ptr[s + 1]].tolist()
    assert got == expected
    assert slots.num_slots == len(expected) and slots.bag_ptr[-1] == kmap.num_pairs
    pair_group = group_np[gl.pair_offsets(kmap)]
    slot_group = np.searchsorted(slots.gstart, slots.slot, side="right") - 1
    assert (slot_group == pair_group).all()
    assert (slots.rows[slots.slot] == kmap.pair_out.numpy()).all()


@pytest.mark.parametrize("rows_per_block, parts", [(7, 1), (16, 3), (50, 2), (1000, 4)])
def test_row_blocks_cut_every_group_by_row_blocks_and_balance_the_parts(rows_per_block, parts):
    """``row_blocks``: blocks of at most ``rows_per_block`` consecutive output rows, inside ``parts`` parts;
    ``ranges[b, g]`` is exactly the slots of group ``g`` whose rows fall in block ``b`` (so every slot lies
    in one block), and the parts hold about equal slot counts."""
    x, kmap, group, _ = _setup(kernel=5, num_groups=27, seed=7)
    slots = gl.GroupLayout(kmap, group.numpy(), 27, compact=True)
    ranges, part_cuts = slots.row_blocks(rows_per_block, parts)
    assert part_cuts.shape == (parts + 1,) and part_cuts[0] == 0 and part_cuts[-1] == ranges.shape[0]
    assert (np.diff(part_cuts) >= 0).all()
    block_of_slot = np.full(slots.num_slots, -1)
    row_lo = 0
    for b in range(ranges.shape[0]):
        block_rows = set()
        for g in range(27):
            lo, hi = ranges[b, g]
            assert slots.gstart[g] <= lo <= hi <= slots.gstart[g + 1]
            assert (block_of_slot[lo:hi] == -1).all()
            block_of_slot[lo:hi] = b
            block_rows.update(slots.rows[lo:hi].tolist())
        if block_rows:
            assert min(block_rows) >= row_lo and max(block_rows) - min(block_rows) < rows_per_block
            row_lo = max(block_rows) + 1
    assert (block_of_slot >= 0).all()  # every slot in exactly one block
    part_slots = [
        int(sum(ranges[b, :, 1].sum() - ranges[b, :, 0].sum() for b in range(part_cuts[t], part_cuts[t + 1])))
        for t in range(parts)
    ]
    assert sum(part_slots) == slots.num_slots
    # the cut falls at a row boundary: a part holds at most one average part plus one row's slots (<= 27)
    assert max(part_slots) <= slots.num_slots / parts + 27


@pytest.mark.skipif(not team.team_available(), reason="torch does not run on GNU libgomp here")
@pytest.mark.parametrize("threads", [2, 3])
def test_compact_layout_on_the_team_equals_the_serial_one(threads):
    """Numbering the slots and writing the bag entries split by group ranges over torch's OpenMP team (each
    range numbered from an upper bound of the slots before it, then moved together) gives the serial
    layout exactly, whatever the split; the layer output is unchanged."""
    x, kmap, group, enc = _setup(kernel=5, num_groups=27, seed=5)
    group_np = group.numpy()
    serial = gl.GroupLayout(kmap, group_np, 27, compact=True)
    on_team = dataclasses.replace(DEFAULT_TUNING, group_team_layout_min_pairs=1)
    with torch_threads(threads):
        team = gl.GroupLayout(kmap, group_np, 27, compact=True, tuning=on_team)
        assert team.ranges.shape[0] == threads + 1  # one group range per thread
        for width in (True, False):
            np.testing.assert_array_equal(team._bag_entries(width), serial._bag_entries(width))
    assert team.num_slots == serial.num_slots
    np.testing.assert_array_equal(team.rows, serial.rows)
    np.testing.assert_array_equal(team.bag_ptr, serial.bag_ptr)
    np.testing.assert_array_equal(team.gstart, serial.gstart)
