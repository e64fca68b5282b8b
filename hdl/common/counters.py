"""Performance counters: every block exposes them as output ports; benchmarks read them."""
from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["COUNTER_BITS", "CountersSignature", "count_cycles"]

#: Width of every performance counter.
COUNTER_BITS = 48


class CountersSignature(wiring.Signature):
    """Performance counters, counted from reset while a job is in flight.

    Every block has the five cycle counters of ``NAMES`` and the sticky ``desc_error`` flag;
    a block adds its own event counters (``extra``), e.g. malformed operand beats.
    """

    NAMES = ("cycles", "busy_cycles", "stall_cycles", "stall_in_cycles", "stall_out_cycles")

    def __init__(self, extra: tuple[str, ...] = ()):
        self.names = (*self.NAMES, *extra)
        super().__init__({name: Out(COUNTER_BITS) for name in self.names}
                         | {"desc_error": Out(1)})


def count_cycles(m: Module, ports, events: dict[str, Value], *,
                 registered: bool = False) -> None:
    """Add one to the counter port ``ports.<name>`` in every cycle its event is high.

    ``registered`` counts each event a cycle later, through a register: the event's logic
    then ends at that register instead of also driving the counter's enable and adder (the
    counts still end equal, one cycle after the last event)."""
    for name, event in events.items():
        counter = getattr(ports, name)
        if registered:
            delayed = Signal(name=f"{name}_event")
            m.d.sync += delayed.eq(event)
            event = delayed
        with m.If(event):
            m.d.sync += counter.eq(counter + 1)
