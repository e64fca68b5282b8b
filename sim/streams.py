"""cocotb stream drivers: sources with random valid gaps, sinks with random back-pressure.

All streams of a testbench advance in one clock loop (:class:`StreamBench`), which sets
inputs after each falling edge and samples handshakes in the read-only phase before the next
rising edge; one loop instead of a coroutine per stream keeps Python cost per cycle low and
makes the sampling point identical under Verilator and Icarus.
"""
from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from .payload import pack, unpack

__all__ = ["StreamBench", "StreamSink", "StreamSource"]


class StreamSource:
    """Drives ``<prefix>__valid/__payload``; each cycle idles with probability ``gap``."""

    def __init__(self, dut, prefix: str, layout: Any, rng: random.Random, gap: float = 0.0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.rng, self.gap = layout, rng, gap
        self.queue: deque[int] = deque()
        self.offering = False
        self.sent = 0

    def send(self, value: Any) -> None:
        self.queue.append(pack(self.layout, value))

    def drive(self) -> None:
        # A stream may not withdraw an offer, so idle only between transfers.
        if not self.offering:
            self.offering = bool(self.queue) and self.rng.random() >= self.gap
        self.valid.value = int(self.offering)
        if self.offering:
            self.payload.value = self.queue[0]

    def sample(self) -> bool:
        return self.offering and bool(self.ready.value)

    def transferred(self) -> None:
        self.queue.popleft()
        self.offering = False
        self.sent += 1

    def clear(self) -> None:
        self.queue.clear()
        self.offering = False
        self.valid.value = 0

    @property
    def idle(self) -> bool:
        return not self.queue


class StreamSink:
    """Drives ``<prefix>__ready`` low with probability ``backpressure``; calls ``on_item``."""

    def __init__(self, dut, prefix: str, layout: Any, rng: random.Random,
                 backpressure: float = 0.0, on_item: Callable[[Any], None] | None = None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.rng, self.backpressure = layout, rng, backpressure
        self.items: list[Any] = []
        self.on_item = on_item or self.items.append
        self.accepting = False
        self._pending: int | None = None

    def drive(self) -> None:
        self.accepting = self.rng.random() >= self.backpressure
        self.ready.value = int(self.accepting)

    def sample(self) -> bool:
        if self.accepting and self.valid.value:
            self._pending = int(self.payload.value)
            return True
        return False

    def transferred(self) -> None:
        self.on_item(unpack(self.layout, self._pending))

    def clear(self) -> None:
        self.accepting = False
        self._pending = None
        self.ready.value = 0


class StreamBench:
    """Runs every source and sink of a DUT in one loop, cycle by cycle."""

    def __init__(self, dut, streams: list[StreamSource | StreamSink]):
        self.dut = dut
        self.streams = streams
        self.cycle = 0
        self.run_seconds = 0.0   # wall-clock time spent in run_until, for the benchmarks
        self.run_cycles = 0
        self._aligned = False
        for stream in streams:
            stream.clear()

    async def run_until(self, done: Callable[[], bool], *, timeout: int) -> int:
        """Advance until ``done()``; return the cycles taken (``TimeoutError`` past ``timeout``)."""
        if not self._aligned:
            await FallingEdge(self.dut.clk)
            self._aligned = True
        start, began = self.cycle, time.perf_counter()
        while not done():
            if self.cycle - start > timeout:
                raise TimeoutError(f"no progress after {timeout} cycles")
            for stream in self.streams:
                stream.drive()
            await ReadOnly()
            fired = [stream for stream in self.streams if stream.sample()]
            await FallingEdge(self.dut.clk)
            self.cycle += 1
            for stream in fired:
                stream.transferred()
        self.run_seconds += time.perf_counter() - began
        self.run_cycles += self.cycle - start
        return self.cycle - start

    def speed(self) -> dict[str, float]:
        """The cycles run and the seconds they took, for a test's record (``sim_cycles``,
        ``sim_seconds``): the speed of this Python-driven loop, not of the simulator."""
        return {"sim_cycles": self.run_cycles, "sim_seconds": self.run_seconds}

    async def idle(self, cycles: int) -> None:
        """Let ``cycles`` clock cycles pass with every stream idle."""
        for stream in self.streams:
            stream.clear()
        await ClockCycles(self.dut.clk, cycles)
        self._aligned = False

    async def reset(self, cycles: int = 3) -> None:
        """Hold ``rst`` for ``cycles`` clock cycles and drop everything in flight."""
        for stream in self.streams:
            stream.clear()
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        self._aligned = True


def read_counters(dut, names) -> dict[str, int]:
    """The DUT's performance counter ports ``counters__<name>`` as integers."""
    return {name: int(getattr(dut, f"counters__{name}").value) for name in names}
