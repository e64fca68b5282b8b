"""Small datapath helpers shared by the arrays."""
from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

__all__ = ["delay_line", "pipelined_tree", "stage"]


def stage(m: Module, value, *, enable: Value, name: str) -> Signal:
    """``value`` registered whenever ``enable`` is high: one stage of a datapath that
    back-pressure freezes. Keeps ``value``'s shape or ``amaranth.lib.data`` layout."""
    shape = value.shape() if hasattr(value, "shape") else Value.cast(value).shape()
    register = Signal(shape, name=name)
    with m.If(enable):
        m.d.sync += register.eq(value)
    return register


def delay_line(m: Module, value, *, shape, steps: int, enable: Value, name: str):
    """``value`` delayed by ``steps`` enabled cycles through a chain of registers named
    ``<name>_1 … <name>_<steps>`` (the skew and deskew lines of a systolic array)."""
    head = value
    for index in range(steps):
        register = Signal(shape, name=f"{name}_{index + 1}")
        with m.If(enable):
            m.d.sync += register.eq(head)
        head = register
    return head


def pipelined_tree(m: Module, values, combine, *, name: str) -> tuple[Signal, int]:
    """Reduce ``values`` pairwise with ``combine`` (e.g. an adder or a max), one register per
    tree level, free-running. Returns the result and its latency in cycles (0 for one value)."""
    level = list(values)
    depth = 0
    while len(level) > 1:
        reduced = []
        for index in range(0, len(level), 2):
            expr = (combine(level[index], level[index + 1]) if index + 1 < len(level)
                    else level[index])
            register = Signal(Value.cast(expr).shape(), name=f"{name}_{depth}_{index // 2}")
            m.d.sync += register.eq(expr)
            reduced.append(register)
        level = reduced
        depth += 1
    return level[0], depth
