"""Bit-level helpers of the float datapaths: unpacking inputs, leading-one detection.

An input element is carried in a *canonical* form that every input type maps to exactly:
``value = (−1)^sign · significand · 2^lsb`` with ``log2`` = floor(log2 |value|) (or
``ZERO_LOG2`` for a zero) and ``special`` for Inf/NaN.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data

from .formats import INPUTS

__all__ = ["ZERO_LOG2", "canonical_layout", "leading_one", "unpack_input"]

#: floor(log2) given to a zero: below every real element, so it never sets the block's max.
ZERO_LOG2 = -256
#: Signed width of exponents and shift amounts in the datapath.
EXP_BITS = 10


def canonical_layout() -> data.StructLayout:
    return data.StructLayout({
        "sign": 1,
        "significand": unsigned(24),
        "lsb": signed(EXP_BITS),
        "log2": signed(EXP_BITS),
        "special": 1,
    })


def leading_one(m: Module, value: Value, name: str) -> Signal:
    """Index of the highest set bit of ``value`` (0 when ``value`` is 0)."""
    index = Signal(range(max(len(value), 2)), name=name)
    m.d.comb += index.eq(0)
    for bit in range(len(value)):
        with m.If(value[bit]):
            m.d.comb += index.eq(bit)
    return index


def unpack_input(m: Module, bits: Value, input_type: str, name: str) -> Signal:
    """The canonical form of one ``input_type`` element (fp32, bf16 or fp16 bit pattern)."""
    if input_type == "bf16":      # bf16 is the top half of an fp32
        bits, input_type = Value.cast(bits) << 16, "fp32"
    ebits, mbits, bias = INPUTS[input_type]
    out = Signal(canonical_layout(), name=name)
    exponent = bits[mbits:mbits + ebits]
    fraction = bits[:mbits]
    top = leading_one(m, fraction, f"{name}_lead")
    subnormal_lsb = 1 - bias - mbits
    m.d.comb += [
        out.sign.eq(bits[mbits + ebits]),
        out.special.eq(exponent == (1 << ebits) - 1),
    ]
    with m.If(exponent == 0):
        m.d.comb += [
            out.significand.eq(fraction),
            out.lsb.eq(subnormal_lsb),
            out.log2.eq(Mux(fraction == 0, ZERO_LOG2, top + subnormal_lsb)),
        ]
    with m.Else():
        m.d.comb += [
            out.significand.eq(fraction | Const(1 << mbits, mbits + 1)),
            out.lsb.eq(exponent + (subnormal_lsb - 1)),
            out.log2.eq(exponent - bias),
        ]
    return out
