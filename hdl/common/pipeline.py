"""Small datapath helpers shared by the arrays."""
from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

__all__ = ["delay_line"]


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
