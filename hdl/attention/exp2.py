"""exp2 of a non-positive fixed-point argument: table (and optional linear interpolation) over
one octave, then a rounding shift by the integer part. The golden model uses the same table."""
from __future__ import annotations

import itertools

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from .config import GUARD, SCALE_FRAC, AttentionConfig

__all__ = ["EXP2_LATENCY", "exp2_pipeline", "exp2_table"]

#: Cycles from a delta entering :func:`exp2_pipeline` to its probability.
EXP2_LATENCY = 4


def exp2_table(config: AttentionConfig) -> list[int]:
    """T[k] = round(2**(P+GUARD) · 2**(-k/S)) for k = 0 .. S (S + 1 entries)."""
    segments, scale = config.exp2_segments, 1 << (config.prob_bits + GUARD)
    return [round(scale * 2.0 ** (-k / segments)) for k in range(segments + 1)]


def exp2_pipeline(m: Module, delta: Signal, c: Signal, config: AttentionConfig, *,
                  name: str) -> Signal:
    """p = 2**(-u/2**F) in units of 2**-P with u = (delta·c) >> (SCALE_FRAC - F), after
    EXP2_LATENCY cycles (free-running: one delta per cycle)."""
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

    # Stage 1: u = delta·c (kept with SCALE_FRAC fractional bits).
    product = Signal(len(delta) + len(c), name=f"{name}_product")
    m.d.sync += product.eq(delta * c)
    integer = product[SCALE_FRAC:]
    fraction = product[SCALE_FRAC - F:SCALE_FRAC]
    # Stage 2: table read (the ROM's register), integer part and offset alongside.
    shift_bits = (P + GUARD + 1).bit_length()
    underflow = Signal(name=f"{name}_underflow")
    shift = Signal(shift_bits, name=f"{name}_shift")     # I + GUARD - 1
    offset = Signal(max(1, offset_bits), name=f"{name}_offset")
    m.d.comb += read.addr.eq(fraction[offset_bits:])
    m.d.sync += [
        underflow.eq(integer >= P + 2),
        shift.eq(integer[:shift_bits] + GUARD - 1),
        offset.eq(fraction[:offset_bits] if offset_bits else 0),
    ]
    base, slope = read.data[:entry_bits], read.data[entry_bits:]
    # Stage 3: interpolation product.
    base_3 = Signal(entry_bits, name=f"{name}_base")
    step = Signal(entry_bits + max(1, offset_bits), name=f"{name}_step")
    underflow_3 = Signal(name=f"{name}_underflow_3")
    shift_3 = Signal(shift_bits, name=f"{name}_shift_3")
    m.d.sync += [base_3.eq(base), underflow_3.eq(underflow), shift_3.eq(shift)]
    if config.exp2 == "pwl" and offset_bits:
        m.d.sync += step.eq((slope * offset) >> offset_bits)
    else:
        m.d.sync += step.eq(0)
    # Stage 4: mantissa, rounding shift by the integer part.
    mantissa = Signal(entry_bits, name=f"{name}_mantissa")
    m.d.comb += mantissa.eq(base_3 - step)
    p = Signal(P + 1, name=f"{name}_p")
    m.d.sync += p.eq(Mux(underflow_3, 0, ((mantissa >> shift_3) + 1) >> 1))
    return p
