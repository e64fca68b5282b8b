"""The block buffer every block quantizer starts with.

A block's elements can only be scaled once the whole block has been seen (its largest
magnitude, for KIVI also its smallest and largest value), so each block is written into one
half of a double buffer while its statistics accumulate, and read out of it once complete,
while the next block fills the other half. In and out run at ``lanes`` elements per cycle.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
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


def _order_key(element) -> Signal:
    """A signed integer ordered like the element's value: magnitude = (log2, significand)."""
    magnitude = Cat(element.significand, (element.log2 - ZERO_LOG2)[:EXP_BITS])
    return Mux(element.sign, -magnitude, magnitude)


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

        # Running statistics of the block being written, folded lane by lane (a Signal per
        # step keeps the expression linear in the lanes).
        stats_layout = block_statistics_layout()
        running = Signal(stats_layout, init={"log2": ZERO_LOG2})
        folded = running
        for lane in range(L):
            element = unpacked[lane]
            step = Signal(stats_layout, name=f"fold_{lane}")
            m.d.comb += [
                step.log2.eq(Mux(element.log2 > folded.log2, element.log2, folded.log2)),
                step.special.eq(folded.special | element.special),
            ]
            if self._extremes:
                first = _is_first(write_beat, lane)
                key = _order_key(element)
                m.d.comb += [
                    step.least.eq(Mux(first | (key < _order_key(folded.least)),
                                      element, folded.least)),
                    step.largest.eq(Mux(first | (key > _order_key(folded.largest)),
                                        element, folded.largest)),
                ]
            folded = step
        statistics = [Signal(stats_layout, name=f"block_{half}") for half in range(2)]
        last_write = Signal()
        m.d.comb += [
            last_write.eq(write_beat == BEATS - 1),
            write.addr.eq(write_half * BEATS + write_beat),
            write.en.eq(writing),
            write.data.eq(unpacked),
        ]
        with m.If(writing):
            with m.If(last_write):
                m.d.sync += [write_beat.eq(0), write_half.eq(~write_half),
                             running.eq(running.shape().const({"log2": ZERO_LOG2}))]
                for half in range(2):
                    with m.If(write_half == half):
                        m.d.sync += statistics[half].eq(folded)
            with m.Else():
                m.d.sync += [write_beat.eq(write_beat + 1), running.eq(folded)]

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
                self.o.payload.block.eq(Mux(read_half, statistics[1], statistics[0])),
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
            self.holding.eq(held_valid | unpacked_valid | full.any() | self.o.valid),
        ]
        return m


def _is_first(write_beat: Signal, lane: int):
    """The first element of a block: it starts the min/max fold, whatever was before."""
    return (write_beat == 0) if lane == 0 else 0
