"""cocotb testbench of ``nm_sparse_gemm``: sparse, dense and transposed (backward) jobs
against the golden N:M model (``golden.nm_sparse``); environment as in :mod:`sim.testbench`."""
from __future__ import annotations

import os

import cocotb
import numpy as np
import torch

from golden.gemm import gemm_int_exact
from golden.nm_sparse import bdwp_masks, compress_nm, nm_gemm_exact, prune_nm
from hdl.sparse.config import NMSparseGemmConfig
from hdl.sparse.interface import sparse_gemm_signature
from hdl.sparse.layout import gemm_beats, weight_group_beats

from .gemm_harness import GemmHarness, start_gemm_harness
from .testbench import jobs as job_count
from .testbench import load_config, random_ints, seed, write_results


def compress(config: NMSparseGemmConfig, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, indices = compress_nm(torch.from_numpy(w), config.n, config.m)
    return values.numpy(), indices.numpy()


def submit_sparse(harness: GemmHarness, a: np.ndarray, values: np.ndarray,
                  indices: np.ndarray, golden: np.ndarray, name: str) -> int:
    """Queue C = A·Wᵀ with W given compressed; returns the job's beats."""
    a_beats, b_values, b_indices = gemm_beats(harness.config, a, values=values, indices=indices)
    harness.submit({"m": a.shape[0], "k": a.shape[1], "n": values.shape[0], "dense": 0},
                   a_beats.tolist(), weight_group_beats(b_values, b_indices), golden, name)
    return len(a_beats)


def submit_pruned(harness: GemmHarness, a: np.ndarray, w: np.ndarray, name: str) -> int:
    """Prune W to the config's N:M along K, compress, and queue C = A·W_prunedᵀ."""
    cfg = harness.config
    pruned = prune_nm(torch.from_numpy(w), cfg.n, cfg.m).numpy()
    values, indices = compress(cfg, pruned)
    golden = nm_gemm_exact(torch.from_numpy(a), torch.from_numpy(values),
                           torch.from_numpy(indices), cfg.n, cfg.m, a.shape[1]).numpy()
    return submit_sparse(harness, a, values, indices, golden, name)


def submit_dense(harness: GemmHarness, a: np.ndarray, w: np.ndarray, name: str) -> int:
    """Queue C = A·Wᵀ in dense mode (W uncompressed)."""
    a_beats, b_values, b_indices = gemm_beats(harness.config, a, w=w)
    golden = gemm_int_exact(torch.from_numpy(a), torch.from_numpy(w).T).numpy()
    harness.submit({"m": a.shape[0], "k": a.shape[1], "n": w.shape[0], "dense": 1},
                   a_beats.tolist(), weight_group_beats(b_values, b_indices), golden, name)
    return len(a_beats)


async def _start(dut, gap: float | None = None) -> GemmHarness:
    config = load_config(NMSparseGemmConfig)
    return await start_gemm_harness(dut, config, sparse_gemm_signature(config), gap)


@cocotb.test()
async def random_jobs(dut):
    """Sparse and dense jobs of random shapes (K not a multiple of M), extremes, a BDWP
    forward/backward pair, random gaps and back-pressure."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed())
    lo, hi = -(1 << (cfg.width - 1)), (1 << (cfg.width - 1)) - 1
    R, C, M = cfg.rows, cfg.cols, cfg.m
    for index in range(job_count(6)):
        rows, k, out = (int(rng.integers(1, 2 * d + 3)) for d in (R, 3 * M, C))
        a, w = random_ints(rng, (rows, k), cfg.width), random_ints(rng, (out, k), cfg.width)
        if index % 3 == 2:
            submit_dense(harness, a, w, f"dense#{index}")
        else:
            submit_pruned(harness, a, w, f"sparse#{index}")
    # Extremes: long runs of min·min and max·min products, in both modes; K = 1; zeros.
    k_long = 5 * M + 3
    submit_pruned(harness, np.full((R + 1, k_long), lo), np.full((C + 1, k_long), lo), "min*min")
    submit_dense(harness, np.full((2, k_long), lo), np.full((C, k_long), lo), "dense min*min")
    submit_pruned(harness, np.full((1, k_long), hi), np.full((2, k_long), lo), "max*min")
    submit_pruned(harness, random_ints(rng, (R, 1), cfg.width),
                  random_ints(rng, (C, 1), cfg.width), "k=1")
    submit_dense(harness, random_ints(rng, (1, 1), cfg.width),
                 random_ints(rng, (1, 1), cfg.width), "dense 1x1x1")
    submit_pruned(harness, np.zeros((2, M + 1), dtype=np.int64),
                  random_ints(rng, (C, M + 1), cfg.width), "zeros")
    # SAT's bidirectional pruning: forward y = x·(W⊙fwd)ᵀ, backward dx = g·(W⊙bwd) — the
    # backward operand is (W⊙bwd)ᵀ, N:M along W's output dimension (the transposed mode).
    out, inputs, batch = 2 * C + 1, 3 * M + 2, R + 2
    w = torch.from_numpy(random_ints(rng, (out, inputs), cfg.width))
    forward_mask, backward_mask = bdwp_masks(w, cfg.n, cfg.m)
    x = random_ints(rng, (batch, inputs), cfg.width)
    g = random_ints(rng, (batch, out), cfg.width)
    w_forward = (w * forward_mask).numpy()
    w_backward_t = (w * backward_mask).T.contiguous().numpy()
    for name, act, weight in (("bdwp forward", x, w_forward), ("bdwp backward", g, w_backward_t)):
        values, indices = compress(cfg, weight)
        golden = gemm_int_exact(torch.from_numpy(act), torch.from_numpy(weight).T).numpy()
        submit_sparse(harness, act, values, indices, golden, name)
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    assert counters["operand_errors"] == 0, counters
    # Starved and blocked are exclusive; stall also counts the drain wait of short folds.
    assert counters["stall_cycles"] >= (counters["stall_in_cycles"]
                                        + counters["stall_out_cycles"]), counters
    write_results({"test": "random_jobs", "jobs": harness.scoreboard.checked, "seed": seed(),
                   **counters})


@cocotb.test()
async def counters_exact_when_unimpeded(dut):
    """Inputs always valid, output always ready: busy cycles equal the beats (ceil(K/M) per
    fold in sparse mode, ceil(K/dense_group) in dense mode), nothing stalls, fill and drain
    stay bounded."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 1)
    # At least R beats per fold, or the column drain (R steps) makes folds wait.
    rows, k, out = 2 * cfg.rows + 1, max(6, cfg.rows + 1) * cfg.m + 3, 2 * cfg.cols + 1
    folds = -(-rows // cfg.rows) * -(-out // cfg.cols)
    a, w = random_ints(rng, (rows, k), cfg.width), random_ints(rng, (out, k), cfg.width)
    beats = submit_pruned(harness, a, w, "unimpeded sparse")
    assert beats == folds * -(-k // cfg.m), beats
    await harness.run()
    sparse = harness.counters()
    beats_dense = submit_dense(harness, a, w, "unimpeded dense")
    assert beats_dense == folds * -(-k // cfg.dense_group), beats_dense
    await harness.run()
    harness.scoreboard.finish()
    total = harness.counters()
    write_results({"test": "counters_exact_when_unimpeded", "m": rows, "k": k, "n": out,
                   "beats": beats, "beats_dense": beats_dense, **total})
    assert sparse["busy_cycles"] == beats, sparse
    assert total["busy_cycles"] == beats + beats_dense, total
    assert total["stall_cycles"] == total["stall_in_cycles"] == total["stall_out_cycles"] == 0
    bound = 3 * (cfg.rows + cfg.cols) + 12
    assert 0 < sparse["cycles"] - beats <= bound, sparse


@cocotb.test()
async def malformed_groups_flagged(dut):
    """Compressed groups with two values on one index (or indices out of order) count in
    ``operand_errors`` and multiply as zero; the rest of the job stays exact."""
    harness = await _start(dut)
    cfg = harness.config
    if cfg.n == 1:
        dut._log.info("n = 1: a group has one index, so no index can repeat")
        return
    rng = np.random.default_rng(seed() + 3)
    rows, k, out = cfg.rows, 4 * cfg.m, cfg.cols + 1
    a, w = random_ints(rng, (rows, k), cfg.width), random_ints(rng, (out, k), cfg.width)
    pruned = prune_nm(torch.from_numpy(w), cfg.n, cfg.m).numpy()
    values, indices = compress(cfg, pruned)
    groups = values.reshape(out, -1, cfg.n)
    bad_indices = indices.reshape(out, -1, cfg.n).copy()
    broken = [(0, 1), (out - 1, 0), (out - 1, 3)]
    for row, group in broken:
        bad_indices[row, group, 1] = bad_indices[row, group, 0]   # two values, one index
    zeroed = groups.copy()
    for row, group in broken:
        zeroed[row, group] = 0
    golden = nm_gemm_exact(torch.from_numpy(a), torch.from_numpy(zeroed.reshape(out, -1)),
                           torch.from_numpy(indices), cfg.n, cfg.m, k).numpy()
    submit_sparse(harness, a, values, bad_indices.reshape(out, -1), golden, "malformed")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.counters()
    # Columns 0 and out−1 of W lie in different tile columns (out = C + 1): the three broken
    # groups arrive in three different beats.
    assert counters["operand_errors"] == len(broken), counters


@cocotb.test()
async def largest_k(dut):
    """K at the descriptor's maximum (2**16 − 1): beat counter and accumulator at their
    extremes (every product min·min)."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    k = (1 << 16) - 1
    lo = -(1 << (cfg.width - 1))
    submit_pruned(harness, np.full((1, k), lo), np.full((1, k), lo), "K max sparse")
    submit_dense(harness, np.full((1, k), lo), np.full((1, k), lo), "K max dense")
    await harness.run(timeout=4 * k)
    harness.scoreboard.finish()


@cocotb.test()
async def reset_mid_job(dut):
    """A reset in the middle of a job, then a clean job that must be exact."""
    harness = await _start(dut)
    cfg = harness.config
    rng = np.random.default_rng(seed() + 2)
    k = 4 * cfg.m + 5
    a = random_ints(rng, (3 * cfg.rows, k), cfg.width)
    w = random_ints(rng, (2 * cfg.cols + 1, k), cfg.width)
    beats = submit_pruned(harness, a, w, "interrupted")
    await harness.bench.run_until(lambda: harness.a.sent >= beats // 2, timeout=100_000)
    await harness.reset()
    submit_pruned(harness, w, a, "after reset")
    await harness.run()
    harness.scoreboard.finish()


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim --inputs`: a and dense w; w pruned to N:M along K unless it already
    is, compressed, run through the RTL; results to an npz."""
    harness = await _start(dut, gap=0.0)
    cfg = harness.config
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        a, w = inputs["a"].astype(np.int64), inputs["w"].astype(np.int64)
    pruned = prune_nm(torch.from_numpy(w), cfg.n, cfg.m).numpy()   # unchanged if already N:M
    values, indices = compress(cfg, pruned)
    golden = nm_gemm_exact(torch.from_numpy(a), torch.from_numpy(values),
                           torch.from_numpy(indices), cfg.n, cfg.m, a.shape[1]).numpy()
    submit_sparse(harness, a, values, indices, golden, "user")
    await harness.run(timeout=100_000_000)
    harness.scoreboard.finish()
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], w_pruned=pruned, values=values, indices=indices,
             c=harness.results[0], c_golden=golden,
             **{name: np.int64(value) for name, value in counters.items()})
    write_results({"test": "user_inputs", "m": a.shape[0], "k": a.shape[1], "n": w.shape[0],
                   **counters})
