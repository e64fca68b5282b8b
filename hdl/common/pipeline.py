"""Small datapath helpers shared by the arrays."""
from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

__all__ = ["delay_line", "stage"]


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
