"""Named argument blocks of the OpenMP bodies: each body's int64 words declared once.

An OpenMP body (a numba ``cfunc`` run by :func:`.team.run_on_team`) receives one pointer to int64 words: flags,
sizes and the addresses of its arrays. A word read at the wrong position is silent memory corruption, so no body
and no caller names a position. Each body has one declaration here, an ordered list of fields::

    ConvFused = arg_block("conv_fused", [Int("double"), Int("k"), Int("total"),
                                         Array("src", np.int32, ("total",)), ...])

from which both sides are generated:

- the **packer** ``ConvFused.pack(double=0, k=27, total=n, src=src32, ...)`` -> ``np.int64`` array: every field
  must be given once (missing, unknown or ill-typed fields raise ``TypeError`` naming the block and the field);
  an ``Array`` takes a C-contiguous numpy array or CPU tensor (or ``None`` when declared ``optional``: address 0)
  whose dtype and shape are checked against the declaration (``ValueError`` on a mismatch) and stores its address;
- the **unpacker** used inside the bodies: the declaration *is* an ``IntEnum`` whose members are the word positions
  (``ConvFused.SRC``), which numba freezes as compile-time constants, so ``h[ConvFused.SRC]`` compiles to a load at
  a constant offset, as a literal index did.

Word 0 of every block (``CHECK``) holds the declaration's ``FINGERPRINT`` (a hash of its name and fields); ``SIZE``
is the number of words. A body opens its block with :func:`open_block`, which views the ``SIZE`` words and, if word 0
is not the fingerprint the body was compiled with (a body compiled, and cached on disk by numba, against another
layout), zeroes word 0 and returns ``ok = False``: the body returns at once and :func:`.team.run_on_team` raises.
:meth:`BlockWords.check` (run by the launcher before the team starts) refuses a block of the wrong dtype, length or
fingerprint.

Array shapes are tuples of dimensions: an ``int``, ``None`` (not checked), or an expression over the block's
``Int`` fields (``"total"``, ``"parts * k + 1"``; ``+``, ``-``, ``*``, ``//`` and integer literals). Array dtypes
are a numpy dtype or :func:`by_flag` (``by_flag("double", np.float32, np.float64)``: the dtype chosen by an ``Int``
flag of the block). Bodies still write their ``numba.carray`` views by hand (``nb.carray(team.int32_pointer(
h[ConvFused.SRC]), (h[ConvFused.TOTAL],))``); the packer has checked the array against the same shape.
"""

from __future__ import annotations

import ast
import enum
import zlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple, Type, Union

import numba as nb
import numpy as np
import torch

# Word 0 and the two extra members of every block; no field may take these names.
_RESERVED = ("check", "size", "fingerprint")
_CHECK_WORD = 0
_TORCH_DTYPES = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
}
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class ByFlag:
    """An array dtype chosen by an ``Int`` flag of the block: ``choices[value of flag]``."""

    flag: str
    choices: Tuple[np.dtype, ...]


def by_flag(flag: str, *choices) -> ByFlag:
    """The dtype of an array selected by the ``Int`` field ``flag`` (0 -> ``choices[0]``, 1 -> ``choices[1]``...)."""
    return ByFlag(flag, tuple(np.dtype(c) for c in choices))


Dim = Union[int, str, None]


@dataclass(frozen=True)
class Int:
    """A scalar word: a size, a count, a flag (``bool`` is stored as 0/1) or an index (may be negative)."""

    name: str


@dataclass(frozen=True)
class Array:
    """The address of an array: ``dtype`` (a numpy dtype or :func:`by_flag`), ``shape`` (dimensions as described in
    the module docstring) and ``optional`` (``None`` packs as address 0)."""

    name: str
    dtype: Union[np.dtype, type, ByFlag]
    shape: Tuple[Dim, ...]
    optional: bool = False


Field = Union[Int, Array]


def _eval_dim(expr: str, values: Dict[str, int]) -> int:
    """The value of a dimension expression over ``values`` (names, ints, ``+ - * //``)."""

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Name):
            return int(values[node.id])
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.FloorDiv):
                return a // b
        raise ValueError(f"unsupported dimension expression {expr!r}")

    return ev(ast.parse(expr, mode="eval"))


def _dim_names(expr: str):
    return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}


