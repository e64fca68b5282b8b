"""cocotb testbench of ``systolic_gemm`` (both dataflows); the environment it reads is
described in :mod:`sim.testbench`."""
from __future__ import annotations

import os

import cocotb
import numpy as np
import torch

from golden.gemm import gemm_int_exact
from hdl.systolic.config import SystolicGemmConfig
from hdl.systolic.interface import gemm_signature
from hdl.systolic.layout import operand_beats

from .gemm_harness import GemmHarness, start_gemm_harness
from .testbench import jobs as job_count
from .testbench import load_config, random_ints, seed, write_results


def submit(harness: GemmHarness, a: np.ndarray, b: np.ndarray, name: str) -> None:
    """Queue C = A·B and its golden result."""
    a_beats, b_beats = operand_beats(harness.config, a, b)
    golden = gemm_int_exact(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    harness.submit({"m": a.shape[0], "k": a.shape[1], "n": b.shape[1]},
                   [beat.tolist() for beat in a_beats], [beat.tolist() for beat in b_beats],
                   golden, name)


async def _start(dut, gap: float | None = None) -> GemmHarness:
    config = load_config(SystolicGemmConfig)
    return await start_gemm_harness(dut, config, gemm_signature(config), gap)


@cocotb.test()
async def random_jobs(dut):
    """Random shapes (not multiples of the array), extremes, random gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    lo = -(1 << (cfg.width - 1))
    hi = (1 << (cfg.width - 1)) - 1
    R, C = cfg.rows, cfg.cols
    jobs = job_count(6)
    for index in range(jobs):
        m, k, n = (int(rng.integers(1, 2 * d + 3)) for d in (R, max(R, 4), C))
        submit(harness, random_ints(rng, (m, k), cfg.width),
                       random_ints(rng, (k, n), cfg.width), f"random#{index}")
    # Extremes: a long run of min·min products, the largest-magnitude sums, and max·min.
    k_long = 3 * R + 40
    submit(harness, np.full((R + 1, k_long), lo), np.full((k_long, C + 1), lo), "min*min")
    submit(harness, np.full((1, k_long), hi), np.full((k_long, 2), lo), "max*min")
    submit(harness, np.zeros((2, 3), dtype=np.int64), random_ints(rng, (3, C), cfg.width),
                   "zeros")
    await harness.run()
    harness.scoreboard.finish()
    write_results({"test": "random_jobs", "jobs": harness.scoreboard.checked,
                    "seed": seed(), **harness.counters()})


@cocotb.test()
async def counters_exact_when_unimpeded(dut):
    """With inputs always valid and the output always ready, nothing stalls: busy cycles
    equal the activation beats, stall cycles are zero (bar the weight-stationary preload),
    and fill plus drain stay bounded."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 1)
    m, k, n = 2 * cfg.rows + 1, 2 * cfg.rows + 3, 2 * cfg.cols + 1
    submit(harness, random_ints(rng, (m, k), cfg.width),
                   random_ints(rng, (k, n), cfg.width), "unimpeded")
    beats = len(harness.a.queue)
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    write_results({"test": "counters_exact_when_unimpeded", "m": m, "k": k, "n": n,
                    "beats": beats, **counters})
    dut._log.info("counters %s for %d activation beats", counters, beats)
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_in_cycles"] == counters["stall_out_cycles"] == 0, counters
    # Weight-stationary: the first tile's weights take R − 1 steps before any activation.
    preload = cfg.rows - 1 if cfg.dataflow == "weight_stationary" else 0
    assert counters["stall_cycles"] == preload, counters
    fill_and_drain = counters["cycles"] - counters["busy_cycles"]
    bound = 3 * (cfg.rows + cfg.cols) + 12
    assert 0 < fill_and_drain <= bound, f"{fill_and_drain} cycles beyond the beats > {bound}"


@cocotb.test()
async def reset_mid_job(dut):
    """A reset in the middle of a job, then a clean job that must be exact."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 2)
    k = 4 * cfg.rows + 5
    a = random_ints(rng, (3 * cfg.rows, k), cfg.width)
    b = random_ints(rng, (k, 2 * cfg.cols + 1), cfg.width)
    submit(harness, a, b, "interrupted")
    beats = len(harness.a.queue)
    await harness.bench.run_until(lambda: harness.a.sent >= beats // 2, timeout=100_000)
    await harness.reset()
    submit(harness, b.T.copy(), a.T.copy(), "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim --inputs`: the user's a and b through the RTL, results to an npz."""
    path = os.environ["TG_INPUTS"]   # the runner selects this test only with inputs
    harness = await _start(dut, gap=0.0)
    with np.load(path) as inputs:
        a, b = inputs["a"].astype(np.int64), inputs["b"].astype(np.int64)
    submit(harness, a, b, "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], c=harness.results[0], c_golden=harness.goldens[0],
             **{name: np.int64(value) for name, value in counters.items()})
    write_results({"test": "user_inputs", "m": a.shape[0], "k": a.shape[1], "n": b.shape[1],
                    **counters})
