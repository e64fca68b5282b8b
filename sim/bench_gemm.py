"""cocotb module run by the GEMM benchmarks (dense and N:M sparse) on
:class:`~gateware.bench_harness.GemmBenchHarness`.

``TG_BENCH_JOBS`` lists ``[m, k, n]`` sizes, or ``[m, k, n, dense]`` for a sparse array; each
job runs from reset and writes its counters.
"""
from __future__ import annotations

import json
import os

import cocotb

from hdl.common.counters import CountersSignature

from .bench_top import run_job, start_clock
from .streams import read_counters


@cocotb.test()
async def throughput(dut):
    """Every listed GEMM, inputs always valid and the output always ready."""
    start_clock(dut)
    records = []
    for m, k, n, *mode in json.loads(os.environ["TG_BENCH_JOBS"]):
        seconds = await run_job(dut, {"m": m, "k": k, "n": n, "dense": mode[0] if mode else 0},
                                4 * m * k * n + 10_000, f"{m}x{k}x{n}")
        counters = read_counters(dut, CountersSignature.NAMES)
        assert counters["cycles"] > 0, counters
        records.append({"m": m, "k": k, "n": n, "dense": mode[0] if mode else 0,
                        "sim_seconds": seconds,
                        "checksum": int(dut.checksum.value), **counters})
        dut._log.info("%dx%dx%d: %s", m, k, n, counters)
    with open(os.path.join(os.environ["TG_RESULTS"], "throughput.json"), "w") as file:
        json.dump({"test": "throughput", "jobs": records}, file, indent=2)