class BlockWords(enum.IntEnum):
    """Base of every generated declaration: the members are word positions (``CHECK`` = 0, the fields in declared
    order, then ``SIZE`` = the number of words and ``FINGERPRINT``); the class methods pack, check and unpack."""

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        """The declared field names, in word order."""
        return tuple(f.name for f in cls.declared_fields)

    @classmethod
    def pack(cls, **values: Any) -> np.ndarray:
        """The block as an ``np.int64`` array of ``SIZE`` words; ``values`` gives every field by name."""
        names = cls.field_names()
        missing = [n for n in names if n not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise TypeError(
                f"argument block {cls.block_name!r}: "
                + "; ".join(
                    ([f"missing field(s) {', '.join(missing)}"] if missing else [])
                    + ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                )
                + f" (declared: {', '.join(names)})"
            )
        block = np.zeros(int(cls.SIZE), np.int64)
        block[_CHECK_WORD] = int(cls.FINGERPRINT)
        ints: Dict[str, int] = {}
        for f in cls.declared_fields:
            if isinstance(f, Int):
                ints[f.name] = cls._int_value(f.name, values[f.name])
                block[int(cls[f.name.upper()])] = ints[f.name]
        for f in cls.declared_fields:
            if isinstance(f, Array):
                block[int(cls[f.name.upper()])] = cls._address(f, values[f.name], ints)
        return block

    @classmethod
    def _int_value(cls, name: str, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)):
            return int(value)
        if isinstance(value, (int, np.integer)) and _INT64_MIN <= int(value) <= _INT64_MAX:
            return int(value)
        raise TypeError(
            f"argument block {cls.block_name!r}: field {name!r} must be an int or a bool (int64), got "
            f"{type(value).__name__} {value!r}"
        )

    @classmethod
    def _address(cls, f: Array, value: Any, ints: Dict[str, int]) -> int:
        where = f"argument block {cls.block_name!r}: field {f.name!r}"
        if value is None:
            if f.optional:
                return 0
            raise TypeError(f"{where} is required (an array), got None")
        if isinstance(value, torch.Tensor):
            if value.device.type != "cpu" or not value.is_contiguous() or value.dtype not in _TORCH_DTYPES:
                raise TypeError(
                    f"{where} must be a contiguous CPU tensor of float32/64 or int32/64, got "
                    f"{value.dtype} on {value.device} (contiguous: {value.is_contiguous()})"
                )
            dtype, shape, address = _TORCH_DTYPES[value.dtype], tuple(value.shape), value.data_ptr()
        elif isinstance(value, np.ndarray):
            if not value.flags.c_contiguous:
                raise TypeError(f"{where} must be C-contiguous (np.ascontiguousarray)")
            dtype, shape, address = value.dtype, value.shape, value.ctypes.data
        else:
            raise TypeError(f"{where} must be a numpy array or a CPU tensor, got {type(value).__name__}")
        want = f.dtype.choices[ints[f.dtype.flag]] if isinstance(f.dtype, ByFlag) else np.dtype(f.dtype)
        if dtype != want:
            raise TypeError(f"{where} must be {want}, got {dtype}")
        if len(shape) != len(f.shape):
            raise ValueError(f"{where} must have {len(f.shape)} dimension(s) {f.shape}, got shape {shape}")
        for axis, (dim, got) in enumerate(zip(f.shape, shape)):
            if dim is None:
                continue
            expected = dim if isinstance(dim, int) else _eval_dim(dim, ints)
            if got != expected:
                raise ValueError(
                    f"{where}: length {got} along axis {axis} does not match the declared {dim!r} = "
                    f"{expected} (shape {shape})"
                )
        return int(address)

    @classmethod
    def check(cls, block: Any) -> None:
        """Refuse ``block`` unless it is a C-contiguous int64 array of ``SIZE`` words whose word 0 is this
        declaration's fingerprint (a block packed by :meth:`pack`)."""
        if (
            not isinstance(block, np.ndarray)
            or block.dtype != np.int64
            or block.ndim != 1
            or not block.flags.c_contiguous
        ):
            raise TypeError(
                f"argument block {cls.block_name!r} must be a 1-D C-contiguous np.int64 array "
                f"(from {cls.__name__}.pack)"
            )
        if block.shape[0] != int(cls.SIZE):
            raise ValueError(
                f"argument block {cls.block_name!r} has {block.shape[0]} words, the declaration "
                f"{int(cls.SIZE)}: pack it with {cls.__name__}.pack"
            )
        if int(block[_CHECK_WORD]) != int(cls.FINGERPRINT):
            raise ValueError(
                f"argument block {cls.block_name!r}: word 0 is not its fingerprint (a block of another "
                f"declaration?): pack it with {cls.__name__}.pack"
            )

    @classmethod
    def unpack(cls, block: np.ndarray) -> Dict[str, int]:
        """Every field's word (arrays: their addresses) by name, after :meth:`check`."""
        cls.check(block)
        return {name: int(block[int(cls[name.upper()])]) for name in cls.field_names()}


