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
from ..common.pipeline import stage
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


def _alignment_shift(m: Module, element, exponent, name: str) -> Signal:
    """The right shift of ``element``'s significand (placed ``_HEADROOM`` bits up) that
    gives trunc(|element| · 2^(F − exponent)), clamped where the result is 0 anyway."""
    shift = Signal(signed(EXP_BITS + 2), name=f"{name}_shift")
    clamped = Signal(range(_HEADROOM + 25), name=f"{name}_shift_clamped")
    m.d.comb += [
        shift.eq(exponent - FRACTION_BITS - element.lsb + _HEADROOM),
        clamped.eq(Mux(shift > _HEADROOM + 24, _HEADROOM + 24, shift[:6])),
    ]
    return clamped


def _aligned(m: Module, sign, significand, shift, name: str) -> Signal:
    """The signed X of a significand and its alignment shift."""
    magnitude = Signal(FRACTION_BITS + 1, name=f"{name}_magnitude")
    value = Signal(signed(FRACTION_BITS + 3), name=name)
    m.d.comb += [
        magnitude.eq(Cat(Const(0, _HEADROOM), significand) >> shift),
        value.eq(Mux(sign, -magnitude, magnitude)),
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

        def reg(value, name: str) -> Signal:
            return stage(m, value, enable=step, name=name)

        # Six stages, each a cycle of `step`; the tag of a beat travels beside it.
        X = signed(FRACTION_BITS + 3)
        block = buffer.o.payload.block
        tag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "error": 1,
                                 "exponent": signed(EXP_BITS)})
        tag0 = Signal(tag)
        m.d.comb += [
            tag0.valid.eq(beat), tag0.first.eq(buffer.o.payload.first),
            tag0.last.eq(buffer.o.payload.last), tag0.error.eq(block.special),
            tag0.exponent.eq(Mux(block.log2 == ZERO_LOG2, _EMPTY_EXPONENT, block.log2)),
        ]
        tags = [reg(tag0, "tag_1")]
        for index in range(2, 7):
            tags.append(reg(tags[-1], f"tag_{index}"))

        # Stage 1: the group's exponent E (in the tag) beside its elements and extremes.
        elements = reg(buffer.o.payload.elements, "elements_1")
        extremes = [reg(block.least, "least_1"), reg(block.largest, "largest_1")]

        # Stage 2: the shift that aligns each significand to E.
        aligning = data.StructLayout({"sign": 1, "significand": unsigned(24),
                                      "shift": range(_HEADROOM + 25)})
        to_align = [*(elements[lane] for lane in range(L)), *extremes]
        names = [*(f"fixed_{lane}" for lane in range(L)), "least", "largest"]
        shifts = Signal(data.ArrayLayout(aligning, L + 2))
        for index, (element, name) in enumerate(zip(to_align, names, strict=True)):
            m.d.comb += [
                shifts[index].sign.eq(element.sign),
                shifts[index].significand.eq(element.significand),
                shifts[index].shift.eq(_alignment_shift(m, element, tags[0].exponent, name)),
            ]
        shifts = reg(shifts, "shifts_2")

        # Stage 3: X = trunc(x · 2^(15 − E)) for the elements and the extremes.
        fixed = Signal(data.ArrayLayout(X, L + 2))
        for index, name in enumerate(names):
            m.d.comb += fixed[index].eq(_aligned(m, shifts[index].sign,
                                                 shifts[index].significand,
                                                 shifts[index].shift, name))
        fixed = reg(fixed, "fixed_3")
        least, largest = fixed[L], fixed[L + 1]

        # Stage 4: 2·L·(X − mn) per lane; the group's minimum and range.
        wide = unsigned(FRACTION_BITS + 8)
        scaled = Signal(data.ArrayLayout(wide, L))
        for lane in range(L):
            m.d.comb += scaled[lane].eq((fixed[lane] - least) * (2 * LEVELS))
        scaled = reg(scaled, "scaled_4")
        minimum = reg(least, "minimum_4")
        group_range = reg(largest - least, "range_4")

        # Stage 5: the thresholds (2k − 1)·R of the group.
        thresholds = Signal(data.ArrayLayout(wide, LEVELS))
        for k in range(1, LEVELS + 1):
            m.d.comb += thresholds[k - 1].eq(group_range * (2 * k - 1))
        thresholds = reg(thresholds, "thresholds_5")
        scaled = reg(scaled, "scaled_5")
        minimum = reg(minimum, "minimum_5")
        group_range = reg(group_range, "range_5")

        # Stage 6: count the thresholds reached; zero codes for R = 0 and for flagged groups.
        codes = Signal(data.ArrayLayout(unsigned(cfg.bits), L))
        silent = tags[4].error | (group_range == 0)
        for lane in range(L):
            reached = sum(scaled[lane] >= thresholds[k] for k in range(LEVELS))
            m.d.comb += codes[lane].eq(Mux(silent, 0, reached))
        codes = reg(codes, "codes_6")
        minimum = reg(minimum, "minimum_6")
        group_range = reg(group_range, "range_6")

        out = Signal(out_layout)
        last = tags[5]
        m.d.comb += [
            out.codes.eq(codes),
            out.minimum.eq(Mux(last.error, 0, minimum)),
            out.range.eq(Mux(last.error, 0, group_range)),
            out.exponent.eq(Mux(last.error, _EMPTY_EXPONENT, last.exponent)),
            out.error.eq(last.error),
            out.first.eq(last.first),
            out.last.eq(last.last),
        ]
        connect_output_queue(m, out_queue, out, step & last.valid, self.o)
        count_quantizer_cycles(m, self, buffer, out_queue, tags, {
            "error_groups": step & last.valid & last.first & last.error})
        return m
