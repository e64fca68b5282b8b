"""Unit tests of ``WeightStationaryGemm`` in ``amaranth.sim``: exact results against NumPy.

Each simulation runs several jobs back to back through the host protocol of
:mod:`hdl.systolic.layout`, with seeded random gaps on the inputs and back-pressure on the
output; the seed is printed so that a failure can be replayed.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, ResetInserter, Signal
from amaranth.sim import Simulator

from hdl.common.counters import CountersSignature
from hdl.systolic.config import SystolicGemmConfig
from hdl.systolic.layout import assemble_result, operand_beats
from hdl.systolic.weight_stationary import LUTRAM_CHUNK, WeightStationaryGemm
from sim.amaranth_streams import stream_get, stream_put

CLOCK_PERIOD = 1e-6
WATCHDOG_CYCLES = 50_000


@dataclass
class Job:
    """One descriptor and its operands; ``a``/``b`` are None for a zero-sized descriptor."""

    m: int
    k: int
    n: int
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    #: Reset the array after this many ``a`` beats of this job (its results are dropped).
    abort_after: int | None = None
    a_beats: np.ndarray | None = field(init=False, default=None)
    b_beats: np.ndarray | None = field(init=False, default=None)

    @property
    def valid(self) -> bool:
        return self.m > 0 and self.k > 0 and self.n > 0


def make_job(config: SystolicGemmConfig, rng: np.random.Generator, m: int, k: int, n: int,
             *, extreme: bool = False, abort_after: int | None = None) -> Job:
    job = Job(m, k, n, abort_after=abort_after)
    if job.valid:
        lo, hi = -(1 << (config.width - 1)), 1 << (config.width - 1)
        if extreme:
            job.a = np.full((m, k), lo, dtype=np.int64)
            job.b = np.full((k, n), lo, dtype=np.int64)
        else:
            job.a = rng.integers(lo, hi, (m, k))
            job.b = rng.integers(lo, hi, (k, n))
        job.a_beats, job.b_beats = operand_beats(config, job.a, job.b)
    return job


def weight_beats_before(config: SystolicGemmConfig, job: Job, a_beats: int) -> int:
    """How many ``b`` beats the array takes while ``a_beats`` of ``job`` enter: the weights
    of every pass started, and of the one after (loaded ahead)."""
    passes_started, first_beat = 0, 0
    for _ in range(-(-job.n // config.cols)):
        for chunk_base in range(0, job.m, config.chunk):
            for _ in range(-(-job.k // config.rows)):
                if first_beat < a_beats:
                    passes_started += 1
                first_beat += min(config.chunk, job.m - chunk_base)
    return min(passes_started + 1, len(job.b_beats) // config.rows) * config.rows


class _WithReset(Elaboratable):
    """The array under a synchronous reset that the testbench drives."""

    def __init__(self, dut: WeightStationaryGemm):
        self.dut = dut
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = ResetInserter(self.rst)(self.dut)
        return m


def run_jobs(config: SystolicGemmConfig, jobs: list[Job], *, seed: int, in_gap: float,
             out_gap: float, watchdog_cycles: int = WATCHDOG_CYCLES) -> dict[str, int]:
    """Send ``jobs``, check every result against ``a @ b``; return the final counters."""
    print(f"seed={seed}")
    dut = WeightStationaryGemm(config)
    top = _WithReset(dut)
    rng = random.Random(seed)
    # Stage of each aborted job: the feeders stop after its partial beats and wait for reset.
    fed = {"a": set(), "b": set(), "desc": set()}
    reset_done: set[int] = set()
    counters: dict[str, int] = {}

    async def wait_reset(ctx, index):
        while index not in reset_done:
            await ctx.tick()

    async def desc_driver(ctx):
        for index, job in enumerate(jobs):
            await stream_put(ctx, dut.desc, {"m": job.m, "k": job.k, "n": job.n},
                             rng=rng, gap=in_gap)
            if job.abort_after is not None:
                fed["desc"].add(index)
                await wait_reset(ctx, index)

    def operand_driver(port, name):
        async def drive(ctx):
            for index, job in enumerate(jobs):
                if not job.valid:
                    continue
                beats = job.a_beats if name == "a" else job.b_beats
                if job.abort_after is not None:
                    beats = beats[:job.abort_after if name == "a"
                                  else weight_beats_before(config, job, job.abort_after)]
                for beat in beats:
                    await stream_put(ctx, port, [int(v) for v in beat], rng=rng, gap=in_gap)
                if job.abort_after is not None:
                    fed[name].add(index)
                    await wait_reset(ctx, index)
        return drive

    async def monitor(ctx):
        for index, job in enumerate(jobs):
            if job.abort_after is not None:
                while not all(index in done for done in fed.values()):
                    ctx.set(dut.c.ready, rng.random() >= out_gap)
                    await ctx.tick()
                ctx.set(top.rst, 1)
                await ctx.tick()
                ctx.set(top.rst, 0)
                ctx.set(dut.c.ready, 0)
                reset_done.add(index)
                continue
            if not job.valid:
                continue
            transfers = -(-job.n // config.cols) * job.m
            rows = []
            for count in range(transfers):
                payload = await stream_get(ctx, dut.c, rng=rng, gap=out_gap)
                assert payload.last == (count == transfers - 1), (
                    f"job {index}: last={payload.last} on transfer {count} of {transfers}")
                rows.append((payload.row, payload.col,
                             [int(payload.data[j]) for j in range(config.cols)]))
            result = assemble_result(config, job.m, job.n, rows)
            np.testing.assert_array_equal(result, job.a @ job.b, err_msg=f"job {index}")
        for _ in range(4):     # nothing more comes out, and the counters settle
            ctx.set(dut.c.ready, 1)
            await ctx.tick()
            assert not ctx.get(dut.c.valid), "a transfer the jobs did not ask for"
        for name in (*CountersSignature.NAMES, "desc_error"):
            counters[name] = ctx.get(getattr(dut.counters, name))

    async def watchdog(ctx):
        for _ in range(watchdog_cycles):
            await ctx.tick()
        raise AssertionError(f"timed out after {watchdog_cycles} cycles")

    sim = Simulator(top)
    sim.add_clock(CLOCK_PERIOD)
    for process in (desc_driver, operand_driver(dut.a, "a"), operand_driver(dut.b, "b"),
                    watchdog):
        sim.add_testbench(process, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return counters


def ws_config(rows: int, cols: int, chunk: int) -> SystolicGemmConfig:
    return SystolicGemmConfig(rows=rows, cols=cols, chunk=chunk, dataflow="weight_stationary")


# (rows, cols, chunk), then jobs (m, k, n) covering: sizes not multiples of the array, K < rows,
# M < chunk and M > chunk, a final chunk shorter than the array, single elements, one-row chunks.
ARRAYS = [
    ((1, 1, 2), [(3, 4, 2), (1, 1, 1), (5, 1, 3)]),
    ((2, 3, 5), [(7, 5, 4), (3, 1, 7), (11, 6, 3), (1, 2, 1)]),
    ((4, 4, 8), [(19, 7, 5), (5, 3, 7), (2, 9, 1), (8, 8, 8), (17, 12, 9)]),
    ((3, 2, 6), [(13, 2, 5), (6, 10, 2), (4, 4, 4)]),
    ((2, 2, 1), [(3, 3, 3), (1, 1, 1), (2, 5, 2)]),   # one-row chunks: every pass ends one
]
GAPS = [(0.3, 0.3), (0.0, 0.7), (0.6, 0.0)]


@pytest.mark.parametrize("gaps", GAPS, ids=lambda g: f"in{g[0]}-out{g[1]}")
@pytest.mark.parametrize("array,shapes", ARRAYS,
                         ids=["{}x{}-chunk{}".format(*array) for array, _ in ARRAYS])
def test_random_jobs(array, shapes, gaps):
    config = ws_config(*array)
    seed = zlib.crc32(repr((array, gaps)).encode()) & 0xFFFF
    rng = np.random.default_rng(seed)
    jobs = [make_job(config, rng, *shape) for shape in shapes]
    counters = run_jobs(config, jobs, seed=seed, in_gap=gaps[0], out_gap=gaps[1])
    beats = sum(len(job.a_beats) for job in jobs)
    assert counters["busy_cycles"] == beats
    assert counters["desc_error"] == 0
    assert counters["stall_in_cycles"] <= counters["stall_cycles"]
    assert counters["stall_out_cycles"] <= counters["stall_cycles"]
    assert counters["busy_cycles"] + counters["stall_cycles"] <= counters["cycles"]


@pytest.mark.parametrize("array", [(1, 1, 2), (4, 4, 8)], ids=lambda v: "x".join(map(str, v)))
def test_extreme_values(array):
    """All operands at the most negative value: the largest sums, exact."""
    config = ws_config(*array)
    rng = np.random.default_rng(7)
    jobs = [make_job(config, rng, 9, 37, 5, extreme=True),
            make_job(config, rng, 3, 2, 6, extreme=True)]
    run_jobs(config, jobs, seed=11, in_gap=0.2, out_gap=0.2)


def test_zero_sized_descriptor():
    """A zero-sized descriptor is consumed, flags ``desc_error`` and produces nothing."""
    config = ws_config(2, 3, 5)
    rng = np.random.default_rng(3)
    jobs = [make_job(config, rng, 4, 3, 5), make_job(config, rng, 0, 3, 4),
            make_job(config, rng, 2, 0, 1), make_job(config, rng, 6, 5, 2)]
    counters = run_jobs(config, jobs, seed=5, in_gap=0.3, out_gap=0.3)
    assert counters["desc_error"] == 1


@pytest.mark.parametrize("abort_after", [0, 3, 10, 29])
def test_reset_mid_job(abort_after):
    """A reset in the middle of a job leaves the array ready for a clean one."""
    config = ws_config(4, 4, 8)
    rng = np.random.default_rng(abort_after)
    jobs = [make_job(config, rng, 6, 5, 3),
            make_job(config, rng, 10, 9, 6, abort_after=abort_after),
            make_job(config, rng, 11, 6, 7), make_job(config, rng, 3, 2, 2)]
    counters = run_jobs(config, jobs, seed=abort_after, in_gap=0.3, out_gap=0.3)
    assert counters["busy_cycles"] == sum(len(job.a_beats) for job in jobs[2:])


def test_always_ready_throughput():
    """With inputs always valid and the output always ready, only the first weight load
    and the final drain cost cycles: no idle between passes, chunks or jobs."""
    rows, cols = 4, 4
    config = ws_config(rows, cols, 16)
    rng = np.random.default_rng(1)
    # Every chunk has at least `rows` rows, so each weight load hides behind a pass.
    jobs = [make_job(config, rng, 36, 21, 10), make_job(config, rng, 20, 7, 5),
            make_job(config, rng, 4, 4, 4)]
    counters = run_jobs(config, jobs, seed=0, in_gap=0.0, out_gap=0.0)
    beats = sum(len(job.a_beats) for job in jobs)
    assert counters["busy_cycles"] == beats
    assert counters["stall_in_cycles"] == 0
    assert counters["stall_out_cycles"] == 0
    assert counters["stall_cycles"] == rows - 1          # the first tile's weights
    # Injection, the PEs' adder tree (3 levels at width 8), array, deskew, output register,
    # queue.
    drain = rows + cols + 6
    assert counters["cycles"] == beats + rows - 1 + drain


def test_beat_counts():
    """The host protocol's beat counts match the documented formulas."""
    config = ws_config(4, 3, 8)
    a = np.ones((19, 10), dtype=np.int64)
    b = np.ones((10, 7), dtype=np.int64)
    a_beats, b_beats = operand_beats(config, a, b)
    tiles_n, tiles_k, chunks = 3, 3, 3
    assert a_beats.shape == (tiles_n * tiles_k * 19, 4)
    assert b_beats.shape == (tiles_n * chunks * tiles_k * 4, 3)


def test_block_ram_accumulator():
    """A chunk too deep for LUT RAM keeps the block-RAM accumulator (transparent read):
    exact too, with one-row chunks that read back a slot written the step before."""
    config = ws_config(2, 2, LUTRAM_CHUNK + 1)
    rng = np.random.default_rng(17)
    jobs = [make_job(config, rng, LUTRAM_CHUNK + 2, 5, 3), make_job(config, rng, 1, 6, 2)]
    counters = run_jobs(config, jobs, seed=23, in_gap=0.3, out_gap=0.3)
    assert counters["busy_cycles"] == sum(len(job.a_beats) for job in jobs)


def test_largest_m():
    """M at the descriptor's maximum (2**DIM_BITS − 1): 1024 chunks, the last one short, and
    the chunk bookkeeping (m_left, the next chunk's last row) at full width."""
    config = ws_config(2, 1, 64)
    rng = np.random.default_rng(65535)
    job = make_job(config, rng, 65535, 1, 1)
    counters = run_jobs(config, [job], seed=65535, in_gap=0.0, out_gap=0.0,
                        watchdog_cycles=200_000)
    assert counters["busy_cycles"] == len(job.a_beats)
