"""The N:M sparse PE: an index-driven multiplexer in front of each of its N multipliers
(VEGETA's design), behind the same ports as the dense output-stationary PE."""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..common.pipeline import enable_copy
from ..systolic.output_stationary import beat_layout
from .interface import pe_row_layout, weight_group_layout

__all__ = ["NMSparsePE", "group_malformed"]


def group_malformed(group) -> Value:
    """High when a compressed group's indices are not strictly increasing (two values on one
    index, or out of the canonical order every compressed group uses)."""
    bad = Const(0)
    for t in range(1, len(group.indices)):
        bad = bad | (group.indices[t] <= group.indices[t - 1])
    return bad


class NMSparsePE(wiring.Component):
    """One sparse PE with the ports of :class:`~hdl.systolic.output_stationary.
    OutputStationaryPE`: ``acc += Σ_t values[t] · acts[indices[t]]`` over a fold's beats.

    Four stages, each a cycle of ``en``: select the N activations (by index, or lanes 0..N-1 in
    dense mode), multiply, sum the N products, accumulate. On a fold's ``last`` beat the sum
    moves to ``result``; ``shift`` loads ``result`` from ``chain_in`` to drain the column.
    With ``enable_ahead``, ``en`` is the enable of the next cycle, registered here
    (:func:`~hdl.common.pipeline.enable_copy`), as the array drives it.
    """

    #: Enabled steps from a beat in ``a_in`` to its ``capture`` (the array's tile tags wait
    #: this long).
    CAPTURE = 3

    def __init__(self, config, *, acc_width: int, enable_ahead: bool = False):
        self._config = config
        self._acc_width = acc_width
        self._enable_ahead = enable_ahead
        row = beat_layout(pe_row_layout(config))
        group = weight_group_layout(config)
        super().__init__({
            "en": In(1),
            "a_in": In(row),
            "b_in": In(group),
            "a_out": Out(row),
            "b_out": Out(group),
            "shift": In(1),
            "chain_in": In(signed(acc_width)),
            "result": Out(signed(acc_width)),
            "capture": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        N, W, A = cfg.n, cfg.width, self._acc_width
        m = Module()
        framing = data.StructLayout({"valid": 1, "first": 1, "last": 1})
        frames = [Signal(framing, name=f"frame_{stage}") for stage in range(3)]
        selected = Signal(data.ArrayLayout(signed(W), N))
        values = Signal(data.ArrayLayout(signed(W), N))
        products = Signal(data.ArrayLayout(signed(2 * W), N))
        group_sum = Signal(signed(A))
        acc = Signal(signed(A))
        total = Signal(signed(A))
        row = self.a_in.value
        en = enable_copy(m, self.en) if self._enable_ahead else self.en
        m.d.comb += [
            total.eq(Mux(frames[2].first, 0, acc) + group_sum),
            self.capture.eq(en & frames[2].valid & frames[2].last),
        ]
        with m.If(en):
            m.d.sync += [
                self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                frames[0].valid.eq(self.a_in.valid), frames[0].first.eq(self.a_in.first),
                frames[0].last.eq(self.a_in.last),
                frames[1].eq(frames[0]), frames[2].eq(frames[1]),
                values.eq(self.b_in.values),
                group_sum.eq(sum(products[t] for t in range(N))),
            ]
            for t in range(N):
                m.d.sync += [
                    selected[t].eq(Mux(row.dense, row.acts[t], row.acts[self.b_in.indices[t]])),
                    products[t].eq(selected[t] * values[t]),
                ]
            with m.If(frames[2].valid):
                m.d.sync += acc.eq(total)
            with m.If(self.capture):
                m.d.sync += self.result.eq(total)
            with m.Elif(self.shift):
                m.d.sync += self.result.eq(self.chain_in)
        return m
