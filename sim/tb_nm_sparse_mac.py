"""cocotb testbench of ``nm_sparse_mac`` (one sparse PE behind streams) against the golden
N:M model; environment as in :mod:`sim.testbench`."""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock

from golden.nm_sparse import compress_nm, prune_nm
from hdl.sparse.config import NMSparseMacConfig
from hdl.sparse.interface import mac_signature
from hdl.sparse.layout import mac_beats, mac_golden_sums

from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import gap as default_gap
from .testbench import jobs as job_count
from .testbench import load_config, random_ints, seed, write_results


class MacHarness:
    def __init__(self, dut, config: NMSparseMacConfig, rng: random.Random, gap: float,
                 backpressure: float | None = None):
        self.dut, self.config = dut, config
        signature = mac_signature(config)
        payload = {name: signature[name].signature.members["payload"].shape
                   for name in ("i", "o")}
        self.i = StreamSource(dut, "i", payload["i"], rng, gap)
        self.o = StreamSink(dut, "o", payload["o"], rng,
                            gap if backpressure is None else backpressure,
                            on_item=self._on_result)
        self.counter_names = signature["counters"].signature.names
        self.bench = StreamBench(dut, [self.i, self.o])
        self.scoreboard = Scoreboard(dut._log)
        self.errors: list[int] = []
        self.expected_errors: list[int] = []
        self.sums: list[int] = []

    def _on_result(self, item: dict) -> None:
        self.sums.append(item["sum"])
        self.errors.append(item["error"])
        self.scoreboard.check(np.array([item["sum"], item["error"]]))

    def submit(self, a: np.ndarray, values: np.ndarray, indices: np.ndarray,
               golden_values: np.ndarray | None = None, name: str = "dot",
               errors: list[int] | None = None) -> None:
        """Queue the dot products a[p]·W[p] (W compressed); ``golden_values`` are the values
        the golden model multiplies (malformed groups zeroed), ``errors`` the expected flags."""
        cfg = self.config
        golden_values = values if golden_values is None else golden_values
        for beat in mac_beats(cfg, a, values, indices):
            self.i.send(beat)
        golden = mac_golden_sums(cfg, a, golden_values, indices)
        for p, value in enumerate(golden):
            flag = errors[p] if errors else 0
            self.scoreboard.expect(f"{name}[{p}] (K={a.shape[1]})", np.array([value, flag]))

    def submit_pruned(self, a: np.ndarray, w: np.ndarray, name: str) -> None:
        cfg = self.config
        pruned = prune_nm(torch.from_numpy(w), cfg.n, cfg.m)
        values, indices = compress_nm(pruned, cfg.n, cfg.m)
        self.submit(a, values.numpy(), indices.numpy(), name=name)

    async def run(self, timeout: int = 2_000_000) -> None:
        await self.bench.run_until(lambda: not self.scoreboard.expected, timeout=timeout)

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, self.counter_names)


async def _start(dut, gap: float | None = None,
                 backpressure: float | None = None) -> MacHarness:
    config = load_config(NMSparseMacConfig)
    run_seed = seed()
    dut._log.info("seed %d (replay with --seed %d); config %s", run_seed, run_seed, config)
    harness = MacHarness(dut, config, random.Random(run_seed),
                         default_gap() if gap is None else gap, backpressure)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await harness.bench.reset()
    return harness


