"""Pipelined rounding divider of the final normalisation o = round(o_acc / l)."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed

__all__ = ["divider_latency", "rounding_divider"]


def divider_latency(width: int) -> int:
    return width + 4


def _delayed(m: Module, flag: Signal, name: str) -> Signal:
    register = Signal(name=f"{flag.name}_d")
    m.d.sync += register.eq(flag)
    return register


def rounding_divider(m: Module, a: Signal, total: Signal, width: int, *, name: str) -> Signal:
    """``round_half_away(a / total)`` saturated to signed ``width`` bits (0 when the total is
    0), after
    :func:`divider_latency` cycles, one quotient per cycle.

    The quotient Q = ⌊2|a| / total⌋ needs only width + 1 bits before saturation, so a restoring
    division of width + 1 stages suffices; then (Q + 1) >> 1 rounds half away from zero.
    """
    quotient_bits = width + 1
    rem_bits = len(a) + 1
    negative = Signal(name=f"{name}_neg")
    zero = Signal(name=f"{name}_zero")
    saturate = Signal(name=f"{name}_sat")
    rem = Signal(rem_bits, name=f"{name}_rem")
    divisor = Signal(len(total), name=f"{name}_divisor")
    magnitude = Mux(a < 0, -a, a).as_unsigned()
    m.d.sync += [
        negative.eq(a < 0),
        zero.eq(total == 0),
        rem.eq(magnitude << 1),
        saturate.eq((magnitude << 1) >= (total << quotient_bits)),
        divisor.eq(total),
    ]
    quotient = Signal(quotient_bits, name=f"{name}_q_start")
    m.d.comb += quotient.eq(0)
    for bit in reversed(range(quotient_bits)):
        trial = rem - (divisor << bit)
        take = rem >= (divisor << bit)
        next_rem = Signal(rem_bits, name=f"{name}_rem_{bit}")
        next_quotient = Signal(quotient_bits, name=f"{name}_q_{bit}")
        next_divisor = Signal(len(total), name=f"{name}_divisor_{bit}")
        flags = [Signal(name=f"{name}_{flag}_{bit}") for flag in ("neg", "zero", "sat")]
        m.d.sync += [
            next_rem.eq(Mux(take, trial, rem)),
            next_quotient.eq(quotient | (take << bit)),
            next_divisor.eq(divisor),
            flags[0].eq(negative), flags[1].eq(zero), flags[2].eq(saturate),
        ]
        rem, quotient, divisor = next_rem, next_quotient, next_divisor
        negative, zero, saturate = flags
    # Rounding, then sign and saturation, one register stage each.
    rounded = Signal(width + 1, name=f"{name}_rounded")
    m.d.sync += rounded.eq(Mux(saturate, 1 << width, (quotient + 1) >> 1))
    negative, zero = _delayed(m, negative, name), _delayed(m, zero, name)
    signed_value = Signal(signed(width + 2), name=f"{name}_signed")
    m.d.comb += signed_value.eq(Mux(negative, -rounded, rounded))
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    result = Signal(signed(width), name=f"{name}_result")
    m.d.sync += result.eq(Mux(zero, 0, Mux(signed_value > hi, hi,
                                             Mux(signed_value < lo, lo, signed_value))))
    return result
