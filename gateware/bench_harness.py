"""Self-driving benchmark top for ``systolic_gemm``: inputs always valid, output always ready.

Cocotb drives the per-element testbenches one cycle at a time from Python; throughput
benchmarks of millions of cycles instead run this top, which feeds the GEMM from counters on
chip and only reports completion, so the simulator runs at its own speed. The GEMM inside is
the very component the tests verify; only the feeding differs.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.systolic import SystolicGemmConfig, make_systolic_gemm
from hdl.systolic.config import DIM_BITS
from hdl.systolic.interface import CountersSignature

__all__ = ["GemmBenchHarness"]


class GemmBenchHarness(wiring.Component):
    """``start`` with sizes ``m, k, n`` runs one job; ``done`` rises with its last result."""

    def __init__(self, config: SystolicGemmConfig):
        self._config = config
        super().__init__({
            "start": In(1),
            "m": In(DIM_BITS), "k": In(DIM_BITS), "n": In(DIM_BITS),
            "done": Out(1),
            "checksum": Out(32),
            "counters": Out(CountersSignature()),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.gemm = gemm = make_systolic_gemm(cfg)
        wiring.connect(m, wiring.flipped(self.counters), gemm.counters)

        pending = Signal()
        with m.If(self.start):
            m.d.sync += [pending.eq(1), self.done.eq(0)]
        with m.Elif(gemm.desc.valid & gemm.desc.ready):
            m.d.sync += pending.eq(0)
        m.d.comb += [
            gemm.desc.valid.eq(pending),
            gemm.desc.payload.m.eq(self.m),
            gemm.desc.payload.k.eq(self.k),
            gemm.desc.payload.n.eq(self.n),
        ]
        # Operand values change every beat so that the datapath toggles as in real use.
        counter = Signal(16)
        m.d.comb += [gemm.a.valid.eq(1), gemm.b.valid.eq(1)]
        with m.If(gemm.a.ready):
            m.d.sync += counter.eq(counter + 1)
        for i in range(cfg.rows):
            m.d.comb += gemm.a.payload[i].eq(counter + 3 * i)
        for j in range(cfg.cols):
            m.d.comb += gemm.b.payload[j].eq(counter ^ (5 * j + 1))

        m.d.comb += gemm.c.ready.eq(1)
        with m.If(gemm.c.valid):
            m.d.sync += self.checksum.eq(self.checksum ^ gemm.c.payload.as_value()[:32])
            with m.If(gemm.c.payload.last):
                m.d.sync += self.done.eq(1)
        return m
