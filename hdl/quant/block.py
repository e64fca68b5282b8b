"""The block buffer every block quantizer starts with.

A block's elements can only be scaled once the whole block has been seen (its largest
magnitude, for KIVI also its smallest and largest value), so each block is written into one
half of a double buffer while its statistics accumulate, and read out of it once complete,
while the next block fills the other half. In and out run at ``lanes`` elements per cycle.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fields import EXP_BITS, ZERO_LOG2, canonical_layout, unpack_input
from .formats import INPUTS

__all__ = ["BlockBuffer", "block_statistics_layout", "buffered_layout", "input_layout"]


def input_layout(input_type: str, lanes: int) -> data.ArrayLayout:
    """``lanes`` bit patterns of ``input_type`` elements."""
    return data.ArrayLayout(unsigned(1 + sum(INPUTS[input_type][:2])), lanes)


def block_statistics_layout() -> data.StructLayout:
    """What a block's elements say about it as a whole."""
    return data.StructLayout({
        "log2": signed(EXP_BITS),       # floor(log2 max |x|), ZERO_LOG2 for an all-zero block
        "special": 1,                   # a NaN or an Inf in the block
        "least": canonical_layout(),    # its smallest value (signed order)
        "largest": canonical_layout(),  # its largest value
    })


def buffered_layout(lanes: int) -> data.StructLayout:
    """A beat out of the buffer: canonical elements, tagged with their block's statistics."""
    return data.StructLayout({
        "elements": data.ArrayLayout(canonical_layout(), lanes),
        "block": block_statistics_layout(),
        "first": 1,
        "last": 1,
    })


def _order_key(element) -> Value:
    """An unsigned integer ordered like the element's value: the magnitude (log2, then
    significand) with its bits inverted for a negative element, and the inverted sign on top."""
    magnitude = Cat(element.significand, (element.log2 - ZERO_LOG2)[:EXP_BITS])
    return Cat(magnitude ^ element.sign.replicate(len(magnitude)), ~element.sign)


