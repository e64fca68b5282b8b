"""cocotb module run by the attention benchmark on
:class:`~gateware.bench_harness.AttentionBenchHarness`.

``TG_BENCH_JOBS`` lists ``[n, d, causal]`` (Nq = Nkv = n, one head, scale 1/sqrt(d)); each job
runs from reset and writes its counters.
"""
from __future__ import annotations

import json
import math
import os

import cocotb

from hdl.attention.interface import ATTENTION_COUNTERS
from hdl.attention.layout import scale_to_fixed
from hdl.common.counters import CountersSignature

from .bench_top import run_job, start_clock
from .streams import read_counters


@cocotb.test()
async def throughput(dut):
    """Every listed job, inputs always valid and the output always ready."""
    start_clock(dut)
    records = []
    names = (*CountersSignature.NAMES, *ATTENTION_COUNTERS)
    for n, d, causal in json.loads(os.environ["TG_BENCH_JOBS"]):
        ports = {"nq": n, "nkv": n, "head_dim": d, "heads": 1, "kv_heads": 1, "causal": causal,
                 "scale": scale_to_fixed(1 / math.sqrt(d))}
        seconds = await run_job(dut, ports, 4 * n * n * d + 10_000, f"n={n} d={d}")
        counters = read_counters(dut, names)
        assert counters["cycles"] > 0, counters
        records.append({"n": n, "d": d, "causal": causal, "sim_seconds": seconds,
                        "checksum": int(dut.checksum.value), **counters})
        dut._log.info("n=%d d=%d causal=%d: %s", n, d, causal, counters)
    with open(os.path.join(os.environ["TG_RESULTS"], "throughput.json"), "w") as file:
        json.dump({"test": "throughput", "jobs": records}, file, indent=2)
