"""cocotb testbench of ``mx_dequant`` against ``golden.mx.mx_dequantize``: every code of the
format (NaN and Inf codes included) under random and extreme scales, the NaN scale, random
gaps and back-pressure; environment as in :mod:`sim.testbench`."""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from amaranth.lib import data

from golden.mx import mx_dequantize
from hdl.quant.config import MXDequantConfig
from hdl.quant.layout import dequant_beats, float32_bits
from hdl.quant.mx import quantized_layout

from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import seed, start_harness, write_results

COUNTERS = ("cycles", "busy_cycles", "stall_cycles", "stall_in_cycles", "stall_out_cycles",
            "nan_blocks")


class DequantHarness:
    def __init__(self, dut, config: MXDequantConfig, rng: random.Random, gap: float):
        self.dut, self.config = dut, config
        self.i = StreamSource(dut, "i", quantized_layout(config), rng, gap)
        self.o = StreamSink(dut, "o", data.ArrayLayout(32, config.lanes), rng, gap,
                            on_item=self._beat)
        self.bench = StreamBench(dut, [self.i, self.o])
        self.scoreboard = Scoreboard(dut._log)
        self.values: list[int] = []

    def _beat(self, lanes: list[int]) -> None:
        self.values.extend(lanes)
        self.scoreboard.check(np.array(lanes, dtype=np.int64))

    def submit(self, scale: np.ndarray, codes: np.ndarray, name: str) -> np.ndarray:
        """Queue blocks (``scale`` [blocks], ``codes`` [blocks, block_size]); returns the
        golden fp32 values."""
        cfg = self.config
        golden = mx_dequantize(scale.reshape(-1, 1), codes, cfg.format, cfg.block_size)
        golden_bits = float32_bits(golden).reshape(-1, cfg.lanes)
        for beat in dequant_beats(cfg, scale, codes):
            self.i.send(beat)
        for index, beat in enumerate(golden_bits):
            self.scoreboard.expect(f"{name} beat {index}", beat)
        return golden

    async def run(self, timeout: int = 1_000_000) -> None:
        await self.bench.run_until(lambda: not self.scoreboard.expected, timeout=timeout)

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, COUNTERS)


async def _start(dut, gap: float | None = None) -> DequantHarness:
    return await start_harness(dut, MXDequantConfig, DequantHarness, gap)


def _every_code_blocks(config: MXDequantConfig, scales: list[int]) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Every code of the format, repeated to whole blocks, under each scale."""
    codes = np.arange(1 << config.element.bits, dtype=np.int64)
    reps = -(-len(codes) // config.block_size) * config.block_size
    codes = np.resize(codes, reps).reshape(-1, config.block_size)
    all_scales = np.repeat(np.array(scales, dtype=np.int64), len(codes))
    return all_scales, np.tile(codes, (len(scales), 1))


@cocotb.test()
async def every_code_every_extreme_scale(dut):
    """Each code under scales 2^−127, 2^−1, 2^0, 2^+1, the largest useful one, and NaN."""
    harness = await _start(dut)
    cfg = harness.config
    top = 127 - cfg.element.emax
    scale, codes = _every_code_blocks(cfg, [0, 126, 127, 128, top + 127, 0xFF])
    harness.submit(scale, codes, "every code")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["nan_blocks"] == int((scale == 0xFF).sum()), counters
    write_results({"test": "every_code_every_extreme_scale", **counters})


@cocotb.test()
async def random_codes_and_scales(dut):
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    blocks = 24
    scale = rng.integers(0, 256, blocks)
    codes = rng.integers(0, 1 << cfg.element.bits, (blocks, cfg.block_size))
    harness.submit(scale, codes, "random")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def full_rate_when_unimpeded(dut):
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 1)
    blocks = 6
    harness.submit(rng.integers(100, 150, blocks),
                   rng.integers(0, 1 << cfg.element.bits, (blocks, cfg.block_size)), "unimpeded")
    beats = len(harness.i.queue)
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_cycles"] == 0, counters
    # Exactly the beats, the two stages and the output queue (two cycles).
    assert counters["cycles"] == beats + 4, counters
    write_results({"test": "full_rate_when_unimpeded", "beats": beats, "lanes": cfg.lanes,
                   "elements_per_cycle": cfg.lanes * beats / counters["busy_cycles"],
                   "latency": counters["cycles"] - beats, **counters,
                   **harness.bench.speed()})


@cocotb.test()
async def reset_mid_stream(dut):
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 2)
    harness.submit(rng.integers(0, 256, 4), rng.integers(0, 1 << cfg.element.bits,
                                                          (4, cfg.block_size)), "interrupted")
    beats = len(harness.i.queue)
    await harness.bench.run_until(lambda: harness.i.sent >= beats // 2, timeout=100_000)
    await harness.bench.reset()
    harness.scoreboard.expected.clear()
    counters = harness.counters()
    assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"
    harness.submit(rng.integers(0, 256, 3), rng.integers(0, 1 << cfg.element.bits,
                                                          (3, cfg.block_size)), "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim mx_dequant --inputs`: ``scale`` [rows × cols/block] and ``codes``
    [rows × cols] → ``x_hat`` (fp32)."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        scale, codes = inputs["scale"].astype(np.int64), inputs["codes"].astype(np.int64)
    rows, cols = codes.shape
    golden = harness.submit(scale.reshape(-1), codes.reshape(-1, cfg.block_size), "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    x_hat = np.array(harness.values, dtype=np.uint32).view(np.float32).reshape(rows, cols)
    np.savez(os.environ["TG_OUTPUTS"], x_hat=x_hat,
             x_hat_golden=np.asarray(golden, dtype=np.float32).reshape(rows, cols),
             **{name: np.int64(value) for name, value in harness.counters().items()})