def arg_block(name: str, fields: Sequence[Field], base: Optional[Type[BlockWords]] = None) -> Type[BlockWords]:
    """The declaration of a body's argument block: an ``IntEnum`` subclass of :class:`BlockWords` named after
    ``name`` (``"group_team.slots"`` -> ``GroupTeamSlots``) with one member per field (upper case) at its word
    position. With ``base``, ``base``'s fields come first, at the same positions (bodies sharing a helper that reads
    the common words with ``base``'s members)."""
    fields = tuple(base.declared_fields if base is not None else ()) + tuple(fields)
    names = [f.name for f in fields]
    for f in fields:
        if not isinstance(f, (Int, Array)):
            raise TypeError(f"argument block {name!r}: {f!r} is not an Int or Array field")
        if not f.name.isidentifier() or f.name != f.name.lower() or f.name in _RESERVED:
            raise ValueError(
                f"argument block {name!r}: field name {f.name!r} must be a lower-case identifier, not "
                f"one of {_RESERVED}"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"argument block {name!r}: field(s) {', '.join(duplicates)} declared twice")
    ints = {f.name for f in fields if isinstance(f, Int)}
    for f in fields:
        if isinstance(f, Array):
            used = set().union(*(_dim_names(d) for d in f.shape if isinstance(d, str)))
            if isinstance(f.dtype, ByFlag):
                used.add(f.dtype.flag)
            if used - ints:
                raise ValueError(
                    f"argument block {name!r}: array {f.name!r} refers to {sorted(used - ints)}, "
                    f"which are not Int fields of the block"
                )
    signature = name + ";" + ";".join(f"{type(f).__name__}:{f!r}" for f in fields)
    fingerprint = (1 << 40) | zlib.crc32(signature.encode())
    members = {
        "CHECK": _CHECK_WORD,
        **{n.upper(): i + 1 for i, n in enumerate(names)},
        "SIZE": len(fields) + 1,
        "FINGERPRINT": fingerprint,
    }
    cls_name = "".join(part.capitalize() for part in name.replace(".", "_").split("_"))
    cls = BlockWords(cls_name, members)
    cls.block_name = name
    cls.declared_fields = fields
    return cls


@nb.njit(nogil=True, inline="always")
def open_block(block, size, fingerprint):
    """``(h, ok)``: the ``size`` words at ``block`` (a body's argument), and whether word 0 is ``fingerprint``;
    if not, word 0 is set to 0 so that the launcher reports the mismatch. Call as ``open_block(block, X.SIZE,
    X.FINGERPRINT)`` and return at once when not ``ok``."""
    h = nb.carray(block, (size,))
    ok = h[_CHECK_WORD] == fingerprint
    if not ok:
        h[_CHECK_WORD] = 0
    return h, ok


def reads(declaration: Type[BlockWords]):
    """Decorator of an OpenMP body: the declaration of the block it reads, checked by :func:`.team.run_on_team`
    before the team starts."""

    def mark(body):
        body.arg_block = declaration
        return body

    return mark


# ------------------------------------------------------------------------------------------------
# the declarations, one per body
# ------------------------------------------------------------------------------------------------

_FLOAT = by_flag("double", np.float32, np.float64)

# team.py: the team scatter-add, out[idx[idx_start + r]] += buf[r] over segments (s, e) of rows
TeamScatter = arg_block(
    "team_scatter",
    [
        Int("double"),
        Int("index64"),
        Int("out_rows"),
        Int("channels"),
        Int("idx_start"),
        Int("num_segments"),
        Array("buf", _FLOAT, (None, "channels")),
        Array("idx", by_flag("index64", np.int32, np.int64), (None,)),
        Array("out", _FLOAT, ("out_rows", "channels")),
        Array("segments", np.int64, ("num_segments", 2)),
    ],
)

