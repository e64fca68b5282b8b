"""cocotb testbench of ``attention`` against the bit-exact golden model; environment as in
:mod:`sim.testbench`. Every job's outputs are compared beat by beat (padding rows included,
which must be 0), and the work counters against the schedule."""
from __future__ import annotations

import math
import os
import random

import cocotb
import numpy as np
import torch

from golden.attention import attention_exact, attention_float
from hdl.attention.config import HEAD_BITS, SEQ_BITS, AttentionConfig
from hdl.attention.interface import attention_signature
from hdl.attention.layout import (
    assemble_output,
    descriptor,
    operand_beats,
    output_beats,
    scale_to_fixed,
    work,
)

from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import jobs as job_count
from .testbench import random_ints, seed, start_harness, write_results


class AttentionHarness:
    def __init__(self, dut, config: AttentionConfig, rng: random.Random, gap: float):
        self.dut, self.config = dut, config
        signature = attention_signature(config)
        layout = {name: signature[name].signature.members["payload"].shape
                  for name in ("desc", "q", "k", "v", "o")}
        self.desc = StreamSource(dut, "desc", layout["desc"], rng, gap)
        self.q = StreamSource(dut, "q", layout["q"], rng, gap)
        self.k = StreamSource(dut, "k", layout["k"], rng, gap)
        self.v = StreamSource(dut, "v", layout["v"], rng, gap)
        self.o = StreamSink(dut, "o", layout["o"], rng, gap, on_item=self._beat)
        self.counter_names = signature["counters"].signature.names
        self.bench = StreamBench(dut, [self.desc, self.q, self.k, self.v, self.o])
        self.scoreboard = Scoreboard(dut._log)
        self.beats: list[list[int]] = []
        self.expected_work = [0, 0]          # array beats, useful MACs

    def _beat(self, item: dict) -> None:
        row = [*item["data"], item["last"]]
        self.beats.append(row[:-1])
        self.scoreboard.check(np.array(row))

    def submit(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, *, causal: bool,
               scale: float | None = None, name: str = "job") -> np.ndarray:
        """Queue one job; returns the golden outputs [H, Nq, d]."""
        cfg = self.config
        heads, nq, d = q.shape
        kv_heads, nkv, _ = k.shape
        scale_fixed = scale_to_fixed(1 / math.sqrt(d) if scale is None else scale)
        golden = attention_exact(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                                 config=cfg, scale_fixed=scale_fixed, causal=causal).numpy()
        self.desc.send(descriptor(cfg, heads, nq, kv_heads, nkv, d, causal, scale_fixed))
        q_beats, k_beats, v_beats = operand_beats(cfg, q, k, v, causal)
        for source, beats in ((self.q, q_beats), (self.k, k_beats), (self.v, v_beats)):
            for beat in beats:
                source.send(beat.tolist())
        expected = output_beats(cfg, golden, kv_heads, nkv, causal)
        for index, beat in enumerate(expected):
            last = int(index == len(expected) - 1)
            self.scoreboard.expect(f"{name} (H={heads} Nq={nq} Hkv={kv_heads} Nkv={nkv} d={d} "
                                   f"causal={causal}) beat {index}", np.array([*beat, last]))
        beats, macs = work(cfg, heads, nq, kv_heads, nkv, d, causal)
        self.expected_work[0] += beats
        self.expected_work[1] += macs
        return golden

    def submit_descriptor(self, fields: dict) -> None:
        self.desc.send(fields)

    async def run(self, timeout: int = 300_000) -> None:
        await self.bench.run_until(lambda: not self.scoreboard.expected, timeout=timeout)

    async def settle(self, cycles: int = 50) -> None:
        """Let the streams run for a while (a rejected descriptor produces nothing)."""
        end = self.bench.cycle + cycles
        await self.bench.run_until(lambda: self.bench.cycle >= end, timeout=cycles + 10)

    async def reset(self) -> None:
        await self.bench.reset()
        self.scoreboard.expected.clear()
        self.expected_work = [0, 0]
        counters = self.counters()
        assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"
        assert int(self.dut.counters__desc_error.value) == 0

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, self.counter_names)

    def check_work(self) -> dict[str, int]:
        counters = self.counters()
        assert counters["busy_cycles"] == self.expected_work[0], (counters, self.expected_work)
        assert counters["useful_macs"] == self.expected_work[1], (counters, self.expected_work)
        assert counters["cycles"] >= counters["busy_cycles"] + counters["stall_cycles"] - 1
        assert counters["softmax_busy_cycles"] <= counters["cycles"]
        return counters


async def _start(dut, gap: float | None = None) -> AttentionHarness:
    return await start_harness(dut, AttentionConfig, AttentionHarness, gap)


