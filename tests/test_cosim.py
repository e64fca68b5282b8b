"""cocotb co-simulation of every registry design point on both simulators.

`make test` runs each block's `regression` points, and its `regression_verilator` points on
Verilator; `make test-full` adds `regression_full` and the Icarus runs of `regression_verilator`.
Icarus runs are skipped, with the reason shown, only where Icarus is not installed.
"""
import json

import numpy as np
import pytest

from gateware.bench_harness import GemmBenchHarness
from gateware.generate import generate_component
from gateware.registry import BLOCKS
from sim.runner import SIMULATORS, design_dir, run_testbench, simulate, simulator_missing
from tensorgates.cli import main


def _points(attribute, simulators=SIMULATORS):
    return [pytest.param(entry, settings, simulator,
                         id=f"{entry.name}-{'-'.join(f'{k}{v}' for k, v in settings.items())}"
                            f"-{simulator}")
            for entry in BLOCKS.values() for settings in getattr(entry, attribute)
            for simulator in simulators]


def _require(simulator):
    missing = simulator_missing(simulator)
    if missing:
        pytest.skip(f"{simulator} unavailable: {missing}")


def _check(result):
    print(f"seed {result.seed}; log {result.log}")
    assert result.passed, f"{result.failures}/{result.tests} failed: {result.messages}"


@pytest.mark.parametrize("entry, settings, simulator",
                         _points("regression") + _points("regression_verilator", ["verilator"]))
def test_regression(entry, settings, simulator):
    _require(simulator)
    _check(simulate(entry.config(settings), simulator))


@pytest.mark.full
@pytest.mark.parametrize("entry, settings, simulator",
                         _points("regression_full") + _points("regression_verilator", ["icarus"]))
def test_regression_full(entry, settings, simulator):
    _require(simulator)
    _check(simulate(entry.config(settings), simulator, env={"TG_JOBS": "12"}))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_sim_inputs_outputs_npz(tmp_path, simulator):
    """`tensorgates sim --inputs/--outputs`: c from the RTL, c_golden, equal, and counters."""
    _require(simulator)
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (13, 21)).astype(np.int8)
    b = rng.integers(-128, 128, (21, 9)).astype(np.int8)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    code = main(["sim", "systolic_gemm", "--set", "rows=4", "--set", "cols=4",
                 "--simulator", simulator, "--inputs", str(tmp_path / "in.npz"),
                 "--outputs", str(tmp_path / "out.npz")])
    assert code == 0
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["c"], a.astype(np.int64) @ b.astype(np.int64))
        np.testing.assert_array_equal(out["c"], out["c_golden"])
        assert int(out["busy_cycles"]) == 4 * 3 * 21     # folds × K, inputs always valid
        assert int(out["stall_cycles"]) == 0
        assert int(out["busy_cycles"]) < int(out["cycles"]) <= int(out["busy_cycles"]) + 40


def test_bench_harness_counts_like_the_testbench():
    """The self-driving benchmark top measures the same cycles as the cocotb-driven DUT."""
    _require("verilator")
    entry = BLOCKS["systolic_gemm"]
    config = entry.config({"rows": "3", "cols": "2"})
    driven = simulate(config, "verilator", seed=3, tests="counters_exact_when_unimpeded")
    _check(driven)
    record = driven.records["counters_exact_when_unimpeded"]
    folder = design_dir(config) / "bench"
    design = generate_component(GemmBenchHarness(config), config, folder)
    shape = [record["m"], record["k"], record["n"]]
    bench = run_testbench(design, "verilator", "sim.bench_gemm", run_dir=folder / "run",
                          seed=1, env={"TG_BENCH_JOBS": json.dumps([shape])})
    _check(bench)
    job = bench.records["throughput"]["jobs"][0]
    for name in ("cycles", "busy_cycles", "stall_cycles"):
        assert job[name] == record[name], (name, job, record)
