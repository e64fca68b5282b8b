"""cocotb module run by the GEMM benchmarks (dense and N:M sparse) on
:class:`~gateware.bench_harness.GemmBenchHarness`.

``TG_BENCH_JOBS`` lists ``[m, k, n]`` sizes, or ``[m, k, n, dense]`` for a sparse array; each
job runs from reset and writes its counters.
"""
from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hdl.common.counters import CountersSignature

from .streams import read_counters


@cocotb.test()
async def throughput(dut):
    """Every listed GEMM, inputs always valid and the output always ready."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    records = []
    for m, k, n, *mode in json.loads(os.environ["TG_BENCH_JOBS"]):
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        dut.start.value = 0
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        dut.m.value, dut.k.value, dut.n.value = m, k, n
        dut.dense.value = mode[0] if mode else 0
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        began = time.perf_counter()
        limit = 4 * m * k * n + 10_000
        waited = 0
        while not dut.done.value:
            await ClockCycles(dut.clk, 512)
            waited += 512
            assert waited < limit, f"{m}x{k}x{n}: no result after {waited} cycles"
        seconds = time.perf_counter() - began
        counters = read_counters(dut, CountersSignature.NAMES)
        assert counters["cycles"] > 0, counters
        records.append({"m": m, "k": k, "n": n, "dense": mode[0] if mode else 0,
                        "sim_seconds": seconds,
                        "checksum": int(dut.checksum.value), **counters})
        dut._log.info("%dx%dx%d: %s", m, k, n, counters)
    with open(os.path.join(os.environ["TG_RESULTS"], "throughput.json"), "w") as file:
        json.dump({"test": "throughput", "jobs": records}, file, indent=2)