@cocotb.test()
async def random_dot_products(dut):
    """Random lengths (K not a multiple of M, K = 1), extremes, zeros; gaps, back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    lo, hi = -(1 << (cfg.width - 1)), (1 << (cfg.width - 1)) - 1
    for index in range(job_count(6)):
        rows, k = int(rng.integers(1, 6)), int(rng.integers(1, 5 * cfg.m))
        harness.submit_pruned(random_ints(rng, (rows, k), cfg.width),
                              random_ints(rng, (rows, k), cfg.width), f"random#{index}")
    harness.submit_pruned(np.full((3, 1), hi), np.full((3, 1), lo), "k=1")
    k_long = 7 * cfg.m
    harness.submit_pruned(np.full((2, k_long), lo), np.full((2, k_long), lo), "min*min")
    harness.submit_pruned(np.full((1, k_long), hi), np.full((1, k_long), lo), "max*min")
    harness.submit_pruned(np.zeros((1, cfg.m), dtype=np.int64),
                          random_ints(rng, (1, cfg.m), cfg.width), "zeros")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["operand_errors"] == 0, counters
    # A stall is either starved (the pipeline may step) or blocked (it may not): never both.
    assert counters["stall_cycles"] == (counters["stall_in_cycles"]
                                        + counters["stall_out_cycles"]), counters
    write_results({"test": "random_dot_products", "seed": seed(), **counters})


@cocotb.test()
async def heavy_back_pressure(dut):
    """One group per dot product and a sink that is ready one cycle in ten: the output queue
    fills, the PE freezes, and no group may be taken in meanwhile or lost."""
    harness = await _start(dut, gap=0.0, backpressure=0.9)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 4)
    harness.submit_pruned(random_ints(rng, (40, cfg.m), cfg.width),
                          random_ints(rng, (40, cfg.m), cfg.width), "one group each")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["stall_out_cycles"] > 0, counters
    assert counters["busy_cycles"] == 40, counters


@cocotb.test()
async def accumulator_wraps_like_the_golden(dut):
    """A dot product long enough to overflow ``acc_width`` wraps exactly as specified."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    lo = -(1 << (cfg.width - 1))
    groups = (1 << (cfg.acc_width - 2 * cfg.width + 2)) // cfg.n + 2
    k = groups * cfg.m
    if groups > 4096:
        dut._log.info("acc_width %d would need %d groups to overflow: skipped as too long",
                      cfg.acc_width, groups)
        return
    harness.submit_pruned(np.full((1, k), lo), np.full((1, k), lo), "overflow")
    await harness.run(timeout=4 * groups + 100)
    harness.scoreboard.finish()


@cocotb.test()
async def malformed_groups_flagged(dut):
    """A group with two values on one index flags its dot product and counts as zero."""
    harness = await _start(dut)
    cfg = harness.config
    if cfg.n == 1:
        dut._log.info("n = 1: a group has one index, so no index can repeat")
        return
    rng = np.random.default_rng(seed() + 1)
    k = 3 * cfg.m
    a, w = random_ints(rng, (3, k), cfg.width), random_ints(rng, (3, k), cfg.width)
    values, indices = compress_nm(prune_nm(torch.from_numpy(w), cfg.n, cfg.m), cfg.n, cfg.m)
    values, indices = values.numpy(), indices.numpy()
    bad = indices.reshape(3, 3, cfg.n).copy()
    bad[1, 2, cfg.n - 1] = bad[1, 2, 0]          # dot product 1, its last group
    zeroed = values.reshape(3, 3, cfg.n).copy()
    zeroed[1, 2] = 0
    harness.submit(a, values, bad.reshape(3, -1), zeroed.reshape(3, -1), "malformed",
                   errors=[0, 1, 0])
    await harness.run()
    harness.scoreboard.finish()
    assert harness.counters()["operand_errors"] == 1, harness.counters()


@cocotb.test()
async def counters_exact_when_unimpeded(dut):
    """Input always valid, output always ready: one group per cycle, no stalls."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 2)
    rows, k = 5, 4 * cfg.m + 1
    harness.submit_pruned(random_ints(rng, (rows, k), cfg.width),
                          random_ints(rng, (rows, k), cfg.width), "unimpeded")
    beats = len(harness.i.queue)
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    write_results({"test": "counters_exact_when_unimpeded", "beats": beats, **counters,
                   **harness.bench.speed()})
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_cycles"] == 0, counters
    assert beats < counters["cycles"] <= beats + 8, counters


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset halfway through, then exact results again."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 3)
    k = 6 * cfg.m
    harness.submit_pruned(random_ints(rng, (4, k), cfg.width),
                          random_ints(rng, (4, k), cfg.width), "interrupted")
    beats = len(harness.i.queue)
    await harness.bench.run_until(lambda: harness.i.sent >= beats // 2, timeout=100_000)
    await harness.bench.reset()
    harness.scoreboard.expected.clear()
    counters = harness.counters()
    assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"
    harness.submit_pruned(random_ints(rng, (2, k + 1), cfg.width),
                          random_ints(rng, (2, k + 1), cfg.width), "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim --inputs`: P dot products a[p]·w[p], w pruned N:M unless it is."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        a, w = inputs["a"].astype(np.int64), inputs["w"].astype(np.int64)
    pruned = prune_nm(torch.from_numpy(w), cfg.n, cfg.m)
    values, indices = (t.numpy() for t in compress_nm(pruned, cfg.n, cfg.m))
    harness.submit(a, values, indices, name="user")
    golden = np.array([int(item[1][0]) for item in harness.scoreboard.expected])
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], w_pruned=pruned.numpy(), values=values,
             indices=indices, sum=np.array(harness.sums), sum_golden=golden,
             **{name: np.int64(value) for name, value in counters.items()})
    write_results({"test": "user_inputs", **counters})