# conv_fused.py: the pairs of a kernel map bucketed by part of the output rows
ConvLayout = arg_block(
    "conv_layout",
    [
        Int("num_pairs"),
        Int("k"),
        Int("skip"),
        Int("num_out"),
        Int("parts"),
        Int("total"),
        Array("src", np.int64, ("num_pairs",)),
        Array("dst", np.int64, ("num_pairs",)),
        Array("starts", np.int64, ("k + 1",)),
        Array("owner", np.int32, ("num_out",)),
        Array("seg", np.int64, ("parts * k + 1",)),
        Array("src32", np.int32, ("total",)),
        Array("dst32", np.int32, ("total",)),
    ],
)

# conv_fused.py: the fused convolution products (forward and backward)
ConvFused = arg_block(
    "conv_fused",
    [
        Int("double"),
        Int("k"),
        Int("total"),
        Int("parts"),
        Int("threads"),
        Int("n_a"),
        Int("c_a"),
        Int("w_stride"),
        Int("c_out"),
        Int("c_x"),
        Int("identity"),
        Int("add_identity"),
        Array("src", np.int32, ("total",)),
        Array("dst", np.int32, ("total",)),
        Array("seg", np.int64, ("parts * k + 1",)),
        Array("bounds", np.int64, ("parts + 1",)),
        Array("a", _FLOAT, ("n_a", "c_a")),
        Array("w", _FLOAT, ("k", "c_a", "w_stride")),
        Array("out", _FLOAT, (None, "c_out"), optional=True),
        Array("x", _FLOAT, (None, "c_x"), optional=True),
        Array("grad_w", _FLOAT, ("threads", "k", "c_x", "c_a"), optional=True),
    ],
)

# group_fused.py: the fused SW-LK group products (forward and backward)
GroupFused = arg_block(
    "group_fused",
    [
        Int("double"),
        Int("groups"),
        Int("centre"),
        Int("blocks"),
        Int("parts"),
        Int("tile"),
        Int("use"),
        Int("n_in"),
        Int("c_in"),
        Int("w_stride"),
        Int("c_out"),
        Int("slots"),
        Int("centre_start"),
        Int("threads"),
        Array("x", _FLOAT, ("n_in", "c_in")),
        Array("w", _FLOAT, ("groups", "c_in", "w_stride")),
        Array("out", _FLOAT, (None, "c_out"), optional=True),
        Array("entries", np.int32, (None,)),
        Array("enc", _FLOAT, (None, "c_in")),
        Array("bag_ptr", np.int32, ("slots + 1",)),
        Array("rows", np.int32, ("slots",)),
        Array("ranges", np.int64, ("blocks", "groups", 2)),
        Array("part_cuts", np.int64, ("parts + 1",)),
        Array("a_buf", _FLOAT, (None,)),
        Array("keep", _FLOAT, (None, "c_in"), optional=True),
        Array("feat", _FLOAT, (None, "c_out"), optional=True),
        Array("grad_w", _FLOAT, ("threads", "groups", "c_out", "c_in"), optional=True),
    ],
)

# group_team.py: the words both SW-LK layout bodies read (one group range per thread)
GroupLayout = arg_block(
    "group_layout",
    [
        Int("num_pairs"),
        Int("k"),
        Int("groups"),
        Int("num_ranges"),
        Int("num_out"),
        Int("num_slots"),
        Array("pair_in", np.int64, ("num_pairs",)),
        Array("pair_out", np.int64, ("num_pairs",)),
        Array("starts", np.int64, ("k + 1",)),
        Array("offsets", np.int64, ("k",)),
        Array("offset_ptr", np.int64, ("groups + 1",)),
        Array("ranges", np.int64, ("num_ranges + 1",)),
        Array("scratch", np.int32, ("num_ranges", "num_out")),
        Array("rows", np.int32, ("num_slots",)),
        Array("bag_ptr", np.int32, ("num_slots + 1",)),
        Array("gstart", np.int64, ("groups + 1",)),
    ],
)
# ... + the compact slots numbered per range from base[r] (ends[r] written back) and their bag entries
GroupLayoutSlots = arg_block(
    "group_layout_slots",
    [
        Int("num_in"),
        Int("seen_words"),
        Int("mirrored"),
        Array("base", np.int64, ("num_ranges",)),
        Array("ends", np.int64, ("num_ranges",)),
        Array("entries", np.int32, ("2 * num_pairs",)),
        Array("seen", np.uint64, ("num_ranges", "seen_words")),
    ],
    base=GroupLayout,
)
# ... + the bag entries of an existing layout (2 P entries with the encoding rows, else P)
GroupLayoutBags = arg_block(
    "group_layout_bags",
    [
        Int("num_in"),
        Int("with_encoding"),
        Int("mirrored"),
        Array("entries", np.int32, (None,)),
    ],
    base=GroupLayout,
)

