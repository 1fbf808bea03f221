"""The logic multiplier of a weight-stationary cell: ``psum + weight * lane`` in LUTs and carry
chains, with no ``$mul`` cell for a DSP mapper to take.

The weight changes only on ``load``, so the cell recodes it once, as it loads it, into radix-4
digits held in a few extra flip-flops (:func:`recode_weight`); every cycle each digit then picks
a small multiple of the lane, and the multiples are summed in narrow carry-chain adders
(:func:`multiply_add`). Per digit one LUT4 per product bit picks the multiple and one adds it,
where a shift-and-add of the weight's bits spends an AND and an adder bit on each of the eight.

The digits, for ``w = d0 + 4 d1 + 16 d2 + ...``:

- the low two (``mode`` digits; one for a 3- or 4-bit weight, none for 2 bits: they take only
  bits below the sign bit) lie in {-1, 0, 1, 2}: two
  select bits pick 0, ``a``, ``2a`` or ``~a`` (which is ``-a - 1``; the missing 1 enters an adder
  as a carry-in), so the pick is a function of four inputs: two lane bits, two select bits;
- the others are radix-4 Booth digits in {-2, ..., 2}, of what is left of the weight plus the
  mode digits' carry. The pick holds the magnitude (0, ``a`` or ``2a``, again four inputs) and
  the sign is applied by complementing the running sum around the adder:
  ``x - m = ~(~x + m)``. The complements between two adders are one XOR with a stationary bit,
  which yosys folds into the free input of the first adder's LUT4 on iCE40.

Each adder spans only the bits its digit can reach (the prefix sum's range), and the incoming
partial sum is added last, with the remaining carry-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

__all__ = ["Digits", "mode_digits", "multiply_add", "recode_weight"]


def mode_digits(weight_bits: int) -> int:
    """How many low digits are mode digits: two, but only over bits below the sign bit."""
    return min(2, (weight_bits - 1) // 2)


@dataclass(frozen=True)
class Digits:
    """The recoded weight: per mode digit ``(s0, s1)`` (mode 3 picks ``~a``), per Booth digit
    ``(x, y, neg)`` (``x``: pick ``a``, else ``y``: pick ``2a``; ``neg``: subtract) and per Booth
    digit but the last ``flip`` = its ``neg`` XOR the next one's (the complement between two
    adders)."""

    modes: tuple
    booth: tuple
    flips: tuple


def _recode(w: Value) -> tuple[list, list]:
    """Mode digits ``(s0, s1)`` and Booth digits ``(x, y, neg)`` of the signed weight ``w``, as
    expressions of its bits (see the module docstring)."""
    n = len(w)
    f = mode_digits(n)
    carry = Const(0, 1)
    modes = []
    for k in range(f):
        b0, b1 = w[2 * k], w[2 * k + 1]
        # t = b0 + 2 b1 + carry in [0, 4]: the digit is t mod 4 (3 meaning -1), the carry t >= 3
        modes.append((b0 ^ carry, b1 ^ (b0 & carry)))
        carry = b1 & (b0 | carry)

    def bit(i: int) -> Value:
        """Bit ``i`` of what the mode digits leave, sign-extended."""
        return w[min(2 * f + i, n - 1)]

    booth = []
    for j in range((n - 2 * f + 1) // 2):
        low = carry if j == 0 else bit(2 * j - 1)
        b0, b1 = bit(2 * j), bit(2 * j + 1)
        booth.append((b0 ^ low, b1 ^ b0, b1))
    return modes, booth


def recode_weight(m: Module, w_in: Value, load: Value, held: Value) -> Digits:
    """The digits of the weight the cell holds (``held``), registered as ``w_in`` loads, so the
    recoding is off the per-cycle path and each pick sees four inputs. Mode digit 0 and the
    Booth signs are plain weight bits and come from ``held``."""
    modes, booth = _recode(w_in)
    modes_now, booth_now = _recode(held)

    def reg(value, name):
        q = Signal(name=name)
        with m.If(load):
            m.d.sync += q.eq(value)
        return q

    held_modes = [modes_now[0]] if modes else []
    held_modes += [tuple(reg(b, f"mode{k}_{i}") for i, b in enumerate(d)) for k, d in enumerate(modes[1:], 1)]
    held_booth = [(reg(x, f"booth{j}_x"), reg(y, f"booth{j}_y"), booth_now[j][2])
                  for j, (x, y, _) in enumerate(booth)]
    flips = tuple(reg(booth[j][2] ^ booth[j + 1][2], f"booth{j}_flip") for j in range(len(booth) - 1))
    return Digits(tuple(held_modes), tuple(held_booth), flips)


def _pick(lane: Value, first: Value, second: Value, *, mode: bool = False) -> Value:
    """A multiple of ``lane``, one bit wider: ``first`` picks ``a``, else ``second`` ``2a``,
    else 0; with ``mode`` (``first, second = s0, s1``) mode 1 picks ``a``, 2 ``2a``, 3 ``~a``."""
    a = lane.as_signed()
    d = len(a)
    bits = []
    for i in range(d + 1):
        ai = a[min(i, d - 1)]
        am = a[min(i - 1, d - 1)] if i else Const(0, 1)
        if not mode:
            bits.append(Mux(first, ai, Mux(second, am, 0)))
        else:
            bits.append(Mux(second, Mux(first, ~ai, am), Mux(first, ai, 0)))
    return Cat(*bits).as_signed()


def _bits(lo: int, hi: int) -> int:
    """Bits of a two's complement number holding every value of [lo, hi]."""
    b = 1
    while lo < -(1 << (b - 1)) or hi > (1 << (b - 1)) - 1:
        b += 1
    return b


