"""cocotb testbench of ``mx_quant`` against the bit-exact golden model ``golden.mx``;
environment as in :mod:`sim.testbench`."""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
import torch
from amaranth.lib import data
from cocotb.clock import Clock

from golden.mx import mx_dequantize, mx_quantize
from hdl.quant.config import MXQuantConfig
from hdl.quant.mx import quantized_layout

from .quant_data import as_input_bits, corner_blocks, random_blocks, to_input_type
from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import gap as default_gap
from .testbench import jobs as job_count
from .testbench import load_config, seed, write_results


class QuantHarness:
    """Input beats of ``lanes`` elements; output beats checked block by block."""

    def __init__(self, dut, config: MXQuantConfig, rng: random.Random, gap: float):
        self.dut, self.config = dut, config
        in_bits = {"fp32": 32, "bf16": 16, "fp16": 16}[config.input]
        self.i = StreamSource(dut, "i", _lanes_layout(in_bits, config.lanes), rng, gap)
        self.o = StreamSink(dut, "o", quantized_layout(config), rng, gap, on_item=self._beat)
        self.bench = StreamBench(dut, [self.i, self.o])
        self.scoreboard = Scoreboard(dut._log)
        self.pending: list[dict] = []
        self.blocks_expected = 0
        self.scales: list[int] = []
        self.codes: list[int] = []
        self.beat_cycles: list[int] = []     # clock cycle of each output beat

    def _beat(self, item: dict) -> None:
        self.beat_cycles.append(self.bench.cycle)
        self.pending.append(item)
        if not item["last"]:
            return
        beats, self.pending = self.pending, []
        first_ok = [b["first"] for b in beats] == [1] + [0] * (len(beats) - 1)
        same_scale = len({b["scale"] for b in beats}) == 1
        if len(beats) != self.config.beats_per_block or not first_ok or not same_scale:
            self.scoreboard.failures.append(
                f"block framing: {len(beats)} beats, first flags "
                f"{[b['first'] for b in beats]}, scales {[b['scale'] for b in beats]}")
        codes = [code for b in beats for code in b["codes"]]
        self.scales.append(beats[0]["scale"])
        self.codes.extend(codes)
        self.scoreboard.check(np.array([beats[0]["scale"], *codes]))

    def submit(self, x: torch.Tensor, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Queue the rows of ``x`` (in the input type) and their golden blocks. One submission
        per reset: the stochastic rounding's LFSR sequence starts at the stream's start."""
        cfg = self.config
        assert self.i.sent == 0 and not self.i.queue, "one submission per reset"
        scale, codes = mx_quantize(x, cfg.format, cfg.block_size, cfg.rounding,
                                   lanes=cfg.lanes)
        bits = as_input_bits(x).reshape(-1, cfg.lanes)
        for beat in bits:
            self.i.send(beat.tolist())
        blocks = codes.reshape(-1, cfg.block_size)
        for index, (s, block) in enumerate(zip(scale.reshape(-1), blocks, strict=True)):
            self.scoreboard.expect(f"{name} block {index}", np.array([s, *block]))
        return scale, codes

    async def run(self, timeout: int = 1_000_000) -> None:
        await self.bench.run_until(lambda: not self.scoreboard.expected, timeout=timeout)

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, ("cycles", "busy_cycles", "stall_cycles",
                                        "stall_in_cycles", "stall_out_cycles", "nan_blocks"))


def _lanes_layout(bits: int, lanes: int) -> data.ArrayLayout:
    return data.ArrayLayout(bits, lanes)


async def _start(dut, gap: float | None = None) -> QuantHarness:
    config = load_config(MXQuantConfig)
    run_seed = seed()
    dut._log.info("seed %d (replay with --seed %d); config %s", run_seed, run_seed, config)
    harness = QuantHarness(dut, config, random.Random(run_seed),
                           default_gap() if gap is None else gap)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await harness.bench.reset()
    return harness


@cocotb.test()
async def random_blocks_exact(dut):
    """Blocks of random values over a wide exponent range, random gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    x = random_blocks(rng, cfg.input, rows=job_count(6), cols=2 * cfg.block_size)
    harness.submit(x, "random")
    await harness.run()
    harness.scoreboard.finish()
    write_results({"test": "random_blocks_exact", "seed": seed(), **harness.counters()})


@cocotb.test()
async def corner_cases_exact(dut):
    """Zeros, NaN, ±Inf, largest and smallest normals, subnormals, rounding ties and their
    neighbours, scales clamped at 2^−127, saturation, −0; each one block."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 1)
    x, nan_blocks = corner_blocks(rng, cfg.input, cfg.format, cfg.block_size)
    harness.submit(x, "corner")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["nan_blocks"] == nan_blocks, (counters, nan_blocks)


@cocotb.test()
async def full_rate_when_unimpeded(dut):
    """Input always valid, output always ready: ``lanes`` elements every cycle (an output
    beat every cycle from the first to the last), no stall, latency of one block plus the
    pipeline."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 2)
    blocks = max(8, 256 // cfg.block_size)
    x = random_blocks(rng, cfg.input, rows=blocks, cols=cfg.block_size)
    harness.submit(x, "unimpeded")
    beats = blocks * cfg.beats_per_block
    start = harness.bench.cycle
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    first, last = harness.beat_cycles[0], harness.beat_cycles[-1]
    elements_per_cycle = cfg.lanes * (beats - 1) / (last - first) if beats > 1 else cfg.lanes
    latency = first - start
    write_results({"test": "full_rate_when_unimpeded", "beats": beats, "lanes": cfg.lanes,
                   "elements_per_cycle": elements_per_cycle, "latency": latency, **counters})
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_cycles"] == 0, counters
    assert last - first == beats - 1, (first, last, beats)
    assert latency <= cfg.beats_per_block + 8, (latency, counters)


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset halfway through a stream (LFSRs restart too), then exact results again."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 3)
    harness.submit(random_blocks(rng, cfg.input, rows=4, cols=cfg.block_size), "interrupted")
    beats = len(harness.i.queue)
    await harness.bench.run_until(lambda: harness.i.sent >= beats // 2 + 1, timeout=100_000)
    await harness.bench.reset()
    harness.scoreboard.expected.clear()
    harness.pending.clear()
    counters = harness.counters()
    assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"
    harness.i.sent = 0
    harness.submit(random_blocks(rng, cfg.input, rows=3, cols=cfg.block_size), "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim mx_quant --inputs`: x [rows × cols] → scale, codes, x_hat."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        x = inputs["x"]
    scale, codes = harness.submit(to_input_type(x, cfg.input), "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    rows, cols = codes.shape
    rtl_scale = np.array(harness.scales, dtype=np.uint8).reshape(rows, cols // cfg.block_size)
    rtl_codes = np.array(harness.codes, dtype=np.uint8).reshape(rows, cols)
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], scale=rtl_scale, scale_golden=scale, codes=rtl_codes,
             codes_golden=codes,
             x_hat=mx_dequantize(rtl_scale, rtl_codes, cfg.format, cfg.block_size),
             x_hat_golden=mx_dequantize(scale, codes, cfg.format, cfg.block_size),
             **{name: np.int64(value) for name, value in counters.items()})
    write_results({"test": "user_inputs", **counters})

