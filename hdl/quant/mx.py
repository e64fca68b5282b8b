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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature, count_cycles
from .config import MXDequantConfig, MXQuantConfig
from .fields import EXP_BITS, ZERO_LOG2, canonical_layout, leading_one, unpack_input
from .formats import INPUTS

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
        in_bits = 1 + sum(INPUTS[config.input][:2])
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(in_bits), config.lanes))),
            "o": Out(stream.Signature(quantized_layout(config))),
            "counters": Out(_counters()),
        })

    def elaborate(self, platform):
        cfg = self._config
        fmt = cfg.element
        L, BEATS = cfg.lanes, cfg.beats_per_block
        m = Module()
        canonical = canonical_layout()
        row = data.ArrayLayout(canonical, L)

        m.submodules.buffer = buffer = Memory(shape=row, depth=2 * BEATS, init=[])
        write = buffer.write_port()
        read = buffer.read_port()
        out_layout = quantized_layout(cfg)
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                                   depth=4)

        # --- Input side: a register stage, then unpack, write the buffer, track the max. ---
        held = Signal(self.i.payload.shape())
        held_valid = Signal()
        full = Signal(2)                    # per half: a whole block waits to be read
        write_half = Signal()
        write_beat = Signal(range(BEATS))
        block_log2 = Signal(signed(EXP_BITS), init=ZERO_LOG2)
        block_special = Signal()
        scale_log2 = [Signal(signed(EXP_BITS), name=f"block_log2_{h}") for h in range(2)]
        scale_special = [Signal(name=f"block_special_{h}") for h in range(2)]
        writing = Signal()
        m.d.comb += [
            writing.eq(held_valid & ~full.bit_select(write_half, 1)),
            self.i.ready.eq(~held_valid | writing),
        ]
        with m.If(self.i.ready):
            m.d.sync += held_valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += held.eq(self.i.payload)

        lanes = [unpack_input(m, held[lane], cfg.input, f"in_{lane}") for lane in range(L)]
        beat_log2, beat_special = block_log2, block_special
        for index, lane in enumerate(lanes):   # a Signal per step: no expression blow-up
            running = Signal(signed(EXP_BITS), name=f"running_log2_{index}")
            m.d.comb += running.eq(Mux(lane.log2 > beat_log2, lane.log2, beat_log2))
            beat_log2 = running
            beat_special = beat_special | lane.special
        last_write = Signal()
        m.d.comb += [
            last_write.eq(write_beat == BEATS - 1),
            write.addr.eq(Cat(write_beat, write_half) if BEATS & (BEATS - 1) == 0
                          else write_half * BEATS + write_beat),
            write.en.eq(writing),
            write.data.eq(Cat(*[lane.as_value() for lane in lanes])),
        ]
        with m.If(writing):
            with m.If(last_write):
                m.d.sync += [write_beat.eq(0), write_half.eq(~write_half),
                             block_log2.eq(ZERO_LOG2), block_special.eq(0)]
                for half in range(2):
                    with m.If(write_half == half):
                        m.d.sync += [scale_log2[half].eq(beat_log2),
                                     scale_special[half].eq(beat_special)]
            with m.Else():
                m.d.sync += [write_beat.eq(write_beat + 1), block_log2.eq(beat_log2),
                             block_special.eq(beat_special)]

        # --- Output side: read a full half beat by beat; three stages; the queue's room
        # steps the whole pipeline (back-pressure freezes it). ---
        step = Signal()
        m.d.comb += step.eq(out_queue.w_rdy)
        read_half = Signal()
        read_beat = Signal(range(BEATS))
        issue = Signal()
        m.d.comb += [
            issue.eq(step & full.bit_select(read_half, 1)),
            read.addr.eq(Cat(read_beat, read_half) if BEATS & (BEATS - 1) == 0
                         else read_half * BEATS + read_beat),
            read.en.eq(step),
        ]
        block_done = Signal()
        m.d.comb += block_done.eq(issue & (read_beat == BEATS - 1))
        with m.If(issue):
            m.d.sync += read_beat.eq(Mux(read_beat == BEATS - 1, 0, read_beat + 1))
            with m.If(read_beat == BEATS - 1):
                m.d.sync += read_half.eq(~read_half)
        # A half is full from its last write until its last read is issued.
        finished = Signal(2)
        for half in range(2):
            m.d.comb += finished[half].eq(
                writing & last_write & (write_half == half))
            with m.If(finished[half]):
                m.d.sync += full[half].eq(1)
            with m.Elif(block_done & (read_half == half)):
                m.d.sync += full[half].eq(0)

        # The block's scale exponent s = max(E − emax, −127), NaN for Inf/NaN blocks.
        block_scale = Signal(signed(EXP_BITS))
        block_nan = Signal()
        chosen_log2 = Signal(signed(EXP_BITS))
        m.d.comb += [
            chosen_log2.eq(Mux(read_half, scale_log2[1], scale_log2[0])),
            block_nan.eq(Mux(read_half, scale_special[1], scale_special[0])),
            block_scale.eq(Mux(chosen_log2 - fmt.emax < -127, -127, chosen_log2 - fmt.emax)),
        ]

        # LFSR per lane: the byte of the beat being issued, then one step.
        lfsrs = [Signal(32, init=lfsr_seed(lane), name=f"lfsr_{lane}") for lane in range(L)]
        for lfsr in lfsrs:
            with m.If(issue):
                m.d.sync += lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], LFSR_TAPS, 0))

        tag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "nan": 1,
                                 "scale": signed(EXP_BITS)})
        tags = [Signal(tag, name=f"tag_{stage}") for stage in range(3)]
        random1 = Signal(data.ArrayLayout(8, L))
        with m.If(step):
            m.d.sync += [
                tags[0].valid.eq(issue), tags[0].first.eq(read_beat == 0),
                tags[0].last.eq(read_beat == BEATS - 1), tags[0].nan.eq(block_nan),
                tags[0].scale.eq(block_scale),
                tags[1].eq(tags[0]), tags[2].eq(tags[1]),
                random1.eq(Cat(*[lfsr[:8] for lfsr in lfsrs])),
            ]

        # Stage 1 (memory data): the element's grid — shift amount and, for floats, e'.
        elements = read.data
        s = tags[0].scale
        shifted_layout = data.StructLayout({
            "sign": 1, "window": unsigned(32 + _FRACTION), "binade": signed(EXP_BITS),
            "random": 8})
        stage2 = Signal(data.ArrayLayout(shifted_layout, L))
        for lane in range(L):
            element = elements[lane]
            if fmt.kind == "fp":
                grid_log2 = Mux(element.log2 > fmt.emin + s, element.log2, fmt.emin + s)
                binade = Mux(element.log2 - s > fmt.emin, element.log2 - s, fmt.emin)
                target = grid_log2 - fmt.mbits
            else:
                binade = Const(0, signed(EXP_BITS))
                target = s - fmt.point
            shift = Signal(signed(EXP_BITS + 2), name=f"shift_{lane}")
            clamped = Signal(range(_FRACTION + 1), name=f"shift_clamped_{lane}")
            m.d.comb += [
                shift.eq(target - element.lsb + _HEADROOM),
                clamped.eq(Mux(shift < 0, 0, Mux(shift > _FRACTION, _FRACTION, shift))),
            ]
            widened = Cat(Const(0, _FRACTION + _HEADROOM), element.significand)
            with m.If(step):
                m.d.sync += [
                    stage2[lane].sign.eq(element.sign),
                    stage2[lane].window.eq(widened >> clamped),
                    stage2[lane].binade.eq(binade),
                    stage2[lane].random.eq(random1[lane]),
                ]

        # Stage 2: round, saturate, encode.
        codes = Signal(data.ArrayLayout(unsigned(fmt.bits), L))
        for lane in range(L):
            window = stage2[lane].window
            whole = window[_FRACTION:_FRACTION + fmt.bits + 2]
            half = window[_FRACTION - 1]
            sticky = window[:_FRACTION - 1].any()
            top8 = window[_FRACTION - 8:_FRACTION]
            up = {
                "nearest_even": half & (sticky | whole[0]),
                "nearest_away": half,
                "toward_zero": Const(0, 1),
                "stochastic": (top8 + stage2[lane].random)[8],
            }[cfg.rounding]
            rounded = Signal(fmt.bits + 3, name=f"rounded_{lane}")
            magnitude = Signal(fmt.bits + 8, name=f"magnitude_{lane}")
            m.d.comb += rounded.eq(whole + up)
            if fmt.kind == "fp":
                m.d.comb += magnitude.eq(
                    ((stage2[lane].binade - fmt.emin) << fmt.mbits) + rounded)
            else:
                m.d.comb += magnitude.eq(rounded)
            saturated = Mux(magnitude > fmt.max_code, fmt.max_code, magnitude)
            if fmt.kind == "fp":
                code = Cat(saturated[:fmt.bits - 1], stage2[lane].sign)
            else:
                code = Mux(stage2[lane].sign, -saturated, saturated)[:fmt.bits]
            with m.If(step):
                m.d.sync += codes[lane].eq(Mux(tags[1].nan, 0, code))

        out = Signal(out_layout)
        m.d.comb += [
            out.codes.eq(codes),
            out.scale.eq(Mux(tags[2].nan, 0xFF, tags[2].scale + 127)),
            out.first.eq(tags[2].first),
            out.last.eq(tags[2].last),
            out_queue.w_data.eq(out),
            out_queue.w_en.eq(step & tags[2].valid),
            self.o.payload.eq(out_queue.r_data),
            self.o.valid.eq(out_queue.r_rdy),
            out_queue.r_en.eq(self.o.ready),
        ]

        in_flight = Signal()
        m.d.comb += in_flight.eq(held_valid | full.any() | (write_beat != 0) | tags[0].valid
                                 | tags[1].valid | tags[2].valid | out_queue.r_rdy)
        stall_in = (write_beat != 0) & ~held_valid
        stall_out = self.o.valid & ~self.o.ready
        count_cycles(m, self.counters, {
            "cycles": in_flight,
            "busy_cycles": writing,
            "stall_in_cycles": stall_in,
            "stall_out_cycles": stall_out,
            "stall_cycles": stall_in | stall_out,
            "nan_blocks": step & tags[2].valid & tags[2].first & tags[2].nan,
        })
        return m


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

        m.d.comb += [
            out_queue.w_data.eq(packed),
            out_queue.w_en.eq(step & valid[1]),
            self.o.payload.eq(out_queue.r_data),
            self.o.valid.eq(out_queue.r_rdy),
            out_queue.r_en.eq(self.o.ready),
        ]
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
