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


def run_jobs(config, jobs, seed, gap=0.3):
    dut = make_systolic_gemm(config)
    rng = random.Random(seed)
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
                item = await stream_get(ctx, dut.c, rng=rng, gap=gap)
                rows.append((item.row, item.col, [int(x) for x in item.data]))
                if item.last:
                    break
            results.append(assemble_result(config, a.shape[0], b.shape[1], rows))

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
