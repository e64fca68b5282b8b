"""cocotb module run by the attention benchmark on
:class:`~gateware.bench_harness.AttentionBenchHarness`.

``TG_BENCH_JOBS`` lists ``[n, d, causal]`` (Nq = Nkv = n, one head, scale 1/sqrt(d)); each job
runs from reset and writes its counters.
"""
from __future__ import annotations

import json
import math
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hdl.attention.interface import ATTENTION_COUNTERS
from hdl.attention.layout import scale_to_fixed
from hdl.common.counters import CountersSignature

from .streams import read_counters


@cocotb.test()
async def throughput(dut):
    """Every listed job, inputs always valid and the output always ready."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    records = []
    names = (*CountersSignature.NAMES, *ATTENTION_COUNTERS)
    for n, d, causal in json.loads(os.environ["TG_BENCH_JOBS"]):
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        dut.start.value = 0
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        for name, value in (("nq", n), ("nkv", n), ("head_dim", d), ("heads", 1),
                            ("kv_heads", 1), ("causal", causal),
                            ("scale", scale_to_fixed(1 / math.sqrt(d)))):
            getattr(dut, name).value = value
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        began = time.perf_counter()
        limit = 4 * n * n * d + 10_000
        waited = 0
        while not dut.done.value:
            await ClockCycles(dut.clk, 1024)
            waited += 1024
            assert waited < limit, f"n={n} d={d}: no result after {waited} cycles"
        seconds = time.perf_counter() - began
        counters = read_counters(dut, names)
        assert counters["cycles"] > 0, counters
        records.append({"n": n, "d": d, "causal": causal, "sim_seconds": seconds,
                        "checksum": int(dut.checksum.value), **counters})
        dut._log.info("n=%d d=%d causal=%d: %s", n, d, causal, counters)
    with open(os.path.join(os.environ["TG_RESULTS"], "throughput.json"), "w") as file:
        json.dump({"test": "throughput", "jobs": records}, file, indent=2)
