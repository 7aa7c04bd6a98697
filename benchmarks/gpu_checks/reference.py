"""Dense-reference checks of the engine's layers on one device, forward and backward.

Each check builds a random sparse tensor (random sites, standard-normal features, random parameters), runs a
layer of the engine in the checked dtype on the device, and compares its output and the gradients of a random
cotangent (w.r.t. the features and every parameter) with ``torch.nn.functional.conv3d`` /
``conv_transpose3d`` on the densified grid, computed in float64 on the same device and read at the active
sites. Conventions (spconv's; weights ``[C_out, k, k, k, C_in]``):

* ``SubMConv3d``:  ``out[p] = b + sum_k W[k] x[p + d (k - k//2)]`` = ``conv3d`` of the zero-padded grid read at
  the input sites;
* ``SparseConv3d`` (stride s, padding p): ``out[q] = b + sum_k W[k] x[s q - p + k]`` = ``conv3d`` read at the
  output sites;
* ``SparseInverseConv3d`` of that conv: ``out[s q - p + k] += W[k] y[q]`` = ``conv_transpose3d`` read at the
  sites of the regular conv's input;
* ``SWLKConv3d``: the plain ``k³`` conv whose offsets carry their group's weight (+ the dilated branch's
  3³ taps), plus the position encoding as a conv of the active-site indicator with
  ``E[k] @ W_{g(k)}`` (centre offset excluded).

The error of a comparison is ``max |engine - reference| / max |reference|``; a check passes when every
compared tensor is within its dtype's tolerance (:data:`TOLERANCE`).
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import largekernel3d.sparse as lsp
from largekernel3d.nn import SWLKConv3d
from largekernel3d.nn.convert import encoding_weight, merge_dilated, plain_from_grouped

TOLERANCE: Dict[torch.dtype, float] = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}
"""Largest accepted relative error (of the scale of the reference) per checked dtype."""


@dataclass
class CheckResult:
    """One check: its name, the dtype, pass/fail, the largest relative error over the compared tensors
    (``None`` when it did not run), per-tensor errors and an error message when it raised."""

    name: str
    dtype: str
    passed: bool
    max_error: Optional[float]
    errors: Dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class CheckSize:
    """Grid side, channels, batch size and site density of the random inputs."""

    side: int
    channels: int
    batch: int
    density: float


FULL = CheckSize(side=20, channels=16, batch=2, density=0.15)
TINY = CheckSize(side=9, channels=4, batch=1, density=0.3)


def relative_error(value: Tensor, reference: Tensor) -> float:
    """``max |value - reference| / max |reference|`` in float64 (``inf`` on a shape mismatch)."""
    if value.shape != reference.shape:
        return float("inf")
    scale = reference.detach().abs().max().clamp_min(1e-30)
    return float((value.detach().double() - reference.detach().double()).abs().max() / scale)


def random_input(size: CheckSize, device: torch.device, seed: int) -> lsp.SparseConvTensor:
    """Random distinct sites (``density`` of the ``batch × side³`` cells, unsorted) with standard-normal
    float64 features, on ``device``."""
    g = torch.Generator().manual_seed(seed)
    cells = size.batch * size.side**3
    flat = torch.randperm(cells, generator=g)[: max(8, int(size.density * cells))]
    cols = []
    for _ in range(3):
        cols.append(flat % size.side)
        flat = flat // size.side
    idx = torch.stack([flat, cols[2], cols[1], cols[0]], dim=1).to(torch.int32)
    feats = torch.randn(idx.shape[0], size.channels, generator=g, dtype=torch.float64)
    return lsp.SparseConvTensor(feats.to(device), idx.to(device), [size.side] * 3, size.batch)


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter ``N(0, 1 / fan)``-scaled random (``fan`` = its elements over its first dimension),
    so outputs stay O(1) whatever the kernel volume."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            fan = max(1, p.numel() // p.shape[0]) if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p) / fan**0.5)
    return module


def site_rows(dense: Tensor, indices: Tensor) -> Tensor:
    """Rows ``[N, C]`` of a channels-first ``[B, C, *spatial]`` grid at ``indices``."""
    idx = indices.long()
    return dense.movedim(1, -1)[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]]


def active_mask(x: lsp.SparseConvTensor, dtype: torch.dtype) -> Tensor:
    """``[B, 1, *spatial]``: 1 at the active sites."""
    mask = torch.zeros((x.batch_size, 1, *x.spatial_shape), dtype=dtype, device=x.features.device)
    idx = x.indices.long()
    mask[idx[:, 0], 0, idx[:, 1], idx[:, 2], idx[:, 3]] = 1
    return mask


def conv_weight(weight: Tensor) -> Tensor:
    """``[C_out, *k, C_in]`` → ``conv3d``'s ``[C_out, C_in, *k]``."""
    return weight.movedim(-1, 1)


