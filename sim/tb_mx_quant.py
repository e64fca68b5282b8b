"""cocotb testbench of ``mx_quant`` against the bit-exact golden model ``golden.mx``;
environment as in :mod:`sim.testbench`."""
from __future__ import annotations

import os

import cocotb
import numpy as np
import torch

from golden.mx import mx_quantize
from hdl.quant.config import MXQuantConfig
from hdl.quant.mx import MXQuantizer

from .block_harness import BlockHarness, start_block_harness
from .quant_data import (
    as_input_bits,
    block_summary,
    corner_blocks,
    mx_quant_outputs,
    random_blocks,
    to_input_type,
)
from .testbench import gap as default_gap
from .testbench import jobs as job_count
from .testbench import load_config, seed, write_results


def _summary(beats: list[dict]) -> np.ndarray:
    """A block as the scoreboard sees it: the scale code, then every element code."""
    return block_summary(beats, ("scale",))


def submit(harness: BlockHarness, x: torch.Tensor, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Queue the rows of ``x`` (in the input type) and their golden blocks."""
    cfg = harness.config
    assert harness.i.sent == 0 and not harness.i.queue, "one stream per reset (the LFSRs)"
    scale, codes = mx_quantize(x, cfg.format, cfg.block_size, cfg.rounding, lanes=cfg.lanes)
    harness.send(as_input_bits(x).reshape(-1, cfg.lanes))
    harness.expect(name, np.concatenate([scale.reshape(-1, 1),
                                         codes.reshape(-1, cfg.block_size)], axis=1))
    return scale, codes


async def _start(dut, gap: float | None = None) -> BlockHarness:
    config = load_config(MXQuantConfig)
    return await start_block_harness(
        dut, config, MXQuantizer(config).signature.members,
        default_gap() if gap is None else gap, beats_per_block=config.beats_per_block,
        summary=_summary)


@cocotb.test()
async def random_blocks_exact(dut):
    """Blocks of random values over a wide exponent range, random gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    submit(harness, random_blocks(rng, cfg.input, rows=job_count(6), cols=2 * cfg.block_size,
                                  block_size=cfg.block_size), "random")
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
    submit(harness, x, "corner")
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
    submit(harness, random_blocks(rng, cfg.input, rows=blocks, cols=cfg.block_size),
           "unimpeded")
    beats = blocks * cfg.beats_per_block
    start = harness.bench.cycle
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    first, last = harness.beat_cycles[0], harness.beat_cycles[-1]
    elements_per_cycle = cfg.lanes * (beats - 1) / (last - first) if beats > 1 else cfg.lanes
    latency = first - start
    write_results({"test": "full_rate_when_unimpeded", "beats": beats, "lanes": cfg.lanes,
                   "elements_per_cycle": elements_per_cycle, "latency": latency, **counters,
                   **harness.bench.speed()})
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_cycles"] == 0, counters
    assert last - first == beats - 1, (first, last, beats)
    assert latency <= cfg.beats_per_block + 13, (latency, counters)


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset halfway through a stream (the LFSRs restart too), then exact results again."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 3)
    submit(harness, random_blocks(rng, cfg.input, rows=4, cols=cfg.block_size), "interrupted")
    beats = len(harness.i.queue)
    await harness.bench.run_until(lambda: harness.i.sent >= beats // 2 + 1, timeout=100_000)
    await harness.reset()
    submit(harness, random_blocks(rng, cfg.input, rows=3, cols=cfg.block_size), "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim mx_quant --inputs`: x [rows × cols] → scale, codes, x_hat."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        x = inputs["x"]
    scale, codes = submit(harness, to_input_type(x, cfg.input), "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    rows, cols = codes.shape
    blocks = [_summary(beats) for beats in harness.blocks]
    rtl_scale = np.array([b[0] for b in blocks], dtype=np.uint8).reshape(scale.shape)
    rtl_codes = np.array([b[1:] for b in blocks], dtype=np.uint8).reshape(rows, cols)
    counters = harness.counters()
    outputs = mx_quant_outputs(cfg, rtl_scale, rtl_codes)
    outputs |= {f"{key}_golden": value
                for key, value in mx_quant_outputs(cfg, scale, codes).items()}
    np.savez(os.environ["TG_OUTPUTS"], **outputs,
             **{name: np.int64(value) for name, value in counters.items()})
    write_results({"test": "user_inputs", **counters})
