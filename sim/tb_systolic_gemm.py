"""cocotb testbench of ``systolic_gemm`` (both dataflows).

Environment (set by :mod:`sim.runner`): ``TG_CONFIG`` (config JSON), ``TG_RESULTS`` (where to
write counters and job summaries), ``TG_INPUTS``/``TG_OUTPUTS`` (user tensors, ``sim --inputs``),
``TG_JOBS`` (random jobs), ``TG_GAP`` (probability of an idle cycle on every stream).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock

from golden.gemm import gemm_int_exact
from hdl.systolic.config import SystolicGemmConfig
from hdl.systolic.interface import (
    CountersSignature,
    descriptor_layout,
    gemm_signature,
    result_layout,
)
from hdl.systolic.layout import assemble_result, operand_beats

from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters


def _seed() -> int:
    """The run's seed: ``tensorgates sim --seed`` replays it."""
    return int(os.environ["TG_SEED"])


def _config() -> SystolicGemmConfig:
    settings = json.loads(os.environ["TG_CONFIG"])
    settings.pop("block", None)
    return SystolicGemmConfig(**settings)


class GemmHarness:
    """Drivers, monitor and scoreboard around one DUT."""

    def __init__(self, dut, config: SystolicGemmConfig, rng: random.Random, gap: float):
        self.dut, self.config = dut, config
        sig = gemm_signature(config)
        self.desc = StreamSource(dut, "desc", descriptor_layout, rng, gap)
        self.a = StreamSource(dut, "a", sig["a"].signature.members["payload"].shape, rng, gap)
        self.b = StreamSource(dut, "b", sig["b"].signature.members["payload"].shape, rng, gap)
        self.c = StreamSink(dut, "c", result_layout(config), rng, gap, on_item=self._on_row)
        self.bench = StreamBench(dut, [self.desc, self.a, self.b, self.c])
        self.scoreboard = Scoreboard(dut._log)
        self.jobs: list[tuple[int, int]] = []       # (M, N) of jobs whose results are due
        self.rows: list[tuple[int, int, list[int]]] = []
        self.results: list[np.ndarray] = []
        self.goldens: list[np.ndarray] = []

    def _on_row(self, item: dict) -> None:
        self.rows.append((item["row"], item["col"], item["data"]))
        if item["last"]:
            if not self.jobs:
                self.scoreboard.failures.append("`last` arrived with no job in flight")
                return
            m, n = self.jobs.pop(0)
            try:
                result = assemble_result(self.config, m, n, self.rows)
            except ValueError as error:
                self.scoreboard.failures.append(f"protocol: {error}")
                result = np.full((m, n), np.iinfo(np.int64).min)
            self.rows = []
            self.results.append(result)
            self.scoreboard.check(result)

    def submit(self, a: np.ndarray, b: np.ndarray, name: str) -> None:
        """Queue one job and its golden result."""
        self.desc.send({"m": a.shape[0], "k": a.shape[1], "n": b.shape[1]})
        a_beats, b_beats = operand_beats(self.config, a, b)
        for beat in a_beats:
            self.a.send(beat.tolist())
        for beat in b_beats:
            self.b.send(beat.tolist())
        self.jobs.append((a.shape[0], b.shape[1]))
        golden = gemm_int_exact(torch.from_numpy(a), torch.from_numpy(b)).numpy()
        self.goldens.append(golden)
        self.scoreboard.expect(f"job {name} {a.shape[0]}x{a.shape[1]}x{b.shape[1]}", golden)

    async def run(self, *, timeout: int = 2_000_000) -> int:
        return await self.bench.run_until(lambda: not self.jobs, timeout=timeout)

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, CountersSignature.NAMES)


async def _start(dut, gap: float | None = None) -> GemmHarness:
    config = _config()
    seed = _seed()
    dut._log.info("seed %d (replay with --seed %d); config %s", seed, seed, config)
    rng = random.Random(seed)
    harness = GemmHarness(dut, config, rng, float(os.environ.get("TG_GAP", "0.3"))
                          if gap is None else gap)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await harness.bench.reset()
    return harness


