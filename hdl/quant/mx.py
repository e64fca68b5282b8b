"""Streaming MX / BFP quantizer and dequantizer.

``MXQuantizer``: ``lanes`` elements per cycle in; a block needs its largest magnitude before
any element can be scaled, so each block is written into one half of a double buffer (its
running max of floor(log2 |x|) kept beside it) while the previous block is read out of the
other half, scaled and rounded at ``lanes`` elements per cycle. So throughput is ``lanes``
elements per cycle with no bubbles, and the latency is one block plus the pipeline.

Scale: s = max(floor(log2 amax) − emax, −127) as an E8M0 code s + 127; a block holding a NaN or
an Inf gets the NaN code 0xFF and zero element codes. Element: t = |x| / 2^(s + lsb exponent
of its binade in the format), rounded (nearest-even, nearest-away, toward zero, or stochastic
with an 8-bit LFSR value per element), saturated at the format's maximum, then encoded.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature, count_cycles
from ..common.pipeline import stage
from .block import BlockBuffer, input_layout
from .config import MXDequantConfig, MXQuantConfig
from .fields import EXP_BITS, leading_one

__all__ = [
    "LFSR_TAPS",
    "MXDequantizer",
    "MXQuantizer",
    "lfsr_seed",
    "quantized_layout",
]

#: Galois LFSR (x^32 + x^22 + x^2 + x + 1) stepped once per beat in every lane.
LFSR_TAPS = 0x80200003
#: Fractional bits of the significand kept below the element's LSB (round, sticky, random).
_FRACTION = 40
#: Extra low bits given to the significand so that a shift to the element grid never goes left.
_HEADROOM = 8


def lfsr_seed(lane: int) -> int:
    """Initial state of lane ``lane``'s LFSR (never zero)."""
    return (0x1D872B41 ^ ((lane * 0x9E3779B9) & 0xFFFFFFFF)) or 1


def quantized_layout(config) -> data.StructLayout:
    """One beat of a quantized block: ``lanes`` codes, the block's E8M0 scale, and flags for
    the block's first and last beat."""
    return data.StructLayout({
        "codes": data.ArrayLayout(unsigned(config.element.bits), config.lanes),
        "scale": unsigned(8),
        "first": 1,
        "last": 1,
    })


def _counters() -> CountersSignature:
    return CountersSignature(("nan_blocks",))