def _flip(value: Value, bit: Value, width: int) -> Value:
    """``value`` sign-extended to ``width`` bits, complemented where ``bit`` is set."""
    return value.as_signed() ^ bit.replicate(width).as_signed()


def multiply_add(m: Module, digits: Digits, lane: Value, psum_in: Value | None) -> Value:
    """``psum_in + weight * lane`` (``psum_in`` None: the product alone), exact, from the
    recoded weight ``digits`` (:func:`recode_weight`)."""
    d = len(lane)
    amin, amax = -(1 << (d - 1)), (1 << (d - 1)) - 1
    lo = hi = 0  # range of the digits' prefix sum

    def width(q: int, dmin: int, dmax: int) -> int:
        """Bits from ``q`` up of the running sum once a digit in [dmin, dmax] at 2^q is in (one
        more value below: the ~a of a mode digit)."""
        nonlocal lo, hi
        lo, hi = lo + dmin * (1 << q), hi + dmax * (1 << q)
        ends = [lo * amin, lo * amax, hi * amin, hi * amax]
        return _bits(min(ends) - 1, max(ends)) - q

    final = []  # the low bits no later digit reaches, true
    owed = None  # the 1 that mode digit 0's ~a owes, the last adder's carry-in
    run = None  # the running sum's bits from two below the next digit's up, true (None: 0)
    for k, (s0, s1) in enumerate(digits.modes):
        pick = Signal(signed(d + 1), name=f"pick{k}")
        owe = Signal(name=f"owe{k}")
        m.d.comb += [pick.eq(_pick(lane, s0, s1, mode=True)), owe.eq(s0 & s1)]
        if k == 0:
            width(0, -1, 2)
            run, owed = pick, owe
        else:  # the mode digits' adder; its carry-in pays mode digit 1's ~a
            total = Signal(signed(width(2, -1, 2)), name="sum1")
            m.d.comb += total.eq(run[2:].as_signed() + pick + owe)
            final.append(run[:2])
            run = total
    q0 = 2 * len(digits.modes)
    for j, (x, y, neg) in enumerate(digits.booth):
        q = q0 + 2 * j
        pick = Signal(signed(d + 1), name=f"pick{q // 2}")
        m.d.comb += pick.eq(_pick(lane, x, y))
        w = width(q, -2, 2)
        if j:  # the last adder's output was in its digit's polarity: flip to this one's
            into = _flip(run[2:], digits.flips[j - 1], w)
        elif run is None:
            into = neg.replicate(w).as_signed()
        else:
            final.append(run[:2])
            into = _flip(run[2:], neg, w)
        total = Signal(signed(w), name=f"sum{q // 2}")
        m.d.comb += total.eq(into + pick)  # ~(~x + m) = x - m where neg
        if j == len(digits.booth) - 1:
            final.append(_flip(total, neg, w))
        else:
            final.append(total[:2] ^ neg.replicate(2))
            run = total
    product = Cat(*final).as_signed()
    terms = ([psum_in] if psum_in is not None else []) + [product] + ([owed] if owed is not None else [])
    return sum(terms[1:], terms[0])
