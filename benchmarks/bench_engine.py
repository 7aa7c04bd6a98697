"""Sparse-convolution engine speed: largekernel3d vs spconv 2.3.8 on the CPU, in one process.

Per input and layer, at the default thread count and at 1 thread, with the same weights and inputs
for both engines, calls alternating between engines, medians after a warm-up round:

* forward with kernel-map building (first call: a fresh tensor, nothing cached) and forward with the
  map cached under its ``indice_key``; the map cost is their difference (for both engines). spconv keeps
  the pairs in the *output's* ``indice_dict``, so its cached call gets an input carrying that dict (as a
  following layer would); it reuses no pairs for a strided conv, which therefore has no spconv cached time;
* forward + backward (ours only: spconv 2.3.8 has no CPU backward for submanifold convs);
* useful GFLOP/s ``2 · pairs · C_in · C_out / t`` of the cached forward against a ``torch.mm`` of the
  same FLOPs (``[pairs, C_in] @ [C_in, C_out]``) timed in the same run;
* the GEMM floor (``common.gemm_floor_ms``): the same FLOPs at ``torch.mm``'s best in-cache rate, and
  spconv's forward over it, the largest speed-up over spconv that any engine whose GEMMs run at
  ``torch.mm``'s speed could reach (with a free kernel map, gathers and scatters); ours multiply in SIMD
  register panels, about twice ``torch.mm``'s rate on these shapes, so the bound is not ours;
* peak memory of one first call (RSS high-water mark, see ``common.peak_rss_mib``);
* agreement: max |ours − spconv| / max |spconv| at 1 thread (spconv's CPU path races with more).

Plus the dense baseline (``F.conv3d`` forward + backward on the densified ScanNet grid) and a
profile of where our time goes (map, gather, GEMM, scatter).

Run standalone: ``python benchmarks/bench_engine.py [--quick] [--extras] [--threads=N ...]``
(``--extras``: only memory, dense baseline and profile; ``--threads=N``: time only these thread counts).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as TF
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import largekernel3d.sparse as ours  # noqa: E402
from largekernel3d.sparse import functional, keep_freed_memory  # noqa: E402
from largekernel3d.sparse.cpu import conv_fused  # noqa: E402
from largekernel3d.sparse.cpu import conv_tiled, maps  # noqa: E402
from largekernel3d.sparse.cpu import team  # noqa: E402
from largekernel3d.sparse.cpu.tuning import DEFAULT_TUNING  # noqa: E402
from largekernel3d.sparse.dispatch import Dataflow, plan_conv  # noqa: E402
from largekernel3d.sparse.torch_ref import conv as torch_conv  # noqa: E402


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # "subm", "down", "inverse"
    kernel: int
    channels: int


def layers(quick: bool) -> List[Layer]:
    if quick:
        return [
            Layer("SubMConv3d k3 32→32", "subm", 3, 32),
            Layer("SubMConv3d k7 32→32", "subm", 7, 32),
            Layer("SparseConv3d k3 s2 32→32", "down", 3, 32),
            Layer("SparseInverseConv3d k3 32→32", "inverse", 3, 32),
        ]
    out = [Layer(f"SubMConv3d k{k} {c}→{c}", "subm", k, c) for k in (3, 5, 7) for c in (32, 64)]
    out += [Layer("SparseConv3d k3 s2 32→32", "down", 3, 32), Layer("SparseInverseConv3d k3 32→32", "inverse", 3, 32)]
    return out


@dataclass
class Result:
    input: str
    layer: Layer
    threads: int
    ms: Dict[str, float] = field(default_factory=dict)
    pairs: int = 0
    mm_ms: Optional[float] = None
    floor_ms: Optional[float] = None  # common.gemm_floor_ms of the pairs
    mem: Dict[str, Optional[float]] = field(default_factory=dict)
    rel_err: Optional[float] = None


def _engines(sp, layer: Layer, inp: common.SparseInput, seed: int):
    """Per engine: (make_fresh_input, layer_module) so that ``module(make())`` runs the benchmarked
    layer. For the inverse conv, the input is the output of the paired strided conv (its map cached)."""
    torch.manual_seed(seed)
    c = layer.channels
    feats = torch.randn(inp.num_sites, c)
    shape = list(inp.spatial_shape)
    mods = {}
    if layer.kind == "subm":
        mods["ours"] = ours.SubMConv3d(c, c, layer.kernel, indice_key="b")
        if sp is not None:
            mods["spconv"] = sp.SubMConv3d(c, c, layer.kernel, indice_key="b")
    else:
        mods["ours"] = ours.SparseConv3d(c, c, layer.kernel, 2, padding=1, indice_key="d")
        if sp is not None:
            mods["spconv"] = sp.SparseConv3d(c, c, layer.kernel, 2, padding=1, indice_key="d")
    if "spconv" in mods:
        with torch.no_grad():
            mods["spconv"].weight.copy_(mods["ours"].weight)
            mods["spconv"].bias.copy_(mods["ours"].bias)
    makers = {
        "ours": lambda: ours.SparseConvTensor(feats, inp.indices, shape, 1, validate=False),
        "spconv": lambda: sp.SparseConvTensor(feats, inp.indices, shape, 1),
    }
    if layer.kind != "inverse":
        return {k: (makers[k], mods[k]) for k in mods}
    out = {}
    ref_keys = ref_feats = ref_up = None
    for k, down in mods.items():  # "ours" first: its coarse sites and features are the reference
        with torch.no_grad():
            y = down(makers[k]())
        up = (ours if k == "ours" else sp).SparseInverseConv3d(c, c, layer.kernel, indice_key="d")
        keys = _site_keys(y)
        if k == "ours":
            ref_up, ref_keys, order = up, keys, torch.argsort(keys)
            ref_feats = torch.randn(y.features.shape, generator=torch.Generator().manual_seed(seed + 1))
            y_feats = ref_feats
        else:  # the same feature on the same coarse site, whatever the row order
            with torch.no_grad():
                up.weight.copy_(ref_up.weight)
                up.bias.copy_(ref_up.bias)
            pos = torch.searchsorted(ref_keys[order], keys)
            y_feats = ref_feats[order[pos]]
        out[k] = ((lambda y=y, f=y_feats: y.replace_feature(f)), up)
    return out


def _site_keys(t) -> torch.Tensor:
    idx = t.indices.to(torch.int64)
    key = idx[:, 0]
    for d, s in enumerate(list(t.spatial_shape)):
        key = key * int(s) + idx[:, 1 + d]
    return key


def _sorted_rows(t) -> torch.Tensor:
    return t.features[torch.argsort(_site_keys(t))]


def bench_case(sp, inp: common.SparseInput, layer: Layer, threads: int, reps: int, seed: int) -> Result:
    res = Result(inp.name, layer, threads)
    eng = _engines(sp, layer, inp, seed)
    with common.num_threads(threads):
        fns: Dict[str, Callable[[], object]] = {}
        cached_inputs = {}
        for name, (make, mod) in eng.items():

            def fresh(make=make, mod=mod):
                with torch.no_grad():
                    return mod(make())

            if layer.kind != "inverse":
                fns[f"{name} fwd"] = fresh
            if name == "spconv" and layer.kind == "down":
                continue  # spconv reuses the pairs of submanifold and inverse convs only: no cached call
            x_cached = make()
            with torch.no_grad():
                y = mod(x_cached)
            if name == "spconv" and layer.kind == "subm":
                # spconv stores the pairs in the output's indice_dict (a copy of the input's), so a call
                # on the first input would build them again: give that input the output's dict
                x_cached.indice_dict = y.indice_dict
            cached_inputs[name] = x_cached

            def cached(x=x_cached, mod=mod):
                with torch.no_grad():
                    return mod(x)

            fns[f"{name} fwd cached"] = cached
        make, mod = eng["ours"]

        def fwd_bwd(cache: bool, make=make, mod=mod, x_c=cached_inputs["ours"]):
            x = x_c if cache else make()
            f = x.features.detach().requires_grad_()
            y = mod(x.replace_feature(f))
            y.features.backward(torch.ones_like(y.features))
            return f.grad

        if layer.kind != "inverse":
            fns["ours fwd+bwd"] = lambda: fwd_bwd(False)
        fns["ours fwd+bwd cached"] = lambda: fwd_bwd(True)
        res.ms = common.time_alternating(fns, reps, warmup=1)
        if layer.kind == "inverse":
            for name in eng:
                res.ms[f"{name} fwd"] = res.ms[f"{name} fwd cached"]
            res.ms["ours fwd+bwd"] = res.ms["ours fwd+bwd cached"]
        kmap = mod.kernel_map(cached_inputs["ours"])
        res.pairs = kmap.num_pairs
        res.mm_ms = common.mm_ms(max(1, res.pairs), layer.channels, layer.channels, reps)
        res.floor_ms = common.gemm_floor_ms(max(1, res.pairs), layer.channels, layer.channels, reps)
        if threads == 1 and "spconv" in eng:
            with torch.no_grad():
                a = eng["ours"][1](eng["ours"][0]())
                b = eng["spconv"][1](eng["spconv"][0]())
            fa, fb = (_sorted_rows(a), _sorted_rows(b)) if layer.kind == "down" else (a.features, b.features)
            if fa.shape == fb.shape:
                res.rel_err = float((fa - fb).abs().max() / fb.abs().max().clamp_min(1e-30))
            else:
                res.rel_err = float("inf")
    return res


def _memory_worker(engine: str, path: str) -> None:
    """Subprocess body: for each layer of the benchmark, the peak RSS increase (MiB) of one first call
    of ``engine`` on the sites saved at ``path``; prints one ``layer<TAB>MiB`` line per layer."""
    sp = common.load_spconv() if engine == "spconv" else None
    data = np.load(path)
    inp = common.SparseInput("worker", torch.from_numpy(data["indices"]), tuple(int(s) for s in data["shape"]), "")
    for n, layer in enumerate(layers(bool(data["quick"]))):
        eng = _engines(sp, layer, inp, seed=n)
        if engine not in eng:
            continue
        make, mod = eng[engine]

        def first_call():
            with torch.no_grad():
                return mod(make())

        first_call()  # compile / warm up; freed blocks go back to the OS (see measure_memory)
        print(f"{layer.name}\t{common.peak_rss_mib(first_call)}", flush=True)


def measure_memory(inp: common.SparseInput, engines: List[str], quick: bool) -> Dict[Tuple[str, str], Optional[float]]:
    """Peak RSS increase of one first call per (layer name, engine), each engine in a fresh process
    with glibc's mmap threshold pinned at 64 KiB (``MALLOC_MMAP_THRESHOLD_``), so every large buffer is
    a fresh mapping returned on free and the high-water mark sees each call's own peak."""
    import os
    import tempfile

    out: Dict[Tuple[str, str], Optional[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sites.npz")
        np.savez(path, indices=inp.indices.numpy(), shape=np.array(inp.spatial_shape), quick=quick)
        for engine in engines:
            for line in common.run_memory_worker(__file__, ["--memory-worker", engine, path]).splitlines():
                name, _, value = line.partition("\t")
                out[(name, engine)] = None if value == "None" else float(value)
    return out


_DEFAULT_THREADS = torch.get_num_threads()


def common_default_threads() -> int:
    return _DEFAULT_THREADS


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None or a <= 0 else b / a


def results_table(results: List[Result]) -> str:
    rows = []
    for r in results:
        ms = r.ms
        o, s = ms.get("ours fwd"), ms.get("spconv fwd")
        oc, sc = ms.get("ours fwd cached"), ms.get("spconv fwd cached")
        omap = None if r.layer.kind == "inverse" else o - oc
        smap = None if r.layer.kind == "inverse" or s is None or sc is None else s - sc
        fb = ms.get("ours fwd+bwd")
        gflop = 2.0 * r.pairs * r.layer.channels**2 / 1e9
        g_ours = gflop / (oc / 1e3) if oc else None
        g_mm = gflop / (r.mm_ms / 1e3) if r.mm_ms else None
        rows.append(
            [
                r.input,
                r.layer.name,
                r.threads,
                f"{r.pairs / max(1, _sites(r)):.1f}" if r.layer.kind == "subm" else "–",
                common.fmt(o),
                common.fmt(s),
                common.fmt(_ratio(o, s), 2),
                common.fmt(oc),
                common.fmt(sc),
                common.fmt(_ratio(oc, sc), 2),
                common.fmt(omap),
                common.fmt(smap),
                common.fmt(fb),
                common.fmt(None if not o else fb / o, 2),
                common.fmt(g_ours),
                common.fmt(g_mm),
                common.fmt(None if not g_mm or g_ours is None else 100 * g_ours / g_mm, 0),
                common.fmt(r.floor_ms),
                common.fmt(_ratio(r.floor_ms, s), 2),
                common.fmt(r.mem.get("ours")),
                common.fmt(r.mem.get("spconv")),
                "–" if r.rel_err is None else f"{r.rel_err:.1e}",
            ]
        )
    header = [
        "input",
        "layer",
        "threads",
        "pairs/site",
        "ours fwd ms",
        "spconv fwd ms",
        "speed-up",
        "ours cached ms",
        "spconv cached ms",
        "speed-up cached",
        "ours map ms",
        "spconv map ms",
        "ours fwd+bwd ms",
        "fwd+bwd / fwd",
        "ours GFLOP/s",
        "mm GFLOP/s",
        "% of mm",
        "GEMM floor ms",
        "spconv fwd / floor",
        "ours peak MiB",
        "spconv peak MiB",
        "max rel. diff (1 thr)",
    ]
    return common.markdown_table(header, rows)


_SITES: Dict[str, int] = {}


def _sites(r: Result) -> int:
    return _SITES.get(r.input, 1)


FLOOR_TARGET = 0.60  # issue #25: every row at >= 60 % of its GEMM floor


def floor_shares(results: List[Result]) -> str:
    """Issue #25's GEMM-floor target: the share ``floor ms / ours ms`` of every row, with the map (``ours fwd``) and
    with the map cached (``ours fwd cached``: products, gathers and scatters alone), counts per layer and the rows
    that miss with the map cached."""
    rows = [r for r in results if r.floor_ms and r.ms.get("ours fwd") and r.ms.get("ours fwd cached")]
    if not rows:
        return "No row has a GEMM floor."
    fresh_miss = [r for r in rows if r.floor_ms / r.ms["ours fwd"] < FLOOR_TARGET]
    cached_miss = sorted(
        (r for r in rows if r.floor_ms / r.ms["ours fwd cached"] < FLOOR_TARGET),
        key=lambda r: r.floor_ms / r.ms["ours fwd cached"],
    )
    by_layer: Dict[str, int] = {}
    for r in fresh_miss:
        by_layer[r.layer.name] = by_layer.get(r.layer.name, 0) + 1
    lines = [
        f"Share of the GEMM floor (floor ms / ours ms; target ≥ {FLOOR_TARGET:.0%}) over the {len(rows)} rows above. "
        f"**Forward incl. the map: {len(rows) - len(fresh_miss)} of {len(rows)} rows meet it**"
        + (
            "; the misses by layer: "
            + ", ".join(f"{name} {n}" for name, n in sorted(by_layer.items(), key=lambda kv: -kv[1]))
            if by_layer
            else ""
        )
        + f". With the map cached {len(rows) - len(cached_miss)} of {len(rows)} meet it"
        + ("." if not cached_miss else "; the misses:"),
    ]
    if cached_miss:
        lines += [
            "",
            common.markdown_table(
                ["input", "layer", "threads", "floor / ours cached"],
                [
                    [r.input, r.layer.name, r.threads, f"{100 * r.floor_ms / r.ms['ours fwd cached']:.0f} %"]
                    for r in cached_miss
                ],
            ),
        ]
    return "\n".join(lines)


def targets(results: List[Result]) -> str:
    """The issue's targets, checked on these results."""
    lines = []

    def check(name: str, ok: bool, detail: str) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {name} ({detail})")

    for k, bar in ((3, 3.0), (7, 5.0)):
        sel = [r for r in results if r.layer.kind == "subm" and r.layer.kernel == k and "spconv fwd" in r.ms]
        if sel:
            worst = min(sel, key=lambda r: r.ms["spconv fwd"] / r.ms["ours fwd"])
            sp = worst.ms["spconv fwd"] / worst.ms["ours fwd"]
            beyond = [r for r in sel if r.floor_ms and r.ms["spconv fwd"] / r.floor_ms < bar]
            floor_note = (
                ""
                if not beyond
                else (
                    f"; on {len(beyond)} of {len(sel)} rows the bar lies beyond the GEMM floor (spconv fwd / floor < "
                    f"{bar:.0f}: "
                    + ", ".join(
                        f"{r.input} {r.layer.name} {r.threads} thr {r.ms['spconv fwd'] / r.floor_ms:.2f}×"
                        for r in beyond
                    )
                    + ")"
                )
            )
            check(
                f"SubMConv3d {k}³ forward incl. map ≥ {bar:.0f}× spconv on every input",
                sp >= bar,
                f"worst {sp:.2f}× on {worst.input}, {worst.layer.name}, {worst.threads} thr{floor_note}",
            )
    for k in (3, 7):
        sel = [r for r in results if r.layer.kind == "subm" and r.layer.kernel == k]
        if sel:
            worst = max(sel, key=lambda r: r.ms["ours fwd+bwd"] / r.ms["ours fwd"])
            q = worst.ms["ours fwd+bwd"] / worst.ms["ours fwd"]
            check(
                f"SubMConv3d {k}³ forward+backward ≤ 3× forward",
                q <= 3.0,
                f"worst {q:.2f}× on {worst.input}, {worst.layer.name}, {worst.threads} thr",
            )
    sel = [r for r in results if r.layer.kind == "subm" and r.layer.kernel == 3 and r.layer.channels == 64 and r.mm_ms]
    if sel:
        worst = min(sel, key=lambda r: r.mm_ms / r.ms["ours fwd cached"])
        q = worst.mm_ms / worst.ms["ours fwd cached"]
        check(
            "cached 3³ 64→64 forward ≥ 50% of torch.mm GFLOP/s",
            q >= 0.5,
            f"worst {100 * q:.0f}% on {worst.input}, {worst.threads} thr",
        )
    sel = [r for r in results if r.mem.get("ours") is not None and r.mem.get("spconv") is not None]
    if sel:
        worst = max(sel, key=lambda r: r.mem["ours"] - r.mem["spconv"])
        ok = all(r.mem["ours"] <= r.mem["spconv"] * 1.05 + 1.0 for r in sel)
        check(
            "peak memory ≤ spconv's (5% + 1 MiB measurement slack)",
            ok,
            f"worst {worst.mem['ours']:.0f} vs {worst.mem['spconv']:.0f} MiB on {worst.input}, {worst.layer.name}",
        )
    return "\n".join(lines)


def dense_baseline(inputs: List[common.SparseInput], reps: int) -> str:
    """Dense ``F.conv3d`` 3³ forward+backward on a densified scene vs our SubMConv3d 3³ and 7³."""
    cand = [i for i in inputs if i.name.startswith("ScanNet") and "0.05" in i.name] or [
        min(inputs, key=lambda i: int(np.prod(i.spatial_shape)))
    ]
    inp = cand[0]
    c = 32
    shape = list(inp.spatial_shape)
    cells = int(np.prod(shape))
    if cells * c * 4 > 2**30:
        return f"Dense baseline skipped: {inp.name} densifies to {cells:,} cells (> 1 GiB per tensor)."
    feats = torch.randn(inp.num_sites, c)
    rows = []
    x = ours.SparseConvTensor(feats, inp.indices, shape, 1)
    dense = x.dense().detach()
    w3 = torch.randn(c, c, 3, 3, 3) * 0.05
    fns = {}

    def dense_step():
        d = dense.clone().requires_grad_()
        w = w3.clone().requires_grad_()
        y = TF.conv3d(d, w, padding=1)
        y.backward(torch.ones_like(y))
        return d.grad

    fns["dense F.conv3d 3³ fwd+bwd"] = dense_step
    for k in (3, 7):
        conv = ours.SubMConv3d(c, c, k)

        def sparse_step(conv=conv):
            f = feats.clone().requires_grad_()
            y = conv(ours.SparseConvTensor(f, inp.indices, shape, 1, validate=False))
            y.features.backward(torch.ones_like(y.features))
            return f.grad

        fns[f"ours SubMConv3d {k}³ fwd+bwd (incl. map)"] = sparse_step
    ms = common.time_alternating(fns, reps=max(2, reps // 2), warmup=1)
    dense_ms = ms["dense F.conv3d 3³ fwd+bwd"]
    for name, t in ms.items():
        rows.append([name, common.fmt(t), common.fmt(dense_ms / t, 1)])
    return (
        f"Input: {inp.name} ({inp.num_sites:,} sites, dense grid {shape} = {cells:,} cells), 32→32, "
        f"{torch.get_num_threads()} threads. A dense 7³ step costs ~13× the 3³ one and is not run.\n\n"
        + common.markdown_table(["step", "ms", "dense 3³ / this"], rows)
    )


def profile(inp: common.SparseInput, reps: int) -> str:
    """Where our forward time goes: map building, the fused path's pair layout (built once per map), and the
    convolution with the map cached (the fused per-thread tiles that run by default where available), and for
    comparison the phases of the tiled pass-by-pass dataflow (gather, GEMM, scatter, each re-run over the
    same tiles on all threads)."""
    rows = []
    for k, c in ((3, 32), (3, 64), (7, 32), (7, 64)):
        conv = ours.SubMConv3d(c, c, k, bias=False)
        feats = torch.randn(inp.num_sites, c)
        geo = conv.geometry
        shape = list(inp.spatial_shape)
        kmap = ours.build_submanifold_map(inp.indices, shape, 1, geo)
        w = functional.module_weight_to_grouped(conv.weight.detach(), 1)
        tile = conv_tiled._tile_rows(c, 4, DEFAULT_TUNING)
        identity = maps.identity_offset(kmap)  # the centre: one dense GEMM, no gather/scatter
        tiles = list(conv_tiled._tiles(kmap.offset_starts, tile, identity))
        bi, bo, out = torch.empty(tile, c), torch.empty(tile, c), torch.zeros(inp.num_sites, c)
        pout = kmap.pair_out.numpy()
        gather_rows = conv_tiled._row_gatherer(feats, kmap.pair_in)  # as the tiled passes do at this thread count

        def gather():
            for a, b, _ in tiles:
                gather_rows(a, b, bi)

        def gemm():
            if identity >= 0:
                torch_conv.apply_offset(feats, w[identity])
            for _, _, segs in tiles:
                for kk, s, e in segs:
                    torch_conv.apply_offset(bi[s:e], w[kk], out=bo[s:e])

        def scatter():
            for a, _b, segs in tiles:
                team.scatter_add_segments(
                    bo.numpy(),
                    pout,
                    a,
                    [(s, e) for _, s, e in segs],
                    out.numpy(),
                    torch.get_num_threads(),
                    DEFAULT_TUNING.scatter_min_parallel_rows,
                )

        def cached():
            with torch.no_grad():
                return functional.gather_gemm_scatter(feats, w, kmap, kmap.num_out)

        threads = torch.get_num_threads()
        fused = plan_conv(feats, w, kmap).dataflow is Dataflow.CPU_FUSED

        def layout():  # what the first conv on a fresh map builds (memoised on the map after)
            conv_fused.build_row_split(kmap, False, threads, DEFAULT_TUNING)

        def total():
            with torch.no_grad():
                return conv(ours.SparseConvTensor(feats, inp.indices, shape, 1, validate=False))

        fns = {
            "map": lambda: ours.build_submanifold_map(inp.indices, shape, 1, geo),
            "cached": cached,
            "gather": gather,
            "gemm": gemm,
            "scatter": scatter,
            "total": total,
        }
        if fused:
            fns["layout"] = layout
        ms = common.time_alternating(fns, reps)
        passes = ms["gather"] + ms["gemm"] + ms["scatter"]
        other = ms["total"] - ms["map"] - ms.get("layout", 0.0) - ms["cached"]
        rows.append(
            [
                f"k{k} {c}→{c}",
                common.fmt(ms["total"]),
                common.fmt(ms["map"]),
                common.fmt(ms["layout"]) if fused else "–",
                common.fmt(ms["cached"]),
                common.fmt(other),
                common.fmt(ms["gather"]),
                common.fmt(ms["gemm"]),
                common.fmt(ms["scatter"]),
                common.fmt(passes),
                len(tiles),
                sum(len(s) for _, _, s in tiles),
            ]
        )
    return (
        f"Input: {inp.name}, {torch.get_num_threads()} threads, forward incl. map, ms (medians). 'conv' is the "
        f"convolution with the map cached as it runs by default (SIMD panels on per-thread row ranges where "
        f"torch has libgomp); 'layout' is that path's split of the pairs by output-row range, built by the "
        f"first conv on a map and memoised on it; 'other' = total − map − layout − conv (module overhead, "
        f"Python). For comparison, the phases of the tiled pass-by-pass dataflow (the fallback), each timed "
        f"over the same tiles.\n\n"
        + common.markdown_table(
            [
                "layer",
                "total",
                "map",
                "layout",
                "conv (map cached)",
                "other",
                "tiled: gather",
                "tiled: GEMM",
                "tiled: scatter",
                "tiled: sum",
                "tiles",
                "GEMM calls",
            ],
            rows,
        )
    )


def run(quick: bool, threads: Optional[List[int]] = None) -> str:
    """The engine section; ``threads``: thread counts to time (default: the machine's and 1)."""
    sp = common.load_spconv()
    inputs = common.load_inputs(quick)
    for inp in inputs:
        _SITES[inp.name] = inp.num_sites
    reps = 2 if quick else 3
    thread_counts = sorted(set(threads or [common_default_threads(), 1]), reverse=True)
    # the layers of the targets first, 1 thread (spconv's reliable setting) before the default
    order = sorted(layers(quick), key=lambda ly: (ly.kind != "subm", ly.kernel == 5, ly.channels, ly.kernel))
    cases = [(inp, layer, t) for layer in order for t in sorted(thread_counts) for inp in inputs]
    results = []
    bar = tqdm(cases, desc="engine cases", file=sys.stderr)
    for n, (inp, layer, t) in enumerate(bar):
        results.append(bench_case(sp, inp, layer, t, reps, seed=n))
        bar.write(results_table(results[-1:]).splitlines()[-1], file=sys.stderr)  # progress: the new row
    results.sort(key=lambda r: ([i.name for i in inputs].index(r.input), layers(quick).index(r.layer), -r.threads))
    engines = ["ours"] + (["spconv"] if sp is not None else [])
    for inp in tqdm(inputs, desc="peak memory", file=sys.stderr):
        mem = measure_memory(inp, engines, quick)
        for r in results:
            if r.input == inp.name and r.threads == max(thread_counts):
                r.mem = {e: mem.get((r.layer.name, e)) for e in engines}
    parts = [
        "## Sparse-convolution engine vs spconv 2.3.8 (CPU)",
        "",
        "Inputs: "
        + "; ".join(f"**{i.name}**: {i.source}, {i.num_sites:,} sites, grid {list(i.spatial_shape)}" for i in inputs)
        + ".",
        "",
        "spconv: "
        + ("2.3.8 installed" if sp is not None else "not installed (ours only)")
        + f". Times are medians of {reps} alternating rounds after one warm-up round, wall clock, ms. "
        "'fwd' = first call (kernel map built), 'cached' = map reused via indice_key, 'map' = their "
        "difference (spconv's cached call gets the indice_dict of its first output, as its next layer would; "
        "spconv does not reuse strided-conv pairs). Inverse conv always reuses its paired conv's map. "
        "GFLOP/s are useful FLOPs "
        "2·pairs·C_in·C_out of the cached forward; 'mm' is torch.mm of the same size in the same run. "
        "'GEMM floor' is the same FLOPs at torch.mm's best in-cache rate (blocks of 4 k or 16 k rows, operands "
        "cached), and 'spconv fwd / floor' the largest speed-up over spconv that an engine whose GEMMs run at "
        "torch.mm's speed could reach even with a free kernel map, gathers and scatters (our products run in "
        "SIMD register panels at about twice torch.mm's rate on these shapes, so the bound is not ours). "
        "Peak MiB: RSS high-water-mark increase of one first call (VmHWM reset via /proc/self/clear_refs), "
        "each engine in its own process with glibc's mmap threshold pinned at 64 KiB, default threads. "
        "Max rel. diff: max|ours−spconv|/max|spconv| at 1 thread.",
        "",
        results_table(results),
        "",
        "### Targets (this run)",
        "",
        targets(results),
        "",
        "### Rows against their GEMM floor (issue #25)",
        "",
        floor_shares(results),
        "",
        "### Dense baseline",
        "",
        dense_baseline(inputs, reps),
        "",
        "### Where our time goes",
        "",
        profile(inputs[-1] if quick else next((i for i in inputs if i.name.startswith("KITTI")), inputs[0]), reps),
    ]
    return "\n".join(parts)


def extras(quick: bool) -> str:
    """Only the parts that need no engine-vs-engine timing rounds: peak memory per input and layer,
    the dense baseline and the time profile (``python benchmarks/bench_engine.py --extras``)."""
    sp = common.load_spconv()
    inputs = common.load_inputs(quick)
    reps = 2 if quick else 3
    engines = ["ours"] + (["spconv"] if sp is not None else [])
    rows = []
    for inp in tqdm(inputs, desc="peak memory", file=sys.stderr):
        mem = measure_memory(inp, engines, quick)
        for layer in layers(quick):
            rows.append([inp.name, layer.name] + [common.fmt(mem.get((layer.name, e))) for e in engines])
    return "\n".join(
        [
            "### Peak memory of one first call (MiB, RSS high-water mark, own process per engine)",
            "",
            common.markdown_table(["input", "layer"] + [f"{e} peak MiB" for e in engines], rows),
            "",
            "### Dense baseline",
            "",
            dense_baseline(inputs, reps),
            "",
            "### Where our time goes",
            "",
            profile(inputs[-1] if quick else next((i for i in inputs if i.name.startswith("KITTI")), inputs[0]), reps),
        ]
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-worker"]:  # measures peaks: keeps glibc's settings from its environment
        _memory_worker(sys.argv[2], sys.argv[3])
    else:
        keep_freed_memory()
        if "--extras" in sys.argv[1:]:
            print(extras(quick="--quick" in sys.argv[1:]))
        else:
            counts = [int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--threads=")]
            print(run(quick="--quick" in sys.argv[1:], threads=counts or None))
