"""Drivers and scoreboard of the block quantizers: element beats in, block by block out.

Every output beat carries its block's metadata and ``first``/``last``; the harness checks the
framing (beats per block, first and last flags, metadata equal on every beat) and hands the
block's beats to the testbench's ``summary`` (metadata and codes as one array), which the
scoreboard compares in order with the golden model's.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import cocotb
import numpy as np
from cocotb.clock import Clock

from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import seed

__all__ = ["BlockHarness", "start_block_harness"]


class BlockHarness:
    def __init__(self, dut, config, signature: dict, rng: random.Random, gap: float, *,
                 beats_per_block: int, summary: Callable[[list[dict]], np.ndarray]):
        self.dut, self.config = dut, config
        self.out_layout = signature["o"].signature.members["payload"].shape
        self.i = StreamSource(dut, "i", signature["i"].signature.members["payload"].shape,
                              rng, gap)
        self.o = StreamSink(dut, "o", self.out_layout, rng, gap, on_item=self._beat)
        self.counter_names = signature["counters"].signature.names
        self.bench = StreamBench(dut, [self.i, self.o])
        self.scoreboard = Scoreboard(dut._log)
        self.beats_per_block, self.summary = beats_per_block, summary
        self.pending: list[dict] = []
        self.blocks: list[list[dict]] = []
        self.beat_cycles: list[int] = []     # clock cycle of each output beat

    def _beat(self, item: dict) -> None:
        self.beat_cycles.append(self.bench.cycle)
        self.pending.append(item)
        if not item["last"]:
            return
        beats, self.pending = self.pending, []
        metadata = [{k: v for k, v in b.items() if k not in ("codes", "first", "last")}
                    for b in beats]
        first_ok = [b["first"] for b in beats] == [1] + [0] * (len(beats) - 1)
        if len(beats) != self.beats_per_block or not first_ok or metadata.count(
                metadata[0]) != len(metadata):
            self.scoreboard.failures.append(
                f"block framing: {len(beats)} beats, first flags {[b['first'] for b in beats]},"
                f" metadata {metadata}")
        self.blocks.append(beats)
        self.scoreboard.check(self.summary(beats))

    def send(self, lanes_bits: np.ndarray) -> None:
        """Queue input beats ([beats, lanes] bit patterns). One stream per reset: the
        stochastic rounding's random sequence starts with the stream."""
        for beat in lanes_bits:
            self.i.send(beat.tolist())

    def expect(self, name: str, summaries: np.ndarray) -> None:
        for index, summary in enumerate(summaries):
            self.scoreboard.expect(f"{name} block {index}", summary)

    async def run(self, timeout: int = 1_000_000) -> None:
        await self.bench.run_until(lambda: not self.scoreboard.expected, timeout=timeout)

    async def reset(self) -> None:
        """Reset mid-stream: drop what is in flight, check the counters cleared."""
        await self.bench.reset()
        self.scoreboard.expected.clear()
        self.pending.clear()
        self.i.sent = 0
        counters = self.counters()
        assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, self.counter_names)


async def start_block_harness(dut, config, signature: dict, gap: float, *,
                              beats_per_block: int,
                              summary: Callable[[list[dict]], np.ndarray]) -> BlockHarness:
    run_seed = seed()
    dut._log.info("seed %d (replay with --seed %d); config %s", run_seed, run_seed, config)
    harness = BlockHarness(dut, config, signature, random.Random(run_seed), gap,
                           beats_per_block=beats_per_block, summary=summary)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await harness.bench.reset()
    return harness