def _heads(rng: np.random.Generator) -> tuple[int, int]:
    heads = int(rng.choice([1, 2, 4]))
    return heads, int(rng.choice([1, max(1, heads // 2), heads]))


def _job(rng, cfg: AttentionConfig, heads, kv_heads, nq, nkv, d):
    return (random_ints(rng, (heads, nq, d), cfg.width), random_ints(rng, (kv_heads, nkv, d),
            cfg.width), random_ints(rng, (kv_heads, nkv, d), cfg.width))


@cocotb.test()
async def random_jobs(dut):
    """Random Nq ≠ Nkv (1 and values not multiples of the array), d from 1 to the maximum,
    grouped-query heads, causal or not, sharp and flat scales; gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    for index in range(job_count(6)):
        heads, kv_heads = _heads(rng)
        nq = int(rng.integers(1, 3 * cfg.rows + 3))
        nkv = int(rng.integers(1, 3 * cfg.cols + 3))
        dims = [dim for dim in (1, 16, 32, 64) if dim <= cfg.max_head_dim]
        d = int(rng.choice([*dims, cfg.max_head_dim, int(rng.integers(1, cfg.max_head_dim + 1))]))
        causal = cfg.causal and bool(rng.integers(0, 2))
        scale = float(rng.choice([1 / math.sqrt(d), 4 / math.sqrt(d), 1e-3]))
        harness.submit(*_job(rng, cfg, heads, kv_heads, nq, nkv, d), causal=causal, scale=scale,
                       name=f"random#{index}")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.check_work()
    assert int(dut.counters__desc_error.value) == 0
    write_results({"test": "random_jobs", "beats": harness.scoreboard.checked, "seed": seed(),
                   **counters})


@cocotb.test()
async def long_sequences(dut):
    """Nkv ≥ 256 against a few queries and Nq ≥ 256 against a few keys (row and key counters
    past 8 bits), causal prefill with Nq = Nkv across many tiles."""
    harness = await _start(dut, gap=0.1)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 1)
    d = min(8, cfg.max_head_dim)
    harness.submit(*_job(rng, cfg, 1, 1, 3, 261, d), causal=False, name="Nkv=261")
    harness.submit(*_job(rng, cfg, 2, 1, 257, 5, d), causal=cfg.causal, name="Nq=257")
    harness.submit(*_job(rng, cfg, 1, 1, 4 * cfg.rows + 1, 4 * cfg.rows + 1, d),
                   causal=cfg.causal, name="prefill")
    await harness.run()
    harness.scoreboard.finish()
    harness.check_work()


@cocotb.test()
async def extremes(dut):
    """Largest scores (q = k = min), ties everywhere, v at both extremes (saturation),
    zeros, one key, one query, d at the maximum, a scale at its upper limit."""
    harness = await _start(dut)
    cfg = harness.config
    lo, hi = -(1 << (cfg.width - 1)), (1 << (cfg.width - 1)) - 1
    d = cfg.max_head_dim
    full = lambda shape, value: np.full(shape, value, dtype=np.int64)  # noqa: E731
    harness.submit(full((1, 3, d), lo), full((1, 5, d), lo), full((1, 5, d), lo),
                   causal=False, name="min everywhere")
    harness.submit(full((1, 2, d), lo), full((1, 5, d), lo), full((1, 5, d), hi),
                   causal=False, name="max v")
    v = np.tile(np.array([lo, hi]), (1, 3, (d + 1) // 2))[:, :, :d].astype(np.int64)
    harness.submit(full((1, 2, d), hi), full((1, 3, d), lo), v, causal=False,
                   scale=15.0 / math.log2(math.e), name="alternating v, sharpest scale")
    harness.submit(full((2, 2, d), 0), full((1, 4, d), 0), full((1, 4, d), 7),
                   causal=cfg.causal, name="zeros")
    rng = np.random.default_rng(seed() + 2)
    harness.submit(*_job(rng, cfg, 1, 1, 1, 1, d), causal=False, name="one query, one key")
    harness.submit(*_job(rng, cfg, 1, 1, cfg.rows, 1, 1), causal=cfg.causal, name="d=1")
    harness.submit(*_job(rng, cfg, 1, 1, 2, 3, 2), causal=False, scale=0.0, name="scale 0")
    await harness.run()
    harness.scoreboard.finish()
    harness.check_work()


@cocotb.test()
async def stall_counters(dut):
    """Withheld keys count as input stalls (and nothing else), a blocked output as output
    stalls once the output queue is full; the job still completes exactly afterwards."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 6)
    # Unimpeded, with d = 2 so that passes wait for the softmax units: those waits are no
    # stalls; only the first q tile (2 beats) is.
    harness.submit(*_job(rng, cfg, 1, 1, 2 * cfg.rows, 8 * cfg.cols, 2), causal=False,
                   name="softmax-bound")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.check_work()
    assert counters["stall_cycles"] <= 2 + 1 and counters["stall_out_cycles"] == 0, counters
    await harness.reset()
    d = min(16, cfg.max_head_dim)
    harness.submit(*_job(rng, cfg, 1, 1, 10 * cfg.rows, 3 * cfg.cols, d), causal=False,
                   name="stalled")
    # No q tile yet, then q but no keys: both waits are input stalls, and only those.
    held_q, held_k = list(harness.q.queue), list(harness.k.queue)
    harness.q.queue.clear()
    harness.k.queue.clear()
    await harness.settle(600)
    counters = harness.counters()
    assert counters["busy_cycles"] == 0 and counters["stall_out_cycles"] == 0, counters
    # Set-up takes at most 2R + 8 cycles of the 600.
    assert counters["stall_in_cycles"] >= 600 - (2 * cfg.rows + 8), counters
    harness.q.queue.extend(held_q)
    await harness.settle(600)
    waiting = harness.counters()
    assert waiting["busy_cycles"] == 0, waiting
    assert waiting["stall_in_cycles"] >= counters["stall_in_cycles"] + 600 - 4, waiting
    assert waiting["stall_cycles"] == waiting["stall_in_cycles"], waiting
    harness.k.queue.extend(held_k)
    harness.o.backpressure = 1.0
    await harness.settle(6000)
    blocked = harness.counters()
    assert blocked["stall_out_cycles"] >= 1000, blocked
    assert blocked["stall_cycles"] == blocked["stall_in_cycles"] + blocked["stall_out_cycles"]
    harness.o.backpressure = 0.0
    await harness.run()
    harness.scoreboard.finish()
    harness.check_work()


@cocotb.test()
async def bad_descriptors(dut):
    """Zero sizes, d above the maximum, H not a multiple of Hkv (and causal without the
    option): the error flag rises, nothing comes out, the next good job is exact."""
    harness = await _start(dut)
    cfg = harness.config
    good = descriptor(cfg, 2, 3, 1, 4, 2, False, scale_to_fixed(0.5))
    bad = [dict(good, nq=0), dict(good, nkv=0), dict(good, head_dim=0),
           dict(good, heads=3, kv_heads=2), dict(good, kv_heads=0), dict(good, heads=0)]
    if cfg.max_head_dim < (1 << cfg.head_dim_bits) - 1:
        bad.append(dict(good, head_dim=cfg.max_head_dim + 1))
    if not cfg.causal:
        bad.append(dict(good, causal=1))
    for fields in bad:
        await harness.reset()
        harness.submit_descriptor(fields)
        await harness.settle(2 * cfg.rows + 2 * (1 << HEAD_BITS))
        assert int(dut.counters__desc_error.value) == 1, f"no error flag for {fields}"
        assert not harness.beats, f"output after a bad descriptor {fields}"
        assert harness.desc.idle
    rng = np.random.default_rng(seed() + 4)
    harness.submit(*_job(rng, cfg, 2, 1, 3, 4, 2), causal=False, scale=0.5, name="after errors")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def largest_descriptor_fields(dut):
    """H = 255 query heads on Hkv = 5 (G = 51: the divider loop and the lane set-up at their
    widths) and Nkv at the field maximum, 65535, against one query (key-block counter and
    masks at their widths). Icarus, about 25 times slower, runs Nkv = 4097 (past 12 bits);
    the maximum itself runs on Verilator."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 5)
    heads = (1 << HEAD_BITS) - 1
    harness.submit(*_job(rng, cfg, heads, 5, 1, 2, 1), causal=False, name="H=255, Hkv=5")
    nkv = 4097 if "icarus" in cocotb.SIM_NAME.lower() else (1 << SEQ_BITS) - 1
    harness.submit(*_job(rng, cfg, 1, 1, 1, nkv, 1), causal=False, name=f"Nkv={nkv}")
    await harness.run(timeout=64 * nkv)
    harness.scoreboard.finish()
    harness.check_work()


@cocotb.test()
async def reset_mid_job(dut):
    """A reset in the middle of a job, then a clean job that must be exact."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 3)
    harness.submit(*_job(rng, cfg, 2, 2, 2 * cfg.rows + 1, 3 * cfg.cols, 4), causal=False,
                   name="interrupted")
    await harness.bench.run_until(lambda: harness.k.sent >= 12, timeout=100_000)
    await harness.reset()
    harness.beats.clear()
    harness.submit(*_job(rng, cfg, 1, 1, cfg.rows + 1, cfg.cols + 2, 3), causal=cfg.causal,
                   name="after reset")
    await harness.run()
    harness.scoreboard.finish()
    harness.check_work()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim --inputs`: q [H,Nq,d], k and v [Hkv,Nkv,d], optional scale and causal;
    writes o (RTL), o_golden, o_float and the counters."""
    harness = await _start(dut, gap=0.0)
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        q, k, v = (inputs[key].astype(np.int64) for key in ("q", "k", "v"))
        scale = float(inputs["scale"]) if "scale" in inputs else 1 / math.sqrt(q.shape[2])
        causal = bool(inputs["causal"]) if "causal" in inputs else False
    harness.submit(q, k, v, causal=causal, scale=scale, name="user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    o, _ = assemble_output(harness.config, np.array(harness.beats), q.shape[0], q.shape[1],
                           k.shape[0], k.shape[1], q.shape[2], causal)
    golden = attention_exact(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                             config=harness.config, scale_fixed=scale_to_fixed(scale),
                             causal=causal).numpy()
    o_float = attention_float(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                              scale=scale, causal=causal).numpy()
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], o=o, o_golden=golden, o_float=o_float,
             **{name: np.int64(value) for name, value in counters.items()})
    write_results({"test": "user_inputs", "shape_q": list(q.shape), "shape_kv": list(k.shape),
                   "causal": causal, **counters})
