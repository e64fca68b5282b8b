"""``kivi_quant``: KIVI's asymmetric 2/4-bit group quantization in integer arithmetic.

Per group: E = floor(log2 max |x|) (−126 for an all-zero group); every element becomes the
17-bit signed X = trunc(x · 2^(15 − E)); mn = min X, R = max X − mn; the code q counts the
k in 1..L (L = 2^bits − 1) with 2·(X − mn)·L ≥ (2k − 1)·R, which is round-half-up of
(X − mn)·L/R with L comparators instead of a divider (all codes 0 when R = 0). A group holding
a NaN or an Inf is flagged, with zero codes and metadata. ``golden/kivi.py`` is the same
arithmetic; x̂ = (mn + q·R/L) · 2^(E − 15) is the host's (``golden.kivi.kivi_dequantize``).

Since truncation toward zero is monotonic, min X and max X are the conversions of the group's
least and largest element, which the block buffer tracks while the group streams in.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature
from .block import BlockBuffer, input_layout
from .config import KiviQuantConfig
from .fields import EXP_BITS, ZERO_LOG2
from .mx import connect_output_queue, count_quantizer_cycles

__all__ = ["FRACTION_BITS", "KiviQuantizer", "kivi_layout"]

#: F: the group maximum is aligned to [2^15, 2^16): X is a 17-bit signed integer.
FRACTION_BITS = 15
#: E of an all-zero (or flagged) group.
_EMPTY_EXPONENT = -126
#: Extra bits above the significand so that the alignment shift never goes left.
_HEADROOM = 16


def kivi_layout(config: KiviQuantConfig) -> data.StructLayout:
    """One beat of a quantized group: ``lanes`` codes and the group's metadata."""
    return data.StructLayout({
        "codes": data.ArrayLayout(unsigned(config.bits), config.lanes),
        "minimum": signed(FRACTION_BITS + 2),
        "range": unsigned(FRACTION_BITS + 2),
        "exponent": signed(9),
        "error": 1,
        "first": 1,
        "last": 1,
    })


def _aligned(m: Module, element, exponent, name: str) -> Signal:
    """X = trunc(element · 2^(F − exponent)), signed."""
    shift = Signal(signed(EXP_BITS + 2), name=f"{name}_shift")
    clamped = Signal(range(_HEADROOM + 25), name=f"{name}_shift_clamped")
    magnitude = Signal(FRACTION_BITS + 1, name=f"{name}_magnitude")
    value = Signal(signed(FRACTION_BITS + 3), name=name)
    m.d.comb += [
        shift.eq(exponent - FRACTION_BITS - element.lsb + _HEADROOM),
        clamped.eq(Mux(shift > _HEADROOM + 24, _HEADROOM + 24, shift[:6])),
        magnitude.eq(Cat(Const(0, _HEADROOM), element.significand) >> clamped),
        value.eq(Mux(element.sign, -magnitude, magnitude)),
    ]
    return value


class KiviQuantizer(wiring.Component):
    """``i``: ``lanes`` elements per beat, groups of ``group`` consecutive elements; ``o``:
    their codes, each beat tagged with its group's minimum, range, exponent and error flag."""

    def __init__(self, config: KiviQuantConfig):
        self._config = config
        super().__init__({
            "i": In(stream.Signature(input_layout(config.input, config.lanes))),
            "o": Out(stream.Signature(kivi_layout(config))),
            "counters": Out(CountersSignature(("error_groups",))),
        })

    def elaborate(self, platform):
        cfg = self._config
        L, LEVELS = cfg.lanes, cfg.levels
        m = Module()
        m.submodules.buffer = buffer = BlockBuffer(input_type=cfg.input, lanes=L,
                                                   block_size=cfg.group, extremes=True)
        wiring.connect(m, wiring.flipped(self.i), buffer.i)
        out_layout = kivi_layout(cfg)
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                                   depth=4)
        step = Signal()
        beat = Signal()
        m.d.comb += [step.eq(out_queue.w_rdy), buffer.o.ready.eq(step),
                     beat.eq(buffer.o.valid & step)]

        X = signed(FRACTION_BITS + 3)
        tag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "error": 1,
                                 "exponent": signed(EXP_BITS), "minimum": X})
        tags = [Signal(tag, name=f"tag_{stage}") for stage in range(3)]

        # Stage 1: align every element and the group's extremes to the group's exponent.
        block = buffer.o.payload.block
        exponent = Signal(signed(EXP_BITS))
        m.d.comb += exponent.eq(Mux(block.log2 == ZERO_LOG2, _EMPTY_EXPONENT, block.log2))
        least = _aligned(m, block.least, exponent, "least")
        largest = _aligned(m, block.largest, exponent, "largest")
        fixed = Signal(data.ArrayLayout(X, L))
        group_range = [Signal(X, name=f"range_{stage}") for stage in range(2)]
        with m.If(step):
            m.d.sync += [
                tags[0].valid.eq(beat), tags[0].first.eq(buffer.o.payload.first),
                tags[0].last.eq(buffer.o.payload.last), tags[0].error.eq(block.special),
                tags[0].exponent.eq(exponent), tags[0].minimum.eq(least),
                group_range[0].eq(largest - least),
                tags[1].eq(tags[0]), tags[2].eq(tags[1]),
                group_range[1].eq(group_range[0]),
            ]
            for lane in range(L):
                element = buffer.o.payload.elements[lane]
                m.d.sync += fixed[lane].eq(_aligned(m, element, exponent, f"fixed_{lane}"))

        # Stage 2: 2·L·(X − mn) per lane, and the thresholds (2k − 1)·R of the group.
        wide = unsigned(FRACTION_BITS + 8)
        scaled = Signal(data.ArrayLayout(wide, L))
        thresholds = Signal(data.ArrayLayout(wide, LEVELS))
        with m.If(step):
            for lane in range(L):
                m.d.sync += scaled[lane].eq((fixed[lane] - tags[0].minimum) * (2 * LEVELS))
            for k in range(1, LEVELS + 1):
                m.d.sync += thresholds[k - 1].eq(group_range[0] * (2 * k - 1))

        # Stage 3: count the thresholds reached; zero codes for R = 0 and for flagged groups.
        codes = Signal(data.ArrayLayout(unsigned(cfg.bits), L))
        silent = tags[1].error | (group_range[1] == 0)
        with m.If(step):
            for lane in range(L):
                reached = sum(scaled[lane] >= thresholds[k] for k in range(LEVELS))
                m.d.sync += codes[lane].eq(Mux(silent, 0, reached))

        out = Signal(out_layout)
        error = tags[2].error
        m.d.comb += [
            out.codes.eq(codes),
            out.minimum.eq(Mux(error, 0, tags[2].minimum)),
            out.range.eq(Mux(error, 0, _delayed(m, step, group_range[1], "range_2"))),
            out.exponent.eq(Mux(error, _EMPTY_EXPONENT, tags[2].exponent)),
            out.error.eq(error),
            out.first.eq(tags[2].first),
            out.last.eq(tags[2].last),
        ]
        connect_output_queue(m, out_queue, out, step & tags[2].valid, self.o)
        count_quantizer_cycles(m, self, buffer, out_queue, tags, {
            "error_groups": step & tags[2].valid & tags[2].first & error})
        return m


def _delayed(m: Module, step, value, name: str) -> Signal:
    """``value`` one step later."""
    register = Signal.like(value, name=name)
    with m.If(step):
        m.d.sync += register.eq(value)
    return register
