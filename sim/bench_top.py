"""What the self-driving benchmark tops' cocotb modules share: the clock, and one job from
reset to done.

The tops run millions of cycles, so Python stays off the per-cycle path: the clock toggles in
cocotb's C++ GPI layer, and a job waits on a single trigger (``done`` rising, or the cycle
limit passing) instead of counting clock edges in Python.
"""
from __future__ import annotations

import time

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer

__all__ = ["CLOCK_PERIOD_NS", "run_job", "start_clock"]

CLOCK_PERIOD_NS = 10
SETTLE_CYCLES = 16


def start_clock(dut) -> None:
    """Drive ``dut.clk`` from the GPI's C++ clock: no Python wakes up on its edges. The
    testbench writes its inputs on falling edges only, so nothing races the clock's writes."""
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start()


async def run_job(dut, ports: dict[str, int], limit: int, name: str) -> float:
    """Reset, set the job's ``ports``, pulse ``start`` and wait for ``done`` (at most ``limit``
    cycles); returns the wall-clock seconds the simulation took."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    dut.start.value = 0
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    for port, value in ports.items():
        getattr(dut, port).value = value
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    began = time.perf_counter()
    if not dut.done.value:   # the start edge has cleared it; a finished job sets it again
        await First(RisingEdge(dut.done), Timer(limit * CLOCK_PERIOD_NS, unit="ns"))
    seconds = time.perf_counter() - began
    assert dut.done.value, f"{name}: no result after {limit} cycles"
    # A top's done may rise a cycle or two before its last beat has reached the counters it
    # reports (PIM: the registered status and the status FIFO); read them once that has passed.
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    return seconds