class MXQuantizer(wiring.Component):
    """``i``: ``lanes`` elements per beat (bit patterns of ``input``), blocks of
    ``block_size`` consecutive elements; ``o``: their codes and the block's scale."""

    def __init__(self, config: MXQuantConfig):
        self._config = config
        super().__init__({
            "i": In(stream.Signature(input_layout(config.input, config.lanes))),
            "o": Out(stream.Signature(quantized_layout(config))),
            "counters": Out(_counters()),
        })

    def elaborate(self, platform):
        cfg = self._config
        fmt = cfg.element
        L = cfg.lanes
        m = Module()
        m.submodules.buffer = buffer = BlockBuffer(input_type=cfg.input, lanes=L,
                                                   block_size=cfg.block_size)
        wiring.connect(m, wiring.flipped(self.i), buffer.i)
        out_layout = quantized_layout(cfg)
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                                   depth=4)

        # The queue's room steps the whole pipeline: back-pressure freezes it.
        step = Signal()
        beat = Signal()
        m.d.comb += [
            step.eq(out_queue.w_rdy),
            buffer.o.ready.eq(step),
            beat.eq(buffer.o.valid & step),
        ]
        block = buffer.o.payload.block

        # LFSR per lane: the byte of the beat going in, then one step.
        lfsrs = [Signal(32, init=lfsr_seed(lane), name=f"lfsr_{lane}") for lane in range(L)]
        for lfsr in lfsrs:
            with m.If(beat):
                m.d.sync += lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], LFSR_TAPS, 0))

        def reg(value, name: str) -> Signal:
            return stage(m, value, enable=step, name=name)

        # Six stages, each a cycle of `step`; the tag of a beat travels beside it.
        tag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "nan": 1,
                                 "scale": signed(EXP_BITS)})
        tag0 = Signal(tag)
        m.d.comb += [
            tag0.valid.eq(beat), tag0.first.eq(buffer.o.payload.first),
            tag0.last.eq(buffer.o.payload.last), tag0.nan.eq(block.special),
            tag0.scale.eq(Mux(block.log2 - fmt.emax < -127, -127, block.log2 - fmt.emax)),
        ]
        tags = [reg(tag0, "tag_1")]
        for index in range(2, 7):
            tags.append(reg(tags[-1], f"tag_{index}"))

        # Stage 1: the block's scale s (in the tag) beside the elements and random bytes.
        elements = reg(buffer.o.payload.elements, "elements_1")
        random = reg(Cat(*[lfsr[:8] for lfsr in lfsrs]), "random_1")

        # Stage 2: each element's grid: for floats its binade e' in the format and the exponent
        # of the format's quantum there (in x's units); for integers the quantum 2^(s − point).
        s = tags[0].scale
        grid = data.StructLayout({"sign": 1, "significand": unsigned(24),
                                  "lsb": signed(EXP_BITS), "quantum": signed(EXP_BITS + 1),
                                  "binade": signed(EXP_BITS)})
        gridded = Signal(data.ArrayLayout(grid, L))
        for lane in range(L):
            element = elements[lane]
            if fmt.kind == "fp":
                quantum = Mux(element.log2 > fmt.emin + s, element.log2,
                              fmt.emin + s) - fmt.mbits
                binade = Mux(element.log2 - s > fmt.emin, element.log2 - s, fmt.emin)
            else:
                quantum = s - fmt.point
                binade = Const(0, signed(EXP_BITS))
            m.d.comb += [
                gridded[lane].sign.eq(element.sign),
                gridded[lane].significand.eq(element.significand),
                gridded[lane].lsb.eq(element.lsb),
                gridded[lane].quantum.eq(quantum),
                gridded[lane].binade.eq(binade),
            ]
        gridded = reg(gridded, "grid_2")
        random = reg(random, "random_2")

        # Stage 3: the right shift that puts the significand on that grid.
        aligning = data.StructLayout({"sign": 1, "significand": unsigned(24),
                                      "shift": range(_FRACTION + 1), "binade": signed(EXP_BITS)})
        aligned = Signal(data.ArrayLayout(aligning, L))
        for lane in range(L):
            shift = Signal(signed(EXP_BITS + 2), name=f"shift_{lane}")
            m.d.comb += [
                shift.eq(gridded[lane].quantum - gridded[lane].lsb + _HEADROOM),
                aligned[lane].sign.eq(gridded[lane].sign),
                aligned[lane].significand.eq(gridded[lane].significand),
                aligned[lane].shift.eq(Mux(shift < 0, 0, Mux(shift > _FRACTION, _FRACTION,
                                                             shift))),
                aligned[lane].binade.eq(gridded[lane].binade),
            ]
        gridded = reg(aligned, "shift_3")
        random = reg(random, "random_3")

        # Stage 4: the shift, into 32 integer and 40 fraction bits.
        windowed = data.StructLayout({"sign": 1, "window": unsigned(32 + _FRACTION),
                                      "binade": signed(EXP_BITS)})
        shifted = Signal(data.ArrayLayout(windowed, L))
        for lane in range(L):
            widened = Cat(Const(0, _FRACTION + _HEADROOM), gridded[lane].significand)
            m.d.comb += [
                shifted[lane].sign.eq(gridded[lane].sign),
                shifted[lane].window.eq(widened >> gridded[lane].shift),
                shifted[lane].binade.eq(gridded[lane].binade),
            ]
        shifted = reg(shifted, "window_4")
        random = data.View(data.ArrayLayout(8, L), reg(random, "random_4"))

        # Stage 5: the rounding decision from the fraction bits.
        decided = data.StructLayout({"sign": 1, "whole": unsigned(fmt.bits + 2), "up": 1,
                                     "binade": signed(EXP_BITS)})
        rounding = Signal(data.ArrayLayout(decided, L))
        for lane in range(L):
            window = shifted[lane].window
            whole = window[_FRACTION:_FRACTION + fmt.bits + 2]
            half = window[_FRACTION - 1]
            sticky = window[:_FRACTION - 1].any()
            top8 = window[_FRACTION - 8:_FRACTION]
            up = {
                "nearest_even": half & (sticky | whole[0]),
                "nearest_away": half,
                "toward_zero": Const(0, 1),
                "stochastic": (top8 + random[lane])[8],
            }[cfg.rounding]
            m.d.comb += [
                rounding[lane].sign.eq(shifted[lane].sign),
                rounding[lane].whole.eq(whole),
                rounding[lane].up.eq(up),
                rounding[lane].binade.eq(shifted[lane].binade),
            ]
        rounding = reg(rounding, "rounding_5")

        # Stage 6: round, saturate, encode.
        codes = Signal(data.ArrayLayout(unsigned(fmt.bits), L))
        for lane in range(L):
            rounded = Signal(fmt.bits + 3, name=f"rounded_{lane}")
            magnitude = Signal(fmt.bits + 8, name=f"magnitude_{lane}")
            m.d.comb += rounded.eq(rounding[lane].whole + rounding[lane].up)
            if fmt.kind == "fp":
                m.d.comb += magnitude.eq(
                    ((rounding[lane].binade - fmt.emin) << fmt.mbits) + rounded)
            else:
                m.d.comb += magnitude.eq(rounded)
            saturated = Mux(magnitude > fmt.max_code, fmt.max_code, magnitude)
            if fmt.kind == "fp":
                code = Cat(saturated[:fmt.bits - 1], rounding[lane].sign)
            else:
                code = Mux(rounding[lane].sign, -saturated, saturated)[:fmt.bits]
            m.d.comb += codes[lane].eq(Mux(tags[4].nan, 0, code))
        codes = reg(codes, "codes_6")

        out = Signal(out_layout)
        m.d.comb += [
            out.codes.eq(codes),
            out.scale.eq(Mux(tags[5].nan, 0xFF, tags[5].scale + 127)),
            out.first.eq(tags[5].first),
            out.last.eq(tags[5].last),
        ]
        connect_output_queue(m, out_queue, out, step & tags[5].valid, self.o)
        count_quantizer_cycles(m, self, buffer, out_queue, tags, {
            "nan_blocks": step & tags[5].valid & tags[5].first & tags[5].nan})
        return m


