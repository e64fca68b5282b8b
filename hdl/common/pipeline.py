"""Small datapath helpers shared by the arrays."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetSignal, Signal, Value, signed, unsigned

__all__ = ["delay_line", "enable_copy", "pipelined_product", "pipelined_tree",
           "queue_room_flags", "shift_add_product", "stage"]


def stage(m: Module, value, *, enable: Value, name: str) -> Signal:
    """``value`` registered whenever ``enable`` is high: one stage of a datapath that
    back-pressure freezes. Keeps ``value``'s shape or ``amaranth.lib.data`` layout."""
    shape = value.shape() if hasattr(value, "shape") else Value.cast(value).shape()
    register = Signal(shape, name=name)
    with m.If(enable):
        m.d.sync += register.eq(value)
    return register


def queue_room_flags(m: Module, level: Value, *, limit: int) -> tuple[Signal, Signal, Signal]:
    """Registered "the queue has room" enables for a datapath that a queue's back-pressure
    freezes: high two cycles after ``level`` was at most ``limit``.

    A datapath that stalls on a queue's combinational ``w_rdy`` has that signal, and the
    queue's level logic before it, in front of every register it enables. Here the level
    reaches a register first (``step_early``), and the enables are registered copies of it,
    so each enable net starts at a register and has no logic before its loads. The price is
    looking two cycles back: ``limit`` must leave room for every write that can still arrive
    after the level was sampled (the caller counts them; a deeper queue keeps the
    throughput).

    Returns ``(step, step_dp, step_early)``, equal enables each cycle: ``step`` for a
    controller (few loads), ``step_dp`` for a datapath's skew lines and tags, and
    ``step_early``, from which a module kept apart in synthesis registers a copy of its own
    (:func:`enable_copy`). Yosys merges identical registers, so ``step`` has a reset to 1 and
    ``step_dp`` has none and takes the reset as an input (``| rst``) instead; both are high
    after a reset, as a copy is."""
    rst = ResetSignal("sync", allow_reset_less=True)   # 0 in a reset-less domain
    early = Signal(name="step_early", init=1, reset_less=True)
    step = Signal(name="step", init=1)
    step_dp = Signal(name="step_dp", init=1, reset_less=True)
    m.d.sync += [
        early.eq((level <= limit) | rst),
        step.eq(early),
        step_dp.eq(early | rst),
    ]
    return step, step_dp, early


def enable_copy(m: Module, step_early: Value, *, name: str = "step") -> Signal:
    """A module's own copy of an array-wide enable of :func:`queue_room_flags`, registered
    from its ``step_early``: equal to ``step`` in every cycle. One enable register with
    thousands of loads spread over the die becomes one per PE with its few hundred loads
    beside it (synthesis keeps the PE modules apart, so the copies are not merged back)."""
    enable = Signal(name=name, init=1)
    m.d.sync += enable.eq(step_early)
    return enable


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


def _pieces(value: Value, width: int) -> list[tuple[Value, int]]:
    """``value`` as (piece, shift) pairs of at most ``width`` bits: unsigned low pieces and,
    for a signed value, a signed top piece, so that Σ piece << shift == value."""
    value = Value.cast(value)
    signed_value = value.shape().signed
    pieces = []
    for low in range(0, len(value), width):
        high = min(low + width, len(value))
        piece = value[low:high]
        if signed_value and high == len(value):
            piece = piece.as_signed()
        pieces.append((piece, low))
    return pieces


def pipelined_product(m: Module, a, b, *, name: str, piece_bits: int = 17
                      ) -> tuple[Signal, int]:
    """``a·b`` for wide operands as registered partial products of at most ``piece_bits`` ×
    ``piece_bits`` (one FPGA multiplier each) summed by a registered adder tree. Returns the
    product and its latency in cycles (free-running, one product per cycle)."""
    terms = []
    for index_a, (piece_a, shift_a) in enumerate(_pieces(a, piece_bits)):
        for index_b, (piece_b, shift_b) in enumerate(_pieces(b, piece_bits)):
            product = piece_a * piece_b
            register = Signal(product.shape(), name=f"{name}_pp_{index_a}_{index_b}")
            m.d.sync += register.eq(product)
            terms.append(register << (shift_a + shift_b) if shift_a + shift_b else register)
    total, depth = pipelined_tree(m, terms, lambda x, y: x + y, name=f"{name}_sum")
    width = len(Value.cast(a)) + len(Value.cast(b))
    signed_result = Value.cast(a).shape().signed or Value.cast(b).shape().signed
    result = Signal(signed(width) if signed_result else unsigned(width), name=f"{name}_product")
    m.d.comb += result.eq(total)
    return result, 1 + depth


def shift_add_product(m: Module, a: Value, b: Value, *, enable: Value, name: str
                      ) -> tuple[Signal, int]:
    """Signed ``a·b`` built from shifted partial products (no multiplier cell, so it maps to
    LUTs and carry chains next to the logic that uses it), one register per level of the
    adder tree, every register enabled by ``enable``. Returns the product and its latency in
    enabled steps. Bit ``i`` of ``b`` adds ``a << i``; the sign bit of a signed ``b``
    subtracts it (two's complement)."""
    a, b = Value.cast(a), Value.cast(b)
    width = len(a) + len(b)
    terms = []
    for i in range(len(b)):
        term = Mux(b[i], a.as_signed() << i, 0)
        terms.append(-term if (i == len(b) - 1 and b.shape().signed) else term)
    depth = 0
    while len(terms) > 1:
        reduced = []
        for index in range(0, len(terms), 2):
            expr = terms[index] + terms[index + 1] if index + 1 < len(terms) else terms[index]
            register = Signal(signed(width), name=f"{name}_{depth}_{index // 2}")
            with m.If(enable):
                m.d.sync += register.eq(expr)
            reduced.append(register)
        terms = reduced
        depth += 1
    return terms[0], depth
