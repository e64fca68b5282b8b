"""What the benchmarks share: run a self-driving top's cocotb module once per Verilog."""
from __future__ import annotations

import json
from dataclasses import asdict

from amaranth.lib import wiring

from gateware.generate import generate_component
from gateware.jobs import cache_key, cached
from hdl.common.config import BlockConfig
from sim.runner import BuildOptions, design_dir, run_testbench

__all__ = ["BENCH_BUILD", "simulate_top"]

#: The benchmark tops are built for speed: only their ports visible to cocotb, Verilator's
#: extra optimizations, X resolved the cheap way (Amaranth's Verilog initializes every
#: register), no assertions, and the per-cycle C++ at -O3. The regression keeps its own build.
BENCH_BUILD = BuildOptions(
    args=("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert"),
    ports_only=True, opt_fast="-O3")
#: Bumped when the way a record's ``sim_seconds`` is measured changes, so that cached records
#: measured the old way are not reported beside new ones.
SPEED_MEASURE = 3


def simulate_top(top: wiring.Component, config: BlockConfig, test_module: str,
                 jobs: list[list[int]]) -> list[dict]:
    """The per-job records of ``test_module`` run on ``top`` (Verilator) with
    ``TG_BENCH_JOBS = jobs``. Cycle counts are a pure function of the Verilog and the jobs,
    so a result is cached under that key (and the build and speed measure, whose figure the
    record also holds) and reruns cost nothing."""
    folder = design_dir(config) / "bench"
    design = generate_component(top, config, folder)

    def measure() -> dict:
        result = run_testbench(design, "verilator", test_module, run_dir=folder / "run",
                               seed=1, env={"TG_BENCH_JOBS": json.dumps(jobs)},
                               build=BENCH_BUILD)
        if not result.passed:
            raise RuntimeError(f"benchmark simulation failed: {result.messages} ({result.log})")
        return {"jobs": result.records["throughput"]["jobs"]}

    key = cache_key(kind="bench-sim", verilog=design.digest, jobs=jobs,
                    build=asdict(BENCH_BUILD), speed_measure=SPEED_MEASURE)
    return cached(key, measure)["jobs"]
