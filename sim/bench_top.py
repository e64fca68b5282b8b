"""What the self-driving benchmark tops' cocotb modules share: one job from reset to done."""
from __future__ import annotations

import time

from cocotb.triggers import ClockCycles, FallingEdge

__all__ = ["run_job"]


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
    waited = 0
    while not dut.done.value:
        await ClockCycles(dut.clk, 512)
        waited += 512
        assert waited < limit, f"{name}: no result after {waited} cycles"
    return time.perf_counter() - began
