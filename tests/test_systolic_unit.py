"""Fast amaranth.sim tests of the output-stationary array: several jobs back to back, random
gaps on every input, random back-pressure on the output, results checked exactly."""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.systolic import make_systolic_gemm
from hdl.systolic.config import SystolicGemmConfig
from hdl.systolic.layout import assemble_result, operand_beats
from sim.amaranth_streams import stream_get, stream_put


def run_jobs(config, jobs, seed, gap=0.3, out_gap=None, counters=None):
    """Results of ``jobs``; ``gap`` on the inputs, ``out_gap`` (default ``gap``) on ``c``.
    ``counters``, a dict, receives the counters after the last result."""
    dut = make_systolic_gemm(config)
    rng = random.Random(seed)
    out_gap = gap if out_gap is None else out_gap
    print(f"seed {seed}")
    results = []

    async def put_descriptors(ctx):
        for a, b in jobs:
            await stream_put(ctx, dut.desc, {"m": a.shape[0], "k": a.shape[1], "n": b.shape[1]},
                             rng=rng, gap=gap)

    def feeder(port, index):
        async def feed(ctx):
            for a, b in jobs:
                for beat in operand_beats(config, a, b)[index]:
                    await stream_put(ctx, port, beat.tolist(), rng=rng, gap=gap)
        return feed

    async def collect(ctx):
        for a, b in jobs:
            rows = []
            while True:
                item = await stream_get(ctx, dut.c, rng=rng, gap=out_gap)
                rows.append((item.row, item.col, [int(x) for x in item.data]))
                if item.last:
                    break
            results.append(assemble_result(config, a.shape[0], b.shape[1], rows))
        if counters is not None:
            await ctx.tick()
            counters.update({name: ctx.get(getattr(dut.counters, name))
                             for name in dut.counters.signature.names})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(put_descriptors, background=True)
    sim.add_testbench(feeder(dut.a, 0), background=True)
    sim.add_testbench(feeder(dut.b, 1), background=True)
    sim.add_testbench(collect)
    sim.run()
    return results


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (3, 2), (4, 4)])
def test_output_stationary_jobs_exact(rows, cols):
    config = SystolicGemmConfig(rows=rows, cols=cols)
    rng = np.random.default_rng(rows * 10 + cols)
    shapes = [(5, 3, 7), (2, 9, 1), (1, 1, 1), (rows + 1, 1, cols * 2), (8, 8, 8)]
    jobs = [(rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))
            for m, k, n in shapes]
    jobs.append((np.full((3, 40), -128), np.full((40, 3), -128)))
    for (a, b), got in zip(jobs, run_jobs(config, jobs, seed=rows * 100 + cols), strict=True):
        np.testing.assert_array_equal(got, a @ b)


@pytest.mark.parametrize("rows, cols", [(2, 3), (4, 4)])
def test_output_stationary_slow_consumer(rows, cols):
    """A consumer that takes a row only now and then: the output queue fills, the array
    freezes on its registered step flag (decided a cycle ahead), and no row is lost."""
    config = SystolicGemmConfig(rows=rows, cols=cols)
    rng = np.random.default_rng(rows * 7 + cols)
    jobs = [(rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))
            for m, k, n in [(9, 2, 7), (3 * rows, 5, 2 * cols + 1), (1, 1, 1)]]
    counters = {}
    got = run_jobs(config, jobs, seed=rows * 1000 + cols, gap=0.0, out_gap=0.85,
                   counters=counters)
    for (a, b), result in zip(jobs, got, strict=True):
        np.testing.assert_array_equal(result, a @ b)
    assert counters["stall_out_cycles"] > 0, counters     # the queue did fill
    # A stall cycle is an input stall, an output stall or a drain wait (each counted once).
    assert counters["stall_cycles"] >= max(counters["stall_in_cycles"],
                                           counters["stall_out_cycles"]), counters


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 2), (4, 4)])
def test_output_stationary_unimpeded_counts(rows, cols):
    """Inputs always valid, output always ready, every fold at least R beats long: one beat
    per cycle, nothing stalls, and only the fill and drain come on top of the beats."""
    config = SystolicGemmConfig(rows=rows, cols=cols)
    rng = np.random.default_rng(rows + cols)
    m, k, n = 2 * rows + 1, max(rows, 3) + 2, 2 * cols + 1
    jobs = [(rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))]
    counters = {}
    got = run_jobs(config, jobs, seed=rows + cols, gap=0.0, counters=counters)
    np.testing.assert_array_equal(got[0], jobs[0][0] @ jobs[0][1])
    beats = -(-m // rows) * -(-n // cols) * k
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_cycles"] == counters["stall_in_cycles"] == 0, counters
    assert counters["stall_out_cycles"] == 0, counters
    # Fill and drain: skew (R + C), product and accumulate (2), column drain (R), deskew
    # (C − 1), output register and queue (2), plus the descriptor's cycle.
    assert counters["cycles"] - beats <= 2 * (rows + cols) + 6, counters


@pytest.mark.parametrize("rows, cols, k", [(4, 2, 1), (4, 2, 3), (3, 3, 2)])
def test_output_stationary_short_k_drain_waits(rows, cols, k):
    """Folds shorter than R, unimpeded: a fold's final beat waits until R steps after the
    previous one (the column drain), and nothing else stalls, so the stall count is exactly
    (folds − 1) · (R − K) and every beat still enters."""
    config = SystolicGemmConfig(rows=rows, cols=cols)
    rng = np.random.default_rng(rows * 100 + k)
    m, n = 2 * rows + 1, 2 * cols
    jobs = [(rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))]
    counters = {}
    got = run_jobs(config, jobs, seed=rows + k, gap=0.0, counters=counters)
    np.testing.assert_array_equal(got[0], jobs[0][0] @ jobs[0][1])
    folds = -(-m // rows) * -(-n // cols)
    assert counters["busy_cycles"] == folds * k, counters
    assert counters["stall_in_cycles"] == counters["stall_out_cycles"] == 0, counters
    assert counters["stall_cycles"] == (folds - 1) * (rows - k), counters


def test_output_stationary_largest_k():
    """K at the descriptor's maximum (2**DIM_BITS − 1): the fold's beat down-counter and
    last-beat flags at full width, exact against A·B."""
    config = SystolicGemmConfig(rows=1, cols=2)
    rng = np.random.default_rng(65535)
    a, b = rng.integers(-128, 128, (1, 65535)), rng.integers(-128, 128, (65535, 2))
    got = run_jobs(config, [(a, b)], seed=65535, gap=0.0)
    np.testing.assert_array_equal(got[0], a @ b)