# maps.py: the words every submanifold sweep body reads (the sorted sites' lines, the kernel, the blocks of lines,
# the per-block table and the chunks of blocks each thread takes)
MapLines = arg_block(
    "map_lines",
    [
        Int("num_lines"),
        Int("num_sites"),
        Int("num_blocks"),
        Int("k"),
        Int("half"),
        Int("num_chunks"),
        Array("line_start", np.int64, ("num_lines + 1",)),
        Array("line_key", np.int64, ("num_lines",)),
        Array("cz", np.int64, ("num_sites",)),
        Array("shape", np.int64, (3,)),
        Array("ksize", np.int64, (3,)),
        Array("dil", np.int64, (3,)),
        Array("blocks", np.int64, ("num_blocks + 1",)),
        Array("table", np.int64, ("num_blocks", "k")),
        Array("cuts", np.int64, ("num_chunks + 1",)),
    ],
)
# ... + the one-pass sweep, chunk by chunk into preallocated buffers
MapSweep = arg_block(
    "map_sweep",
    [
        Array("rows", np.int32, ("num_sites",)),
        Array("chunks", np.int64, ("num_chunks", 5)),
        Array("ok", np.int64, ("num_chunks",)),
    ],
    base=MapLines,
)


class SweepChunk(enum.IntEnum):
    """Columns of a row of :data:`MapSweep`'s ``chunks`` table: the addresses of the chunk's int32 ``k`` / ``in``
    / ``out`` buffers and int64 ``ends``, and the buffers' capacity."""

    KBUF = 0
    IBUF = 1
    OBUF = 2
    ENDS = 3
    CAPACITY = 4


# ... + one pass of the two-pass submanifold build, chunk by chunk: count (table = per-block counts, no pairs) or
# fill (table = per-block write cursors)
MapPass = arg_block(
    "map_pass",
    [
        Int("mode"),
        Int("num_pairs"),
        Array("perm", np.int64, ("num_sites",)),
        Array("pair_in", np.int64, ("num_pairs",)),
        Array("pair_out", np.int64, ("num_pairs",)),
    ],
    base=MapLines,
)


# maps.py: the swept pairs placed at their offset-major positions, then the mirrored positions [lo, hi)
MapPlace = arg_block(
    "map_place",
    [
        Int("num_blocks"),
        Int("k"),
        Int("num_pairs"),
        Int("num_chunks"),
        Int("mirror_lo"),
        Int("mirror_hi"),
        Array("cursors", np.int64, ("num_blocks", "k")),
        Array("pair_in", np.int64, ("num_pairs",)),
        Array("pair_out", np.int64, ("num_pairs",)),
        Array("starts", np.int64, ("k + 1",)),
        Array("chunks", np.int64, ("num_chunks", 6)),
    ],
)


class PlaceChunk(enum.IntEnum):
    """Columns of a row of :data:`MapPlace`'s ``chunks`` table: the chunk's blocks ``[blk_lo, blk_hi)`` and the
    addresses of its int32 ``k`` / ``in`` / ``out`` buffers and int64 ``ends``."""

    BLK_LO = 0
    BLK_HI = 1
    KBUF = 2
    IBUF = 3
    OBUF = 4
    ENDS = 5


DECLARATIONS: Tuple[Type[BlockWords], ...] = (
    TeamScatter,
    ConvLayout,
    ConvFused,
    GroupFused,
    GroupLayout,
    GroupLayoutSlots,
    GroupLayoutBags,
    MapLines,
    MapSweep,
    MapPass,
    MapPlace,
)
