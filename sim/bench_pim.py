"""cocotb module run by the PIM benchmark on :class:`~gateware.bench_harness.PimBenchHarness`.

``TG_BENCH_JOBS`` lists ``{"name", "ports", "limit"}``: the GEMV descriptor's fields (from
``hdl.pim.sequencer.gemv_descriptor``) and a clock limit; each job runs from reset and records
the DRAM cycles of its first and last command, the command count and the counters.
"""
from __future__ import annotations

import json
import os

import cocotb

from hdl.common.counters import CountersSignature
from hdl.pim.interface import PIM_COUNTERS

from .bench_top import run_job, start_clock
from .streams import read_counters


@cocotb.test()
async def throughput(dut):
    """Every listed GEMV, the status stream always ready."""
    start_clock(dut)
    records = []
    names = (*CountersSignature.NAMES, *PIM_COUNTERS)
    for job in json.loads(os.environ["TG_BENCH_JOBS"]):
        seconds = await run_job(dut, job["ports"], job["limit"], job["name"])
        counters = read_counters(dut, names)
        record = {"name": job["name"], "sim_seconds": seconds,
                  "first_cycle": int(dut.first_cycle.value),
                  "last_cycle": int(dut.last_cycle.value),
                  "commands": int(dut.commands.value), **counters}
        assert record["commands"] > 0, record
        records.append(record)
        dut._log.info("%s: %s", job["name"], record)
    with open(os.path.join(os.environ["TG_RESULTS"], "throughput.json"), "w") as file:
        json.dump({"test": "throughput", "jobs": records}, file, indent=2)
