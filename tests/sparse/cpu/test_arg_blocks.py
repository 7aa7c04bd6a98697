"""Argument blocks of the OpenMP bodies (``sparse/cpu/arg_blocks.py``): every declaration packs and unpacks every
field at its declared word (in Python and inside numba, through the generated constants), the packer refuses
missing, unknown, ill-typed and mis-sized fields naming the block and the field, and the launcher refuses a block
that is not its body's before any body runs."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
import torch

from largekernel3d.sparse.cpu import arg_blocks, conv_fused, group_fused, group_team, maps, team
from largekernel3d.sparse.cpu.arg_blocks import (
    Array,
    ConvFused,
    ConvLayout,
    GroupLayout,
    GroupLayoutBags,
    GroupLayoutSlots,
    Int,
    TeamScatter,
    arg_block,
    open_block,
    reads,
)

BODIES = [
    (team._team_body, TeamScatter),
    (conv_fused._layout_body, ConvLayout),
    (conv_fused._fused_body, ConvFused),
    (group_fused._groups_body, arg_blocks.GroupFused),
    (group_team._team_slots_body, GroupLayoutSlots),
    (group_team._team_bags_body, GroupLayoutBags),
    (maps._team_sweep_body, arg_blocks.MapSweep),
    (maps._team_pass_body, arg_blocks.MapPass),
    (maps._team_place_body, arg_blocks.MapPlace),
]


def _sample_values(decl, seed: int):
    """Random values for every field of ``decl``: small random sizes and flags, arrays of the declared dtype and
    shape (unchecked dimensions: a random length), kept alive in the returned dict."""
    rng = np.random.default_rng(seed)
    ints = {
        f.name: int(rng.integers(0, 2 if "double" == f.name or f.name.endswith("64") else 7))
        for f in decl.declared_fields
        if isinstance(f, Int)
    }
    values = dict(ints)
    for f in decl.declared_fields:
        if isinstance(f, Array):
            dtype = f.dtype.choices[ints[f.dtype.flag]] if isinstance(f.dtype, arg_blocks.ByFlag) else f.dtype
            shape = tuple(
                int(rng.integers(1, 5)) if d is None else (d if isinstance(d, int) else arg_blocks._eval_dim(d, ints))
                for d in f.shape
            )
            values[f.name] = (rng.standard_normal(shape) * 100).astype(dtype)
    return values


def _expected_words(decl, values):
    return {
        n: (values[n].ctypes.data if isinstance(values[n], np.ndarray) else int(values[n])) for n in decl.field_names()
    }


def _numba_reader(decl):
    """An @njit function reading every field of ``decl`` through its generated constants (``h[D.FIELD]``)."""
    names = [n.upper() for n in decl.field_names()]
    src = "def read(h):\n"
    src += "    return (" + ", ".join(f"h[D.{n}]" for n in names) + ",)\n"
    scope = {"D": decl}
    exec(src, scope)
    return nb.njit(scope["read"])


@pytest.mark.parametrize("decl", arg_blocks.DECLARATIONS, ids=lambda d: d.block_name)
def test_every_field_round_trips_in_python_and_in_numba(decl):
    values = _sample_values(decl, seed=len(decl.block_name))
    block = decl.pack(**values)
    assert block.dtype == np.int64 and block.shape == (int(decl.SIZE),)
    expected = _expected_words(decl, values)
    assert decl.unpack(block) == expected
    for name, word in expected.items():  # the generated offsets, read by hand
        assert int(block[int(decl[name.upper()])]) == word
    assert list(_numba_reader(decl)(block)) == [expected[n] for n in decl.field_names()]
    positions = sorted(int(decl[n.upper()]) for n in decl.field_names())
    assert positions == list(range(1, int(decl.SIZE)))  # every word but CHECK holds one field


def test_a_body_reads_its_words_through_the_constants_inside_numba():
    values = _sample_values(ConvFused, seed=3)
    block = ConvFused.pack(**values)

    @nb.njit
    def read(h):
        ok = h[ConvFused.CHECK] == ConvFused.FINGERPRINT
        return ok, h[ConvFused.TOTAL], h[ConvFused.SRC], h[ConvFused.IDENTITY], h[ConvFused.GRAD_W]

    ok, total, src, identity, grad_w = read(block)
    assert ok and (total, src, identity, grad_w) == (
        values["total"],
        values["src"].ctypes.data,
        values["identity"],
        values["grad_w"].ctypes.data,
    )


def test_derived_blocks_keep_the_base_words_at_the_same_positions():
    pairs = [(d, GroupLayout) for d in (GroupLayoutSlots, GroupLayoutBags)]
    pairs += [(d, arg_blocks.MapLines) for d in (arg_blocks.MapSweep, arg_blocks.MapPass)]
    for derived, base in pairs:
        assert derived.field_names()[: len(base.field_names())] == base.field_names()
        for name in base.field_names():
            assert int(derived[name.upper()]) == int(base[name.upper()])
    assert len({int(d.FINGERPRINT) for d in arg_blocks.DECLARATIONS}) == len(arg_blocks.DECLARATIONS)


def test_missing_unknown_and_ill_typed_fields_name_the_block_and_the_field():
    values = _sample_values(ConvLayout, seed=1)
    partial = {k: v for k, v in values.items() if k != "seg"}
    with pytest.raises(TypeError, match=r"'conv_layout'.*missing field\(s\) seg"):
        ConvLayout.pack(**partial)
    with pytest.raises(TypeError, match=r"'conv_layout'.*unknown field\(s\) segs"):
        ConvLayout.pack(**values, segs=values["seg"])
    with pytest.raises(TypeError, match=r"'conv_layout': field 'k' must be an int"):
        ConvLayout.pack(**{**values, "k": 2.5})
    with pytest.raises(TypeError, match=r"'conv_layout': field 'owner' must be int32, got int64"):
        ConvLayout.pack(**{**values, "owner": values["owner"].astype(np.int64)})
    with pytest.raises(TypeError, match=r"'conv_layout': field 'src' is required"):
        ConvLayout.pack(**{**values, "src": None})
    with pytest.raises(TypeError, match=r"'conv_layout': field 'src' must be C-contiguous"):
        ConvLayout.pack(**{**values, "src": np.repeat(values["src"], 2)[::2]})


def test_a_length_mismatch_names_the_field_and_the_declared_dimension():
    values = _sample_values(ConvLayout, seed=2)
    short = values["seg"][:-1].copy()
    with pytest.raises(ValueError, match=r"'conv_layout': field 'seg': length .* declared 'parts \* k \+ 1'"):
        ConvLayout.pack(**{**values, "seg": short})
    fused = _sample_values(ConvFused, seed=4)
    wide = np.zeros((fused["n_a"], fused["c_a"] + 1), fused["a"].dtype)
    with pytest.raises(ValueError, match=r"'conv_fused': field 'a': length .* axis 1 .* 'c_a'"):
        ConvFused.pack(**{**fused, "a": wide})
    # dtype chosen by a flag: float64 arrays with double = 0 are refused
    with pytest.raises(TypeError, match=r"'conv_fused': field 'a' must be float32, got float64"):
        ConvFused.pack(
            **{
                **fused,
                "double": 0,
                "a": fused["a"].astype(np.float64),
                "w": fused["w"].astype(np.float32),
                "out": None,
                "x": None,
                "grad_w": None,
            }
        )


def test_tensors_are_packed_by_address_and_optional_arrays_as_zero():
    values = _sample_values(ConvFused, seed=5)
    values["a"] = torch.from_numpy(values["a"])
    values["out"] = values["x"] = values["grad_w"] = None
    words = ConvFused.unpack(ConvFused.pack(**values))
    assert words["a"] == values["a"].data_ptr() and words["out"] == words["x"] == words["grad_w"] == 0
    with pytest.raises(TypeError, match=r"'conv_fused': field 'a' must be a contiguous CPU tensor"):
        ConvFused.pack(**{**values, "a": values["a"].t()})


def test_declarations_refuse_reserved_duplicate_and_unknown_names():
    with pytest.raises(ValueError, match="'bad'.*'size'"):
        arg_block("bad", [Int("size")])
    with pytest.raises(ValueError, match="'bad'.*n declared twice"):
        arg_block("bad", [Int("n"), Int("n")])
    with pytest.raises(ValueError, match="'bad'.*array 'a' refers to \\['m'\\]"):
        arg_block("bad", [Int("n"), Array("a", np.int32, ("m + 1",))])


@pytest.mark.parametrize("body, decl", BODIES, ids=lambda b: getattr(b, "__name__", ""))
def test_every_body_declares_its_block(body, decl):
    assert body.arg_block is decl


@pytest.mark.parametrize("body, decl", BODIES, ids=lambda b: getattr(b, "__name__", ""))
def test_the_launcher_refuses_a_block_that_is_not_its_bodys_before_running(body, decl, monkeypatch):
    monkeypatch.setattr(team, "_torch_libgomp", lambda: pytest.fail("the team started"))
    good = decl.pack(**_sample_values(decl, seed=7))
    with pytest.raises(ValueError, match=f"'{decl.block_name}' has {int(decl.SIZE) - 1} words"):
        team.run_on_team(body, good[:-1].copy(), 1)
    with pytest.raises(ValueError, match=f"'{decl.block_name}' has {int(decl.SIZE) + 1} words"):
        team.run_on_team(body, np.concatenate([good, [0]]), 1)
    other = ConvLayout if decl is not ConvLayout else ConvFused
    with pytest.raises((ValueError, TypeError), match=f"'{decl.block_name}'"):
        team.run_on_team(body, other.pack(**_sample_values(other, seed=8)), 1)
    with pytest.raises(TypeError, match=f"'{decl.block_name}' must be a 1-D C-contiguous np.int64"):
        team.run_on_team(body, good.astype(np.int32), 1)


def test_a_body_without_a_declaration_is_refused(monkeypatch):
    monkeypatch.setattr(team, "_torch_libgomp", lambda: pytest.fail("the team started"))
    with pytest.raises(TypeError, match="declares no argument block"):
        team.run_on_team(lambda block: None, TeamScatter.pack(**_sample_values(TeamScatter, seed=9)), 1)


_STALE_FINGERPRINT = 12345  # a body compiled against another layout of TeamScatter


@reads(TeamScatter)
def _stale_body(block):
    h, ok = open_block(block, TeamScatter.SIZE, _STALE_FINGERPRINT)
    if not ok:
        return
    h[TeamScatter.OUT_ROWS] = -1  # never reached


@pytest.mark.skipif(not team.team_available(), reason="torch does not run on GNU libgomp here")
def test_a_body_compiled_against_another_layout_touches_nothing_and_raises():
    values = _sample_values(TeamScatter, seed=10)
    block = TeamScatter.pack(**values)
    with pytest.raises(RuntimeError, match="compiled against another layout of argument block 'team_scatter'"):
        team.run_on_team(_stale_body, block, 2)
    assert int(block[TeamScatter.OUT_ROWS]) == values["out_rows"]
