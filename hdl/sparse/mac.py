"""``nm_sparse_mac``: one N:M sparse PE behind streams, for unit-level use and measurement."""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring

from ..common.counters import count_cycles
from .config import NMSparseMacConfig
from .interface import mac_signature
from .pe import NMSparsePE, group_malformed

__all__ = ["NMSparseMac"]

#: Dot products that may be in flight between the input and the output queue.
_IN_FLIGHT = 8


class NMSparseMac(wiring.Component):
    """Groups in on ``i`` (one per cycle), one ``o`` transfer per dot product (``last``).

    The PE advances whenever the output queue has room, so back-pressure freezes it and a
    starved input enters as a bubble. The error flag of each dot product waits in a small
    queue beside the pipeline and meets its sum at the output, in order.
    """

    def __init__(self, config: NMSparseMacConfig):
        self._config = config
        super().__init__(mac_signature(config))

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.pe = pe = NMSparsePE(cfg, acc_width=cfg.acc_width)
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(
            width=len(self.o.payload.as_value()), depth=4)
        m.submodules.errors = errors = fifo.SyncFIFOBuffered(width=1, depth=_IN_FLIGHT)

        step = Signal()
        beat = Signal()
        first = Signal(init=1)          # the next beat starts a dot product
        group_error = Signal()          # a malformed group so far in this dot product
        malformed = Signal()
        m.d.comb += [
            step.eq(out_queue.w_rdy),
            self.i.ready.eq(step & errors.w_rdy),
            beat.eq(self.i.valid & self.i.ready),
            malformed.eq(~self.i.payload.dense & group_malformed(self.i.payload.group)),
            pe.en.eq(step),
            pe.shift.eq(0),
            pe.a_in.valid.eq(beat),
            pe.a_in.first.eq(first),
            pe.a_in.last.eq(self.i.payload.last),
            pe.a_in.value.acts.eq(self.i.payload.acts),
            pe.a_in.value.dense.eq(self.i.payload.dense),
            pe.b_in.indices.eq(self.i.payload.group.indices),
            pe.b_in.values.eq(Mux(malformed, 0, self.i.payload.group.values)),
            errors.w_en.eq(beat & self.i.payload.last),
            errors.w_data.eq(group_error | malformed),
        ]
        with m.If(beat):
            m.d.sync += [first.eq(self.i.payload.last),
                         group_error.eq(~self.i.payload.last & (group_error | malformed))]

        # The PE's ``result`` holds a finished sum from its capture until the next step.
        pending = Signal()
        with m.If(step):
            m.d.sync += pending.eq(pe.capture)
        m.d.comb += [
            out_queue.w_en.eq(step & pending),
            out_queue.w_data.eq(Cat(pe.result, errors.r_data)),
            errors.r_en.eq(step & pending),
            self.o.payload.eq(out_queue.r_data),
            self.o.valid.eq(out_queue.r_rdy),
            out_queue.r_en.eq(self.o.ready),
        ]

        active = Signal()
        m.d.comb += active.eq(~first | errors.r_rdy | out_queue.r_rdy)
        count_cycles(m, self.counters, {
            "cycles": active | beat,
            "busy_cycles": beat,
            "stall_in_cycles": step & ~first & ~self.i.valid,
            "stall_out_cycles": active & ~step,
            "stall_cycles": (step & ~first & ~self.i.valid) | (active & ~step),
            "operand_errors": beat & malformed,
        })
        return m