def dense_subm(x: lsp.SparseConvTensor, weight: Tensor, dilation: Sequence[int] = (1, 1, 1)) -> Tensor:
    """Submanifold conv of the densified ``x`` (odd kernel), rows at ``x``'s sites."""
    k = weight.shape[1:-1]
    pad = [d * (kk // 2) for kk, d in zip(k, dilation)]
    out = F.conv3d(x.dense(), conv_weight(weight), None, 1, pad, tuple(dilation))
    return site_rows(out, x.indices)


# ------------------------------------------------------------------------------------------------
# one check = engine module, reference module (float64 copy), reference function
# ------------------------------------------------------------------------------------------------


def _compare(
    name: str,
    dtype: torch.dtype,
    x64: lsp.SparseConvTensor,
    module: nn.Module,
    run: Callable[[nn.Module, lsp.SparseConvTensor], Tuple[Tensor, Tensor]],
    reference: Callable[[nn.Module, lsp.SparseConvTensor], Tensor],
    seed: int,
) -> CheckResult:
    """``run(module, x) -> (out rows, out indices)`` in ``dtype`` vs ``reference(module64, x64) -> rows``
    in float64 (rows in the engine's output order); then one backward of the same random cotangent through
    both, gradients of the features and of every parameter compared."""
    ref_module = copy.deepcopy(module).double()
    module = module.to(dtype)
    feats = x64.features.detach().to(dtype).requires_grad_(True)
    feats64 = x64.features.detach().clone().requires_grad_(True)
    out, _ = run(module, x64.replace_feature(feats))
    ref = reference(ref_module, x64.replace_feature(feats64))
    errors = {"forward": relative_error(out, ref)}
    g = torch.Generator().manual_seed(seed + 1)
    cot = torch.randn(ref.shape, generator=g, dtype=torch.float64).to(ref.device)
    names = ["features"] + [n for n, _ in module.named_parameters()]
    grads = torch.autograd.grad((out * cot.to(out.dtype)).sum(), [feats] + list(module.parameters()), allow_unused=True)
    ref_grads = torch.autograd.grad((ref * cot).sum(), [feats64] + list(ref_module.parameters()), allow_unused=True)
    for n, got, want in zip(names, grads, ref_grads):
        if want is None or not bool(want.abs().max() > 0):
            continue  # a parameter the outputs do not depend on (e.g. the SW-LK centre encoding row)
        got = torch.zeros_like(want) if got is None else got
        errors[f"d {n}"] = relative_error(got, want)
    worst = max(errors.values())
    return CheckResult(name, str(dtype).replace("torch.", ""), worst <= TOLERANCE[dtype], worst, errors)


def _run_rows(module: nn.Module, x: lsp.SparseConvTensor) -> Tuple[Tensor, Tensor]:
    y = module(x)
    return y.features, y.indices


def check_subm(
    size: CheckSize, device: torch.device, dtype: torch.dtype, kernel: int, dilation: int = 1, seed: int = 0
) -> CheckResult:
    """``SubMConv3d(C, C, kernel, dilation)`` with bias against the padded dense conv."""
    c = size.channels
    x = random_input(size, device, seed)
    conv = randomize_(lsp.SubMConv3d(c, c, kernel, dilation=dilation, bias=True), seed + 10).to(device)

    def reference(m: nn.Module, x64: lsp.SparseConvTensor) -> Tensor:
        return dense_subm(x64, m.weight, (dilation,) * 3) + m.bias

    name = f"SubMConv3d {kernel}³" + (f" dilation {dilation}" if dilation > 1 else "")
    return _compare(name, dtype, x, conv, _run_rows, reference, seed)


def check_strided(
    size: CheckSize, device: torch.device, dtype: torch.dtype, kernel: int, stride: int, padding: int, seed: int = 0
) -> CheckResult:
    """``SparseConv3d(C, 2C, kernel, stride, padding)`` with bias against ``conv3d``, read at its output sites
    (which must be exactly the cells the kernel reaches from an active site)."""
    c = size.channels
    x = random_input(size, device, seed)
    conv = randomize_(lsp.SparseConv3d(c, 2 * c, kernel, stride, padding, bias=True), seed + 10).to(device)
    out_indices: List[Tensor] = []

    def run(m: nn.Module, xx: lsp.SparseConvTensor) -> Tuple[Tensor, Tensor]:
        rows, idx = _run_rows(m, xx)
        out_indices.append(idx)
        return rows, idx

    def reference(m: nn.Module, x64: lsp.SparseConvTensor) -> Tensor:
        dense = F.conv3d(x64.dense(), conv_weight(m.weight), m.bias, stride, padding)
        reached = F.conv3d(
            active_mask(x64, torch.float64),
            torch.ones((1, 1) + (kernel,) * 3, dtype=torch.float64, device=dense.device),
            None,
            stride,
            padding,
        )
        expected = int((reached > 0.5).sum())
        if expected != out_indices[0].shape[0]:
            raise AssertionError(f"{out_indices[0].shape[0]} output sites, the dense conv reaches {expected}")
        return site_rows(dense, out_indices[0])

    return _compare(f"SparseConv3d {kernel}³ stride {stride} padding {padding}", dtype, x, conv, run, reference, seed)


class _DownUp(nn.Module):
    """``SparseConv3d`` then the ``SparseInverseConv3d`` of its kernel map (one ``indice_key``)."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.down = lsp.SparseConv3d(c, 2 * c, kernel, stride, padding, bias=True, indice_key="down")
        self.up = lsp.SparseInverseConv3d(2 * c, c, kernel, indice_key="down", bias=True)
        self.geometry = (kernel, stride, padding)

    def forward(self, x: lsp.SparseConvTensor) -> lsp.SparseConvTensor:
        return self.up(self.down(x))


def check_inverse(
    size: CheckSize,
    device: torch.device,
    dtype: torch.dtype,
    kernel: int = 3,
    stride: int = 2,
    padding: int = 1,
    seed: int = 0,
) -> CheckResult:
    """``SparseInverseConv3d`` after a strided ``SparseConv3d`` (gradients through both) against
    ``conv_transpose3d`` of the dense strided output, read at the input sites."""
    x = random_input(size, device, seed)
    net = randomize_(_DownUp(size.channels, kernel, stride, padding), seed + 10).to(device)

    def run(m: nn.Module, xx: lsp.SparseConvTensor) -> Tuple[Tensor, Tensor]:
        y = m(xx)
        if not torch.equal(y.indices.long(), xx.indices.long()):
            raise AssertionError("the inverse conv's output sites are not the input's sites in their order")
        return y.features, y.indices

    def reference(m: nn.Module, x64: lsp.SparseConvTensor) -> Tensor:
        w_down = conv_weight(m.down.weight)
        coarse = F.conv3d(x64.dense(), w_down, m.down.bias, stride, padding)
        ones = torch.ones((1, 1) + (kernel,) * 3, dtype=torch.float64, device=coarse.device)
        reached = (F.conv3d(active_mask(x64, torch.float64), ones, None, stride, padding) > 0.5).to(coarse.dtype)
        coarse = coarse * reached  # only the active coarse sites feed the inverse conv
        w_up = m.up.weight.permute(4, 0, 1, 2, 3)  # [C_in(up), C_out(up), *k]
        full = F.conv_transpose3d(coarse, w_up, None, stride, 0)  # cell s q + k, before the padding shift
        pads = []
        for have, want in zip(reversed(full.shape[2:]), reversed(list(x64.spatial_shape))):
            pads += [0, max(0, padding + want - have)]
        fine = F.pad(full, pads)[
            (slice(None), slice(None)) + tuple(slice(padding, padding + s) for s in x64.spatial_shape)
        ]
        return site_rows(fine, x64.indices) + m.up.bias

    return _compare(
        f"SparseInverseConv3d {kernel}³ stride {stride} (after the strided conv)", dtype, x, net, run, reference, seed
    )


def check_swlk(
    size: CheckSize,
    device: torch.device,
    dtype: torch.dtype,
    kernel: int = 7,
    dilated_branch: bool = True,
    seed: int = 0,
) -> CheckResult:
    """``SWLKConv3d(kernel, position_encoding=True, bias=True)`` (optionally with the dilated branch) against
    the dense conv with its groups expanded plus the encoding conv of the site indicator."""
    c = size.channels
    x = random_input(size, device, seed)
    layer = randomize_(
        SWLKConv3d(c, c, kernel, position_encoding=True, dilated_branch=dilated_branch, bias=True), seed + 10
    ).to(device)

    def reference(m: nn.Module, x64: lsp.SparseConvTensor) -> Tensor:
        weight = plain_from_grouped(m.weight, m.partition)
        if m.dilated is not None:
            weight = merge_dilated(weight, m.dilated.weight, m.dilated.dilation)
        out = dense_subm(x64, weight)
        enc = encoding_weight(m)  # [C_out, *k, 1]
        pad = [k // 2 for k in m.kernel_size]
        out = out + site_rows(F.conv3d(active_mask(x64, torch.float64), conv_weight(enc), None, 1, pad), x64.indices)
        return out + m.bias

    name = f"SWLKConv3d {kernel}³ (position encoding" + (", dilated branch)" if dilated_branch else ")")
    return _compare(name, dtype, x, layer, _run_rows, reference, seed)


def all_checks(size: CheckSize, device: torch.device) -> List[Tuple[str, Callable[[], CheckResult]]]:
    """The checks to run, as ``(name, thunk)``: every layer in float32, then the 3³ submanifold, strided and
    SW-LK layers in float16 and bfloat16 (features and weights cast; the engine's pure-PyTorch path)."""
    f32 = torch.float32
    checks: List[Tuple[str, Callable[[], CheckResult]]] = [
        ("subm3", lambda: check_subm(size, device, f32, 3, seed=1)),
        ("subm5 dil2", lambda: check_subm(size, device, f32, 5, dilation=2, seed=2)),
        ("subm7", lambda: check_subm(size, device, f32, 7, seed=3)),
        ("strided k3 s2 p1", lambda: check_strided(size, device, f32, 3, 2, 1, seed=4)),
        ("strided k2 s2 p0", lambda: check_strided(size, device, f32, 2, 2, 0, seed=5)),
        ("inverse k3 s2", lambda: check_inverse(size, device, f32, 3, 2, 1, seed=6)),
        ("inverse k2 s2", lambda: check_inverse(size, device, f32, 2, 2, 0, seed=7)),
        ("swlk7", lambda: check_swlk(size, device, f32, 7, dilated_branch=True, seed=8)),
        ("swlk5", lambda: check_swlk(size, device, f32, 5, dilated_branch=False, seed=9)),
    ]
    for dtype in (torch.float16, torch.bfloat16):
        tag = str(dtype).replace("torch.", "")
        checks += [
            (f"subm3 {tag}", lambda d=dtype: check_subm(size, device, d, 3, seed=11)),
            (f"strided {tag}", lambda d=dtype: check_strided(size, device, d, 3, 2, 1, seed=12)),
            (f"swlk7 {tag}", lambda d=dtype: check_swlk(size, device, d, 7, dilated_branch=True, seed=13)),
        ]
    return checks


def run_check(name: str, thunk: Callable[[], CheckResult]) -> CheckResult:
    """``thunk()``, or a failed result carrying the exception's last line when it raised."""
    try:
        return thunk()
    except Exception as err:  # a broken layer must be reported, not stop the other checks
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        return CheckResult(name, "", False, None, message=last)