def connect_output_queue(m: Module, queue, payload, write: Value, port) -> None:
    """The pipeline's last stage into ``queue``; ``port`` (an output stream) reads it."""
    m.d.comb += [
        queue.w_data.eq(payload),
        queue.w_en.eq(write),
        port.payload.eq(queue.r_data),
        port.valid.eq(queue.r_rdy),
        queue.r_en.eq(port.ready),
    ]


def count_quantizer_cycles(m: Module, component, buffer, queue, tags, extra: dict) -> None:
    """The counters of a block quantizer: busy = input beats; stall in = a block partly in and
    nothing arriving; stall out = a result waiting for the sink."""
    in_flight = Signal()
    m.d.comb += in_flight.eq(buffer.holding | buffer.starved | queue.r_rdy
                             | Cat(tag.valid for tag in tags).any())
    stall_in = buffer.starved
    stall_out = component.o.valid & ~component.o.ready
    count_cycles(m, component.counters, {
        "cycles": in_flight | component.i.valid,
        "busy_cycles": component.i.valid & component.i.ready,
        "stall_in_cycles": stall_in,
        "stall_out_cycles": stall_out,
        "stall_cycles": stall_in | stall_out,
        **extra,
    })


class MXDequantizer(wiring.Component):
    """``i``: ``lanes`` codes and their block's scale per beat; ``o``: ``lanes`` fp32 values
    (bit patterns). Exact for every scale the quantizer produces (decode(code) · 2^s then
    always fits fp32); a larger scale code overflows to ±Inf, as fp32 rounding would."""

    def __init__(self, config: MXDequantConfig):
        self._config = config
        super().__init__({
            "i": In(stream.Signature(quantized_layout(config))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(32), config.lanes))),
            "counters": Out(_counters()),
        })

    def elaborate(self, platform):
        cfg = self._config
        fmt = cfg.element
        L = cfg.lanes
        m = Module()
        # Two stages: decode to (sign, significand, exponent), then normalize and pack.
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(width=32 * L, depth=4)
        step = Signal()
        valid = [Signal(name=f"valid_{stage}") for stage in range(2)]
        m.d.comb += [step.eq(out_queue.w_rdy), self.i.ready.eq(step)]
        beat = Signal()
        m.d.comb += beat.eq(self.i.valid & self.i.ready)
        with m.If(step):
            m.d.sync += [valid[0].eq(beat), valid[1].eq(valid[0])]

        decoded_layout = data.StructLayout({
            "sign": 1, "significand": unsigned(fmt.bits + 1), "exponent": signed(EXP_BITS),
            "nan": 1, "inf": 1})
        decoded = Signal(data.ArrayLayout(decoded_layout, L))
        scale = self.i.payload.scale
        s = Signal(signed(EXP_BITS))
        m.d.comb += s.eq(scale - 127)
        for lane in range(L):
            code = self.i.payload.codes[lane]
            out = decoded[lane]
            nan, inf = Signal(name=f"nan_{lane}"), Signal(name=f"inf_{lane}")
            if fmt.kind == "fp":
                field = code[fmt.mbits:fmt.mbits + fmt.ebits]
                fraction = code[:fmt.mbits]
                all_ones = field == (1 << fmt.ebits) - 1
                if fmt.name == "fp8_e4m3":
                    m.d.comb += nan.eq(all_ones & (fraction == (1 << fmt.mbits) - 1))
                elif fmt.name == "fp8_e5m2":
                    m.d.comb += [nan.eq(all_ones & (fraction != 0)),
                                 inf.eq(all_ones & (fraction == 0))]
                sign = code[fmt.bits - 1]
                significand = Mux(field == 0, fraction, fraction | (1 << fmt.mbits))
                exponent = Mux(field == 0, fmt.emin, field - fmt.bias) - fmt.mbits + s
            else:
                value = code.as_signed()
                sign = value < 0
                significand = Mux(sign, -value, value)
                exponent = s - fmt.point
            with m.If(step):
                m.d.sync += [
                    out.sign.eq(sign), out.significand.eq(significand),
                    out.exponent.eq(exponent), out.nan.eq(nan | (scale == 0xFF)),
                    out.inf.eq(inf),
                ]

        packed = Signal(data.ArrayLayout(unsigned(32), L))
        for lane in range(L):
            element = decoded[lane]
            top = leading_one(m, element.significand, f"lead_{lane}")
            exponent = Signal(signed(EXP_BITS), name=f"exponent_{lane}")
            value = Signal(32, name=f"value_{lane}")
            m.d.comb += exponent.eq(element.exponent + top)
            with m.If(element.nan):
                m.d.comb += value.eq(0x7FC00000)
            with m.Elif(element.inf):
                m.d.comb += value.eq(Cat(Const(0x7F800000, 31), element.sign))
            with m.Elif(element.significand == 0):
                m.d.comb += value.eq(Cat(Const(0, 31), element.sign))
            with m.Elif(exponent > 127):   # only a scale the quantizer never gives: ±Inf
                m.d.comb += value.eq(Cat(Const(0x7F800000, 31), element.sign))
            with m.Elif(exponent >= -126):
                fraction = ((element.significand << 23) >> top)[:23]
                m.d.comb += value.eq(Cat(fraction, (exponent + 127)[:8], element.sign))
            with m.Else():   # an fp32 subnormal: 2^−149 · significand · 2^(exponent + 149)
                fraction = (element.significand << (element.exponent + 149)[:5])[:23]
                m.d.comb += value.eq(Cat(fraction, Const(0, 8), element.sign))
            with m.If(step):
                m.d.sync += packed[lane].eq(value)

        connect_output_queue(m, out_queue, packed, step & valid[1], self.o)
        in_flight = Signal()
        m.d.comb += in_flight.eq(beat | valid[0] | valid[1] | out_queue.r_rdy)
        stall_out = self.o.valid & ~self.o.ready
        count_cycles(m, self.counters, {
            "cycles": in_flight,
            "busy_cycles": beat,
            "stall_in_cycles": Const(0, 1),
            "stall_out_cycles": stall_out,
            "stall_cycles": stall_out,
            "nan_blocks": beat & self.i.payload.first & (scale == 0xFF),
        })
        return m
