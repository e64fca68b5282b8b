"""One design point's own throughput figure, for sweeps: each block's registry entry names its
function here (``sweep_point``).

A function takes a config and ``quick`` (the small workload) and returns a record:

``figure`` / ``value``
    the block's own figure of merit (utilization, fraction of the bound, ...; 1.0 is ideal);
``op`` / ``ops_per_cycle``
    the work the block does per clock (MAC, or element for quantizers), from the RTL's own
    counters, so that sweeps can give work/s at Fmax and work/s per LUT;
``workload``, ``cycles``, ``sim_cycles_per_s``.
"""
from __future__ import annotations

from benchmarks.simulation import simulate_top
from hdl.common.config import BlockConfig
from sim.runner import simulate

__all__ = ["attention", "pim", "quantizer", "sparse_gemm", "sparse_mac", "systolic_gemm"]


def _record(figure: str, value: float, op: str, work: float, cycles: int, workload: str,
            sim_seconds: float | None = None) -> dict:
    return {"figure": figure, "value": value, "op": op, "ops_per_cycle": work / cycles,
            "workload": workload, "cycles": cycles,
            "sim_cycles_per_s": cycles / sim_seconds if sim_seconds else None}


def systolic_gemm(config: BlockConfig, quick: bool) -> dict:
    from gateware.bench_harness import GemmBenchHarness
    size = 64 if quick else 256
    job = simulate_top(GemmBenchHarness(config), config, "sim.bench_gemm",
                       [[size, size, size]])[0]
    macs = size ** 3
    return _record("utilization", macs / (config.rows * config.cols * job["cycles"]), "MAC",
                   macs, job["cycles"], f"{size}^3 GEMM", job["sim_seconds"])


def sparse_gemm(config: BlockConfig, quick: bool) -> dict:
    """Sparse mode; MACs counted dense-equivalent (as the dense GEMM would do them)."""
    from gateware.bench_harness import GemmBenchHarness
    size = 64 if quick else 256
    job = simulate_top(GemmBenchHarness(config), config, "sim.bench_gemm",
                       [[size, size, size, 0]])[0]
    macs = size ** 3
    ideal = config.rows * config.cols * config.m   # each PE consumes a group of M per cycle
    return _record("of_ideal", macs / job["cycles"] / ideal, "MAC", macs, job["cycles"],
                   f"{size}^3 GEMM, {config.n}:{config.m}", job["sim_seconds"])


def sparse_mac(config: BlockConfig, quick: bool) -> dict:
    record = _test_record(config, "counters_exact_when_unimpeded")
    busy = record["busy_cycles"]
    return _record("groups_per_busy_cycle", record["beats"] / busy, "MAC",
                   config.m * record["beats"], busy, f"{record['beats']} groups")


def quantizer(config: BlockConfig, quick: bool) -> dict:
    record = _test_record(config, "full_rate_when_unimpeded")
    return _record("of_lane_limit", record["elements_per_cycle"] / config.lanes, "element",
                   record["elements_per_cycle"], 1, f"{record['beats']} beats")


def attention(config: BlockConfig, quick: bool) -> dict:
    from gateware.bench_harness import AttentionBenchHarness
    n, d = (64 if quick else 256), config.max_head_dim
    job = simulate_top(AttentionBenchHarness(config), config, "sim.bench_attention",
                       [[n, d, 0]])[0]
    macs = job["useful_macs"]
    return _record("utilization", macs / (config.rows * config.cols * job["cycles"]), "MAC",
                   macs, job["cycles"], f"N={n}, d={d}", job["sim_seconds"])


def pim(config: BlockConfig, quick: bool) -> dict:
    """The largest square GEMV (up to 256², or 768² in full) that the banks and the x buffer
    hold, on the RTL sequencer; MACs per *clock* (a DRAM cycle takes several clocks in this
    RTL), and the figure is bytes of W per DRAM cycle against the internal bound."""
    from benchmarks.pim import _jobs
    from gateware.bench_harness import PimBenchHarness
    from golden.pim import plan_gemv
    from hdl.pim.sequencer import check_gemv_fits
    sizes = (256, 128, 64, 32, 16) if quick else (768, 512, 256, 128, 64, 32, 16)
    for size in sizes:
        try:
            check_gemv_fits(plan_gemv(size, size, 1, config))
            break
        except ValueError as error:
            reason = str(error)
    else:
        raise ValueError(f"no GEMV of {sizes[-1]}² or more fits: {reason}")
    job = simulate_top(PimBenchHarness(config), config, "sim.bench_pim",
                       _jobs(config, [(size, size, 1)]))[0]
    dram_cycles = job["last_cycle"] - job["first_cycle"] + 1
    macs = size * size
    return {**_record("of_bound", macs / dram_cycles / config.internal_bound, "MAC", macs,
                      job["cycles"], f"{size}x{size} GEMV", job["sim_seconds"]),
            "dram_cycles": dram_cycles}


def _test_record(config: BlockConfig, test: str) -> dict:
    """The record that one unimpeded-rate test of the block's testbench writes (Verilator)."""
    result = simulate(config, "verilator", seed=1, tests=test)
    if not result.passed:
        raise RuntimeError(f"{config.slug()}: {test} failed: {result.messages}")
    return result.records[test]