class BlockBuffer(wiring.Component):
    """``i``: raw input beats; ``o``: whole blocks of canonical elements with statistics.

    ``starved`` is high while a block is partly written and no element of it is on its way
    (the input is not valid), ``holding`` while anything is inside.
    """

    def __init__(self, *, input_type: str, lanes: int, block_size: int,
                 extremes: bool = False):
        self._input, self._lanes, self._beats = input_type, lanes, block_size // lanes
        self._extremes = extremes       # also track the least and largest value (KIVI)
        super().__init__({
            "i": In(stream.Signature(input_layout(input_type, lanes))),
            "o": Out(stream.Signature(buffered_layout(lanes))),
            "starved": Out(1),
            "holding": Out(1),
        })

    def elaborate(self, platform):
        L, BEATS = self._lanes, self._beats
        m = Module()
        m.submodules.memory = memory = Memory(
            shape=data.ArrayLayout(canonical_layout(), L), depth=2 * BEATS, init=[])
        write = memory.write_port()
        read = memory.read_port()

        # Input: a register stage, then unpack (second register stage), then write.
        held = Signal(self.i.payload.shape())
        held_valid = Signal()
        unpacked = Signal(data.ArrayLayout(canonical_layout(), L))
        unpacked_valid = Signal()
        full = Signal(2)                    # per half: a whole block waits to be read
        write_half = Signal()
        write_beat = Signal(range(BEATS))
        writing = Signal()
        m.d.comb += writing.eq(unpacked_valid & ~full.bit_select(write_half, 1))
        advance_unpacked = ~unpacked_valid | writing
        m.d.comb += self.i.ready.eq(~held_valid | advance_unpacked)
        with m.If(self.i.ready):
            m.d.sync += held_valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += held.eq(self.i.payload)
        with m.If(advance_unpacked):
            m.d.sync += unpacked_valid.eq(held_valid)
            for lane in range(L):
                element = unpack_input(m, held[lane], self._input, f"in_{lane}")
                m.d.sync += unpacked[lane].eq(element)

        last_write = Signal()
        m.d.comb += [
            last_write.eq(write_beat == BEATS - 1),
            write.addr.eq(write_half * BEATS + write_beat),
            write.en.eq(writing),
            write.data.eq(unpacked),
        ]
        with m.If(writing):
            m.d.sync += [write_beat.eq(Mux(last_write, 0, write_beat + 1)),
                         write_half.eq(write_half ^ last_write)]

        # Block statistics, two stages beside the write: the beat's own, reduced over the
        # lanes as a tree; then folded into the block's, a cycle after the block's last write.
        # Its half is full from that write on: a first read in that very cycle takes the
        # statistics straight from the fold.
        stats_layout = block_statistics_layout()
        per_lane = []
        for lane in range(L):
            stats = Signal(stats_layout, name=f"lane_stats_{lane}")
            m.d.comb += [stats.log2.eq(unpacked[lane].log2),
                         stats.special.eq(unpacked[lane].special)]
            if self._extremes:
                m.d.comb += [stats.least.eq(unpacked[lane]), stats.largest.eq(unpacked[lane])]
            per_lane.append(stats)
        beat = Signal(stats_layout)
        beat_tag = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "half": 1}))
        m.d.sync += [
            beat.eq(self._reduce(m, per_lane, "beat_stats")),
            beat_tag.valid.eq(writing), beat_tag.first.eq(write_beat == 0),
            beat_tag.last.eq(last_write), beat_tag.half.eq(write_half),
        ]
        running = Signal(stats_layout)
        combined = Signal(stats_layout)
        m.d.comb += combined.eq(Mux(beat_tag.first, beat,
                                    self._combine(m, running, beat, "block_stats")))
        statistics = [Signal(stats_layout, name=f"block_{half}") for half in range(2)]
        published = Signal(2)
        with m.If(beat_tag.valid):
            m.d.sync += running.eq(combined)
            for half in range(2):
                with m.If(beat_tag.last & (beat_tag.half == half)):
                    m.d.sync += statistics[half].eq(combined)
                    m.d.comb += published[half].eq(1)

        # Output: a full half, beat by beat; the read port's register is the output register.
        read_half = Signal()
        read_beat = Signal(range(BEATS))
        advance = Signal()
        issue = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            issue.eq(advance & full.bit_select(read_half, 1)),
            read.addr.eq(read_half * BEATS + read_beat),
            read.en.eq(advance),
        ]
        last_read = read_beat == BEATS - 1
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(issue),
                self.o.payload.block.eq(Mux(published.bit_select(read_half, 1), combined,
                                            Mux(read_half, statistics[1], statistics[0]))),
                self.o.payload.first.eq(read_beat == 0),
                self.o.payload.last.eq(last_read),
            ]
        m.d.comb += self.o.payload.elements.eq(read.data)
        with m.If(issue):
            m.d.sync += read_beat.eq(Mux(last_read, 0, read_beat + 1))
            with m.If(last_read):
                m.d.sync += read_half.eq(~read_half)
        for half in range(2):
            with m.If(writing & last_write & (write_half == half)):
                m.d.sync += full[half].eq(1)
            with m.Elif(issue & last_read & (read_half == half)):
                m.d.sync += full[half].eq(0)

        m.d.comb += [
            self.starved.eq((write_beat != 0) & ~held_valid & ~unpacked_valid & ~self.i.valid),
            self.holding.eq(held_valid | unpacked_valid | beat_tag.valid | full.any()
                            | self.o.valid),
        ]
        return m

    def _combine(self, m: Module, a, b, name: str) -> Signal:
        """The statistics of two parts of a block together."""
        out = Signal(block_statistics_layout(), name=name)
        m.d.comb += [out.log2.eq(Mux(a.log2 > b.log2, a.log2, b.log2)),
                     out.special.eq(a.special | b.special)]
        if self._extremes:
            m.d.comb += [
                out.least.eq(Mux(_order_key(b.least) < _order_key(a.least), b.least, a.least)),
                out.largest.eq(Mux(_order_key(b.largest) > _order_key(a.largest), b.largest,
                                   a.largest)),
            ]
        return out

    def _reduce(self, m: Module, parts: list, name: str) -> Signal:
        """A balanced tree of :meth:`_combine` over ``parts``."""
        level = 0
        while len(parts) > 1:
            parts = [self._combine(m, parts[i], parts[i + 1], f"{name}_{level}_{i // 2}")
                     if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
            level += 1
        return parts[0]
