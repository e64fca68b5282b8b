"""What the benchmarks share: run a self-driving top's cocotb module once per Verilog."""
from __future__ import annotations

import json

from amaranth.lib import wiring

from gateware.generate import generate_component
from hdl.common.config import BlockConfig
from sim.runner import design_dir, run_testbench
from gateware.jobs import cache_key, cached

__all__ = ["simulate_top"]


def simulate_top(top: wiring.Component, config: BlockConfig, test_module: str,
                 jobs: list[list[int]]) -> list[dict]:
    """The per-job records of ``test_module`` run on ``top`` (Verilator) with
    ``TG_BENCH_JOBS = jobs``. Cycle counts are a pure function of the Verilog and the jobs,
    so a result is cached under that key and reruns cost nothing."""
    folder = design_dir(config) / "bench"
    design = generate_component(top, config, folder)

    def measure() -> dict:
        result = run_testbench(design, "verilator", test_module, run_dir=folder / "run",
                               seed=1, env={"TG_BENCH_JOBS": json.dumps(jobs)})
        if not result.passed:
            raise RuntimeError(f"benchmark simulation failed: {result.messages} ({result.log})")
        return {"jobs": result.records["throughput"]["jobs"]}

    return cached(cache_key(kind="bench-sim", verilog=design.digest, jobs=jobs), measure)["jobs"]
