"""Pack and unpack stream payloads to and from the flat bit vectors of the Verilog ports,
using the same ``amaranth.lib.data`` layouts that shape the RTL."""
from __future__ import annotations

from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack"]


def pack(layout: Any, value: Any) -> int:
    """Flatten ``value`` (int, list for arrays, dict for structs) into an unsigned integer."""
    if isinstance(layout, data.ArrayLayout):
        if len(value) != layout.length:
            raise ValueError(f"expected {layout.length} lanes, got {len(value)}")
        width = Shape.cast(layout.elem_shape).width
        return sum(pack(layout.elem_shape, lane) << (i * width) for i, lane in enumerate(value))
    if isinstance(layout, data.StructLayout):
        return sum(pack(field.shape, value[name]) << field.offset for name, field in layout)
    shape = Shape.cast(layout)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - (1 if shape.signed else 0))) - 1
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit {shape}")
    return value & ((1 << shape.width) - 1)


def unpack(layout: Any, bits: int) -> Any:
    """The inverse of :func:`pack`: ints, lists of lanes and dicts of fields."""
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (i * width)) for i in range(layout.length)]
    if isinstance(layout, data.StructLayout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in layout}
    shape = Shape.cast(layout)
    value = bits & ((1 << shape.width) - 1)
    if shape.signed and value >> (shape.width - 1):
        value -= 1 << shape.width
    return value
