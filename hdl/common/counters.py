"""Performance counters: every block exposes them as output ports; benchmarks read them."""
from __future__ import annotations

from amaranth.hdl import Module, Value

__all__ = ["count_cycles"]


def count_cycles(m: Module, ports, events: dict[str, Value]) -> None:
    """Add one to the counter port ``ports.<name>`` in every cycle its event is high."""
    for name, event in events.items():
        counter = getattr(ports, name)
        with m.If(event):
            m.d.sync += counter.eq(counter + 1)
