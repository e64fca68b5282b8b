"""cocotb testbench of ``kivi_quant`` against ``golden.kivi`` (the same integer arithmetic):
values grouped per token and keys per channel, corner groups, gaps, back-pressure, reset;
environment as in :mod:`sim.testbench`."""
from __future__ import annotations

import os

import cocotb
import numpy as np
import torch

from golden.kivi import group_view, kivi_quantize
from hdl.quant.config import KiviQuantConfig
from hdl.quant.kivi import KiviQuantizer

from .block_harness import BlockHarness, start_block_harness
from .quant_data import (
    KIVI_METADATA,
    as_input_bits,
    block_summary,
    kivi_corner_groups,
    kivi_outputs,
    kivi_result,
    random_blocks,
    to_input_type,
)
from .testbench import gap as default_gap
from .testbench import load_config, seed, write_results

METADATA = KIVI_METADATA


def _summary(beats: list[dict]) -> np.ndarray:
    """A group as the scoreboard sees it: its metadata, then its codes."""
    return block_summary(beats, METADATA)


def submit(harness: BlockHarness, x: torch.Tensor, axis: str, name: str) -> dict:
    """Queue ``x`` [tokens, channels] grouped along ``axis`` (keys: "channel", values:
    "token"), in stream order, and the golden groups."""
    cfg = harness.config
    golden = kivi_quantize(x, cfg.bits, cfg.group, axis)
    bits = as_input_bits(x).reshape(x.shape)
    harness.send(group_view(bits, cfg.group, axis).reshape(-1, cfg.lanes))
    metadata = np.stack([np.asarray(golden[key]).reshape(-1).astype(np.int64)
                         for key in METADATA], axis=1)
    codes = group_view(golden["codes"], cfg.group, axis).reshape(-1, cfg.group)
    harness.expect(name, np.concatenate([metadata, codes.astype(np.int64)], axis=1))
    return golden


async def _start(dut, gap: float | None = None) -> BlockHarness:
    config = load_config(KiviQuantConfig)
    return await start_block_harness(
        dut, config, KiviQuantizer(config).signature.members,
        default_gap() if gap is None else gap, beats_per_block=config.group // config.lanes,
        summary=_summary)


@cocotb.test()
async def values_per_token_and_keys_per_channel(dut):
    """A random value cache grouped per token, then a key cache grouped per channel (each
    tile of ``group`` tokens streamed channel by channel), gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    values = random_blocks(rng, cfg.input, rows=5, cols=2 * cfg.group, block_size=cfg.group)
    keys = random_blocks(rng, cfg.input, rows=2 * cfg.group, cols=6)
    submit(harness, values, "token", "values")
    submit(harness, keys, "channel", "keys")
    await harness.run()
    harness.scoreboard.finish()
    write_results({"test": "values_per_token_and_keys_per_channel", "seed": seed(),
                   **harness.counters()})


@cocotb.test()
async def corner_groups(dut):
    """Round-half-up ties of every code and their neighbours, R = 0, zeros, NaN, ±Inf,
    negative-only, subnormal and largest-normal groups."""
    harness = await _start(dut)
    cfg = harness.config
    groups, flagged = kivi_corner_groups(np.random.default_rng(seed() + 1), cfg.input,
                                         cfg.bits, cfg.group)
    submit(harness, groups, "token", "corner")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["error_groups"] == flagged, (counters, flagged)


@cocotb.test()
async def full_rate_when_unimpeded(dut):
    """Input always valid, output always ready: ``lanes`` elements every cycle, no stall."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 2)
    groups = max(8, 256 // cfg.group)
    submit(harness, random_blocks(rng, cfg.input, rows=groups, cols=cfg.group), "token",
           "unimpeded")
    beats = groups * cfg.group // cfg.lanes
    start = harness.bench.cycle
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    first, last = harness.beat_cycles[0], harness.beat_cycles[-1]
    write_results({"test": "full_rate_when_unimpeded", "beats": beats, "lanes": cfg.lanes,
                   "elements_per_cycle": cfg.lanes * (beats - 1) / (last - first),
                   "latency": first - start, **counters, **harness.bench.speed()})
    assert counters["busy_cycles"] == beats, counters
    assert counters["stall_cycles"] == 0, counters
    assert last - first == beats - 1, (first, last, beats)


@cocotb.test()
async def reset_mid_stream(dut):
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 3)
    submit(harness, random_blocks(rng, cfg.input, rows=4, cols=cfg.group), "token",
           "interrupted")
    beats = len(harness.i.queue)
    await harness.bench.run_until(lambda: harness.i.sent >= beats // 2 + 1, timeout=100_000)
    await harness.reset()
    submit(harness, random_blocks(rng, cfg.input, rows=cfg.group, cols=3), "channel",
           "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim kivi_quant --inputs`: ``x`` [tokens × channels] and optional ``axis``
    ("token": values, the default; "channel": keys) → codes, minimum, scale, x_hat and the
    integer metadata (minimum_fixed, range, exponent, error)."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        x = to_input_type(inputs["x"], cfg.input)
        axis = str(inputs["axis"]) if "axis" in inputs else "token"
    golden = submit(harness, x, axis, "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    groups = np.array([_summary(beats) for beats in harness.blocks])
    rtl = kivi_result(cfg, groups, tuple(x.shape), axis)
    outputs = kivi_outputs(cfg, rtl, axis)
    outputs |= {f"{key}_golden": value for key, value in kivi_outputs(cfg, golden, axis).items()}
    np.savez(os.environ["TG_OUTPUTS"], **outputs,
             **{name: np.int64(value) for name, value in harness.counters().items()})