def _write_results(record: dict) -> None:
    """One JSON record per test in ``TG_RESULTS`` (a folder) for the runner to collect."""
    folder = os.environ.get("TG_RESULTS")
    if folder:
        with open(os.path.join(folder, f"{record['test']}.json"), "w") as file:
            json.dump(record, file, indent=2)


def _random_matrix(rng: np.random.Generator, shape, width: int) -> np.ndarray:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1))
    return rng.integers(lo, hi, size=shape, dtype=np.int64)


@cocotb.test()
async def random_jobs(dut):
    """Random shapes (not multiples of the array), extremes, random gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(_seed())
    lo = -(1 << (cfg.width - 1))
    hi = (1 << (cfg.width - 1)) - 1
    R, C = cfg.rows, cfg.cols
    jobs = int(os.environ.get("TG_JOBS", "6"))
    for index in range(jobs):
        m, k, n = (int(rng.integers(1, 2 * d + 3)) for d in (R, max(R, 4), C))
        harness.submit(_random_matrix(rng, (m, k), cfg.width),
                       _random_matrix(rng, (k, n), cfg.width), f"random#{index}")
    # Extremes: a long run of min·min products, the largest-magnitude sums, and max·min.
    k_long = 3 * R + 40
    harness.submit(np.full((R + 1, k_long), lo), np.full((k_long, C + 1), lo), "min*min")
    harness.submit(np.full((1, k_long), hi), np.full((k_long, 2), lo), "max*min")
    harness.submit(np.zeros((2, 3), dtype=np.int64), _random_matrix(rng, (3, C), cfg.width),
                   "zeros")
    await harness.run()
    harness.scoreboard.finish()
    _write_results({"test": "random_jobs", "jobs": harness.scoreboard.checked,
                    "seed": _seed(), **harness.counters()})


@cocotb.test()
async def counters_exact_when_unimpeded(dut):
    """With inputs always valid and the output always ready, nothing stalls: busy cycles
    equal the activation beats, stall cycles are zero (bar the weight-stationary preload),
    and fill plus drain stay bounded."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(_seed() + 1)
    m, k, n = 2 * cfg.rows + 1, 2 * cfg.rows + 3, 2 * cfg.cols + 1
    harness.submit(_random_matrix(rng, (m, k), cfg.width),
                   _random_matrix(rng, (k, n), cfg.width), "unimpeded")
    beats = len(harness.a.queue)
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    _write_results({"test": "counters_exact_when_unimpeded", "m": m, "k": k, "n": n,
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
    rng = np.random.default_rng(_seed() + 2)
    k = 4 * cfg.rows + 5
    a = _random_matrix(rng, (3 * cfg.rows, k), cfg.width)
    b = _random_matrix(rng, (k, 2 * cfg.cols + 1), cfg.width)
    harness.submit(a, b, "interrupted")
    beats = len(harness.a.queue)
    await harness.bench.run_until(lambda: harness.a.sent >= beats // 2, timeout=100_000)
    await harness.bench.reset()
    harness.jobs.clear()
    harness.rows.clear()
    harness.scoreboard.expected.clear()
    counters = harness.counters()
    assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"
    harness.submit(b.T.copy(), a.T.copy(), "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim --inputs`: the user's a and b through the RTL, results to an npz."""
    path = os.environ["TG_INPUTS"]   # the runner selects this test only with inputs
    harness = await _start(dut, gap=0.0)
    with np.load(path) as inputs:
        a, b = inputs["a"].astype(np.int64), inputs["b"].astype(np.int64)
    harness.submit(a, b, "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], c=harness.results[0], c_golden=harness.goldens[0],
             **{name: np.int64(value) for name, value in counters.items()})
    _write_results({"test": "user_inputs", "m": a.shape[0], "k": a.shape[1], "n": b.shape[1],
                    **counters})
