"""Self-driving benchmark tops for the GEMM-shaped blocks (``systolic_gemm``,
``nm_sparse_gemm``): inputs always valid, output always ready.

Cocotb drives the per-element testbenches one cycle at a time from Python; throughput
benchmarks of millions of cycles instead run this top, which feeds the GEMM from counters on
chip and only reports completion, so the simulator runs at its own speed. The GEMM inside is
the very component the tests verify; only the feeding differs.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.common.config import BlockConfig
from hdl.common.counters import CountersSignature
from hdl.systolic.config import DIM_BITS

from .registry import get_block

__all__ = ["AttentionBenchHarness", "GemmBenchHarness", "PimBenchHarness"]


def _fill_dense(m: Module, gemm, counter: Signal) -> None:
    for i in range(len(gemm.a.payload)):
        m.d.comb += gemm.a.payload[i].eq(counter + 3 * i)
    for j in range(len(gemm.b.payload)):
        m.d.comb += gemm.b.payload[j].eq(counter ^ (5 * j + 1))


def _fill_sparse(m: Module, gemm, counter: Signal) -> None:
    """Activations and values change every beat; indices spread evenly over the group and
    stay well-formed (strictly increasing)."""
    for i, group in enumerate(gemm.a.payload):
        for lane in range(len(group)):
            m.d.comb += group[lane].eq(counter + 3 * i + lane)
    for j, group in enumerate(gemm.b.payload):
        n, span = len(group.values), 1 << len(group.indices[0])
        for t in range(n):
            m.d.comb += [group.values[t].eq(counter ^ (5 * j + t + 1)),
                         group.indices[t].eq(t * span // n)]


class GemmBenchHarness(wiring.Component):
    """``start`` with sizes ``m, k, n`` (and ``dense`` for a sparse array) runs one job;
    ``done`` rises with its last result."""

    def __init__(self, config: BlockConfig):
        self._config = config
        self._gemm = get_block(config.block_name).build(config)
        counters = self._gemm.signature.members["counters"].signature
        super().__init__({
            "start": In(1),
            "m": In(DIM_BITS), "k": In(DIM_BITS), "n": In(DIM_BITS), "dense": In(1),
            "done": Out(1),
            "checksum": Out(32),
            "counters": Out(CountersSignature(counters.names[len(CountersSignature.NAMES):])),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.gemm = gemm = self._gemm
        wiring.connect(m, wiring.flipped(self.counters), gemm.counters)
        sparse = hasattr(gemm.desc.payload, "dense")

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
        if sparse:
            m.d.comb += gemm.desc.payload.dense.eq(self.dense)
        # Operand values change every beat so that the datapath toggles as in real use.
        counter = Signal(16)
        m.d.comb += [gemm.a.valid.eq(1), gemm.b.valid.eq(1)]
        with m.If(gemm.a.ready):
            m.d.sync += counter.eq(counter + 1)
        (_fill_sparse if sparse else _fill_dense)(m, gemm, counter)

        m.d.comb += gemm.c.ready.eq(1)
        with m.If(gemm.c.valid):
            m.d.sync += self.checksum.eq(self.checksum ^ gemm.c.payload.as_value()[:32])
            with m.If(gemm.c.payload.last):
                m.d.sync += self.done.eq(1)
        return m


class AttentionBenchHarness(wiring.Component):
    """``start`` with the descriptor fields runs one attention job on operands generated on
    chip (they change every beat); ``done`` rises with the job's last output beat."""

    def __init__(self, config: BlockConfig):
        from hdl.attention.interface import descriptor_layout

        self._config = config
        self._engine = get_block(config.block_name).build(config)
        counters = self._engine.signature.members["counters"].signature
        fields = {name: In(shape) for name, shape in
                  ((name, field.shape) for name, field in descriptor_layout(config))}
        super().__init__({
            "start": In(1), **fields,
            "done": Out(1),
            "checksum": Out(32),
            "counters": Out(CountersSignature(counters.names[len(CountersSignature.NAMES):])),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        wiring.connect(m, wiring.flipped(self.counters), engine.counters)
        pending = Signal()
        with m.If(self.start):
            m.d.sync += [pending.eq(1), self.done.eq(0)]
        with m.Elif(engine.desc.valid & engine.desc.ready):
            m.d.sync += pending.eq(0)
        m.d.comb += engine.desc.valid.eq(pending)
        for name, _ in engine.desc.payload.shape():
            m.d.comb += getattr(engine.desc.payload, name).eq(getattr(self, name))
        counter = Signal(16)
        m.d.sync += counter.eq(counter + 1)
        for stream, step in ((engine.q, 3), (engine.k, 5), (engine.v, 7)):
            m.d.comb += stream.valid.eq(1)
            for lane in range(len(stream.payload)):
                m.d.comb += stream.payload[lane].eq(counter ^ (step * lane + step))
        m.d.comb += engine.o.ready.eq(1)
        with m.If(engine.o.valid):
            m.d.sync += self.checksum.eq(self.checksum ^ engine.o.payload.as_value()[:32])
            with m.If(engine.o.payload.last):
                m.d.sync += self.done.eq(1)
        return m


class PimBenchHarness(wiring.Component):
    """``start`` with a GEMV descriptor runs the PIM channel's sequencer on x lane words made on
    chip (W is whatever the banks hold: timing does not depend on values); ``done`` rises once
    the sequencer has issued its last command and the status stream is drained. Reports the
    DRAM cycles of the first and last issued command and the number of commands."""

    def __init__(self, config: BlockConfig):
        from hdl.pim.interface import counters_signature
        from hdl.pim.sequencer import gemv_layout

        self._config = config
        self._channel = get_block(config.block_name).build(config)
        fields = {name: In(field.shape) for name, field in gemv_layout(config)}
        super().__init__({
            "start": In(1), **fields,
            "done": Out(1),
            "first_cycle": Out(32),
            "last_cycle": Out(32),
            "commands": Out(32),
            "checksum": Out(32),
            "counters": Out(counters_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.channel = channel = self._channel
        wiring.connect(m, wiring.flipped(self.counters), channel.counters)
        pending, started = Signal(), Signal()
        with m.If(self.start):
            m.d.sync += [pending.eq(1), started.eq(0), self.done.eq(0), self.commands.eq(0)]
        with m.Elif(channel.gemv.valid & channel.gemv.ready):
            m.d.sync += pending.eq(0)
        m.d.comb += channel.gemv.valid.eq(pending)
        for name, _ in channel.gemv.payload.shape():
            m.d.comb += getattr(channel.gemv.payload, name).eq(getattr(self, name))
        counter = Signal(16)
        m.d.sync += counter.eq(counter + 1)
        m.d.comb += [channel.x.valid.eq(1), channel.x.payload.eq(counter * 37),
                     channel.cmd.valid.eq(0), channel.status.ready.eq(1)]
        status = channel.status.payload
        with m.If(channel.status.valid & status.sequencer):
            m.d.sync += [self.last_cycle.eq(status.cycle), self.commands.eq(self.commands + 1),
                         self.checksum.eq(self.checksum ^ status.read_data[:32])]
            with m.If(self.commands == 0):
                m.d.sync += self.first_cycle.eq(status.cycle)
        with m.If(channel.gemv_busy):
            m.d.sync += started.eq(1)
        with m.If(started & ~channel.gemv_busy & ~channel.status.valid & ~pending):
            m.d.sync += self.done.eq(1)
        return m
