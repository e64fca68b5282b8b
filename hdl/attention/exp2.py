"""exp2 of a non-positive fixed-point argument: table (and optional linear interpolation) over
one octave, then a rounding shift by the integer part. The golden model uses the same table."""
from __future__ import annotations

import itertools

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from ..common.pipeline import pipelined_product
from .config import GUARD, SCALE_FRAC, AttentionConfig

__all__ = ["exp2_pipeline", "exp2_table"]

def exp2_table(config: AttentionConfig) -> list[int]:
    """T[k] = round(2**(P+GUARD) · 2**(-k/S)) for k = 0 .. S (S + 1 entries)."""
    segments, scale = config.exp2_segments, 1 << (config.prob_bits + GUARD)
    return [round(scale * 2.0 ** (-k / segments)) for k in range(segments + 1)]


def exp2_pipeline(m: Module, delta: Signal, c: Signal, config: AttentionConfig, *,
                  name: str) -> tuple[Signal, int]:
    """p = 2**(-u/2**F) in units of 2**-P with u = (delta·c) >> (SCALE_FRAC - F): returns p
    and its latency in cycles (free-running: one delta per cycle). ``delta`` and ``c`` must
    be registers."""
    F, P, sb = config.exp_frac_bits, config.prob_bits, config.segment_bits
    offset_bits = F - sb
    table = exp2_table(config)
    entry_bits = P + GUARD + 1
    # ROM of (T[k], T[k] - T[k+1]) pairs for the S segments.
    rom = Memory(shape=unsigned(2 * entry_bits), depth=config.exp2_segments,
                 init=[t | ((t - t_next) << entry_bits)
                       for t, t_next in itertools.pairwise(table)])
    m.submodules[f"{name}_rom"] = rom
    read = rom.read_port()

    # delta·c, kept with SCALE_FRAC fractional bits (a pipelined multiplier).
    product, latency = pipelined_product(m, delta, c, name=f"{name}_uc")
    integer = product[SCALE_FRAC:]
    fraction = product[SCALE_FRAC - F:SCALE_FRAC]
    shift_bits = (P + GUARD + 1).bit_length()
    m.d.comb += read.addr.eq(fraction[offset_bits:])

    def carry(value, shape, stage):
        register = Signal(shape, name=f"{name}_{stage}")
        m.d.sync += register.eq(value)
        return register

    # Table read (the ROM's register), with the integer part and the offset alongside.
    underflow = carry(integer >= P + 2, 1, "underflow_1")
    shift = carry(integer[:shift_bits] + GUARD - 1, shift_bits, "shift_1")   # I + GUARD - 1
    offset = carry(fraction[:offset_bits] if offset_bits else 0, max(1, offset_bits),
                   "offset_1")
    # A register behind the ROM (a block RAM has a slow clock-to-out).
    base = carry(read.data[:entry_bits], entry_bits, "base_2")
    slope = carry(read.data[entry_bits:], entry_bits, "slope_2")
    underflow, shift, offset = (carry(underflow, 1, "underflow_2"),
                                carry(shift, shift_bits, "shift_2"),
                                carry(offset, max(1, offset_bits), "offset_2"))
    # Interpolation step.
    if config.exp2 == "pwl" and offset_bits:
        step = carry((slope * offset) >> offset_bits, entry_bits, "step_3")
    else:
        step = carry(0, entry_bits, "step_3")
    base, underflow, shift = (carry(base, entry_bits, "base_3"),
                              carry(underflow, 1, "underflow_3"),
                              carry(shift, shift_bits, "shift_3"))
    # Mantissa, then the rounding shift by the integer part.
    mantissa = carry(base - step, entry_bits, "mantissa_4")
    underflow, shift = carry(underflow, 1, "underflow_4"), carry(shift, shift_bits, "shift_4")
    p = carry(Mux(underflow, 0, ((mantissa >> shift) + 1) >> 1), P + 1, "p_5")
    return p, latency + 5
