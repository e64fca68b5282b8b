"""Drivers, monitor and scoreboard around any GEMM-shaped DUT: ``desc``, ``a`` and ``b``
streams in, result rows on ``c`` out (``data``, ``row``, ``col``, ``last``), counters.

The dense systolic GEMM and the N:M sparse GEMM share it; each testbench only turns its
operands into beats (its block's ``layout`` module) and names the golden result.
"""
from __future__ import annotations

import random
from collections.abc import Iterable

import cocotb
import numpy as np
from cocotb.clock import Clock

from hdl.systolic.layout import assemble_result

from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import gap as default_gap
from .testbench import seed

__all__ = ["GemmHarness", "start_gemm_harness"]


def _payload(signature: dict, port: str):
    return signature[port].signature.members["payload"].shape


class GemmHarness:
    """One DUT's streams advanced by one clock loop, results scattered and scoreboarded."""

    def __init__(self, dut, config, signature: dict, rng: random.Random, gap: float):
        self.dut, self.config = dut, config
        self.desc = StreamSource(dut, "desc", _payload(signature, "desc"), rng, gap)
        self.a = StreamSource(dut, "a", _payload(signature, "a"), rng, gap)
        self.b = StreamSource(dut, "b", _payload(signature, "b"), rng, gap)
        self.c = StreamSink(dut, "c", _payload(signature, "c"), rng, gap, on_item=self._on_row)
        self.counter_names = signature["counters"].signature.names
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

    def submit(self, descriptor: dict, a_beats: Iterable, b_beats: Iterable,
               golden: np.ndarray, name: str) -> None:
        """Queue one job (descriptor and operand beats, as the layout module orders them)
        and the golden result it must produce."""
        self.desc.send(descriptor)
        for beat in a_beats:
            self.a.send(beat)
        for beat in b_beats:
            self.b.send(beat)
        self.jobs.append((descriptor["m"], descriptor["n"]))
        self.goldens.append(golden)
        self.scoreboard.expect(f"job {name} {descriptor['m']}x{descriptor['k']}x"
                               f"{descriptor['n']}", golden)

    async def run(self, *, timeout: int = 2_000_000) -> int:
        cycles = await self.bench.run_until(lambda: not self.jobs, timeout=timeout)
        # The cycle counters count registered events (hdl/common/counters.py): the last
        # result's events reach the ports two clocks after it left, so the streams run on
        # for those clocks before anyone reads the counters.
        settle = iter(range(2, -1, -1))
        await self.bench.run_until(lambda: next(settle) == 0, timeout=2)
        return cycles

    async def reset(self) -> None:
        """Reset mid-job: drop everything in flight and check the counters cleared."""
        await self.bench.reset()
        self.jobs.clear()
        self.rows.clear()
        self.scoreboard.expected.clear()
        counters = self.counters()
        assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, self.counter_names)


async def start_gemm_harness(dut, config, signature: dict, gap: float | None = None
                             ) -> GemmHarness:
    """Log the seed, start the clock, reset, and return the harness."""
    run_seed = seed()
    dut._log.info("seed %d (replay with --seed %d); config %s", run_seed, run_seed, config)
    harness = GemmHarness(dut, config, signature, random.Random(run_seed),
                          default_gap() if gap is None else gap)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await harness.bench.reset()
    return harness
