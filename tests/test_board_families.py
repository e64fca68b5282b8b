"""`tensorgates run` against the co-simulated board top (UART host bridge + block) for every
block family beside systolic_gemm (tests/test_board.py covers that one): inputs in over the
simulated UART, results out, equal to the golden model computed here; the bridge answers a
framing error, an unknown command (and the other injected errors) slipped in between the
driver's frames, and recovers.

The default tier runs one block per family on Verilator (nm_sparse_gemm, mx_quant, attention,
pim), at small configs; the other blocks and the Icarus runs are `full`.
"""
import math

import numpy as np
import pytest
import torch
from sim_cli import require, same_values

from gateware.host_adapters import ADAPTERS
from gateware.registry import BLOCKS, load

SEED = 9127

#: Small points (they fit an iCE40 UP5K where a block has one) and a seed per block.
POINTS = {
    "nm_sparse_gemm": {"rows": "1", "cols": "2", "n": "2", "m": "4"},
    "nm_sparse_mac": {"n": "2", "m": "4"},
    # stochastic rounding: the LFSRs must restart with the stream (the driver's RESET)
    "mx_quant": {"format": "fp4_e2m1", "lanes": "2", "block_size": "8",
                 "rounding": "stochastic"},
    "mx_dequant": {"format": "fp8_e4m3", "lanes": "2", "block_size": "8"},
    "kivi_quant": {"bits": "2", "lanes": "2", "group": "8"},
    "attention": {"rows": "2", "cols": "2", "max_head_dim": "16"},
    "pim": {"banks": "2", "rows": "4", "columns": "4", "column_bits": "64", "lanes": "2",
            "unit": "pair", "x_words": "256"},
}
DEFAULT = ("nm_sparse_gemm", "mx_quant", "attention", "pim")


def _inputs(block: str, config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs that exercise each block's corners at a size the UART moves in seconds."""
    width = getattr(config, "width", 8)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    if block == "nm_sparse_gemm":
        # K not a multiple of M, rows beyond the array, the most negative operands
        a = rng.integers(lo, hi, (3, 11))
        a[0] = lo
        return {"a": a, "w": rng.integers(lo, hi, (3, 11))}
    if block == "nm_sparse_mac":
        return {"a": rng.integers(lo, hi, (3, 9)), "w": rng.integers(lo, hi, (3, 9))}
    if block == "mx_quant":
        x = rng.standard_normal((2, 16)).astype(np.float32) * np.float32(2.0 ** 60)
        x[1, :8] *= np.float32(2.0 ** -100)            # a block far below the other
        x[1, 9] = 0.0
        x[1, 12] = np.inf                               # a NaN-scale block
        return {"x": x}
    if block == "mx_dequant":
        codes = rng.integers(0, 256, (2, 16)).astype(np.uint8)
        codes[0, :2] = (0x7F, 0xFF)                     # the two NaN codes of E4M3
        return {"scale": np.array([[127, 0], [254, 255]], np.uint8), "codes": codes}
    if block == "kivi_quant":
        x = rng.standard_normal((8, 4)).astype(np.float32)
        x[3, 2] = np.nan                                # a flagged group
        return {"x": x, "axis": np.array("channel")}
    if block == "attention":
        # GQA (2 query heads on a key/value head), Nq and Nkv not multiples of the array
        return {"q": rng.integers(lo, hi, (2, 3, 5)), "k": rng.integers(lo, hi, (1, 3, 5)),
                "v": rng.integers(lo, hi, (1, 3, 5)), "causal": np.array(True)}
    if block == "pim":
        # a batch-2 GEMV: W loaded by raw writes, then the sequencer
        return {"w": rng.integers(-128, 128, (5, 7)).astype(np.int8),
                "x": rng.integers(-128, 128, (2, 7)).astype(np.int8)}
    raise AssertionError(block)


def _golden(block: str, config, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The golden model's outputs, computed here from golden/ (not through the adapter)."""
    if block in ("nm_sparse_gemm", "nm_sparse_mac"):
        from golden.nm_sparse import compress_nm, nm_gemm_exact, prune_nm
        a, w = torch.from_numpy(inputs["a"]), torch.from_numpy(inputs["w"])
        pruned = prune_nm(w, config.n, config.m)
        values, indices = compress_nm(pruned, config.n, config.m)
        c = nm_gemm_exact(a, values, indices, config.n, config.m, a.shape[1]).numpy()
        out = {"w_pruned": pruned.numpy(), "values": values.numpy(),
               "indices": indices.numpy()}
        if block == "nm_sparse_gemm":
            return {**out, "c": c}
        half = 1 << (config.acc_width - 1)
        return {**out, "sum": (c.diagonal() + half) % (2 * half) - half}
    if block == "mx_quant":
        from golden.mx import mx_dequantize, mx_quantize
        x = torch.from_numpy(inputs["x"]).to({"fp32": torch.float32, "bf16": torch.bfloat16,
                                              "fp16": torch.float16}[config.input])
        scale, codes = mx_quantize(x, config.format, config.block_size, config.rounding,
                                   lanes=config.lanes)
        return {"scale": scale, "codes": codes,
                "x_hat": mx_dequantize(scale, codes, config.format, config.block_size)}
    if block == "mx_dequant":
        from golden.mx import mx_dequantize
        return {"x_hat": mx_dequantize(inputs["scale"], inputs["codes"], config.format,
                                       config.block_size)}
    if block == "kivi_quant":
        from golden.kivi import kivi_dequantize, kivi_quantize
        x = torch.from_numpy(inputs["x"]).to({"fp32": torch.float32, "bf16": torch.bfloat16,
                                              "fp16": torch.float16}[config.input])
        axis = str(inputs["axis"])
        result = kivi_quantize(x, config.bits, config.group, axis)
        return {"codes": result["codes"], "range": result["range"],
                "exponent": result["exponent"], "error": result["error"],
                "minimum_fixed": result["minimum"],
                "x_hat": kivi_dequantize(result, config.bits, config.group, axis).numpy()}
    if block == "attention":
        from golden.attention import attention_exact
        from hdl.attention.layout import scale_to_fixed
        q, k, v = (torch.from_numpy(inputs[key]) for key in ("q", "k", "v"))
        return {"o": attention_exact(q, k, v, config=config,
                                     scale_fixed=scale_to_fixed(1 / math.sqrt(q.shape[2])),
                                     causal=bool(inputs.get("causal", False))).numpy()}
    if block == "pim":
        from golden.pim import gemv_exact
        y = gemv_exact(torch.from_numpy(inputs["w"]), torch.from_numpy(inputs["x"]), config)
        exact = inputs["x"].astype(np.int64) @ inputs["w"].astype(np.int64).T
        assert np.array_equal(y.numpy(), exact.astype(np.int32))
        return {"y": y.numpy()}
    raise AssertionError(block)


def _run(tmp_path, block: str, simulator: str, *, random_inputs: bool = False) -> None:
    """``tensorgates run`` on the co-simulated board: this test's inputs with errors injected
    between the driver's frames, or (``random_inputs``) the driver's own random inputs."""
    from sim.board_cosim import run_board_cosim
    require(simulator)
    entry = BLOCKS[block]
    config = entry.config(POINTS[block])
    seed = SEED + list(BLOCKS).index(block)
    print(f"seed {seed}; {config.slug()} on {simulator}")
    if random_inputs:
        # the driver's inputs: the adapter's random_inputs from --seed
        inputs = ADAPTERS[block].random_inputs(config, np.random.default_rng(seed))
        code, outputs, log = run_board_cosim(block, POINTS[block], None, simulator, seed=seed,
                                             timeout=300.0)
    else:
        inputs = _inputs(block, config, np.random.default_rng(seed))
        path = tmp_path / "in.npz"
        np.savez(path, **inputs)
        code, outputs, log = run_board_cosim(block, POINTS[block], path, simulator, seed=seed,
                                             inject=True, timeout=300.0)
    load(entry.check_inputs)(config, inputs)
    print(log)
    assert code == 0, log
    golden = _golden(block, config, inputs)
    for key, want in golden.items():
        assert key in outputs, (key, sorted(outputs))
        assert same_values(outputs[key], want), f"{key}: board {outputs[key]}, golden {want}"
        assert same_values(outputs[f"{key}_golden"], want), key
    assert set(entry.output_keys) & set(golden)
    # every board output the driver wrote equals its golden twin (the adapter's extras too)
    for key in ADAPTERS[block].golden(config, inputs):
        assert same_values(outputs[key], outputs[f"{key}_golden"]), key


@pytest.mark.parametrize("block", DEFAULT)
def test_family_over_uart(tmp_path, block):
    """One block per family on Verilator. ``inject``: sim.tb_board slips a framing error, an
    unknown command, an oversize frame, a bad CRC and an incomplete frame between the driver's
    frames, checks each reply's status and fails the run otherwise; the run must still pass."""
    _run(tmp_path, block, "verilator")


@pytest.mark.full
@pytest.mark.parametrize("block", [b for b in POINTS if b not in DEFAULT])
def test_other_blocks_over_uart(tmp_path, block):
    _run(tmp_path, block, "verilator")


@pytest.mark.full
@pytest.mark.parametrize("block", list(POINTS))
def test_family_over_uart_icarus(tmp_path, block):
    _run(tmp_path, block, "icarus")


@pytest.mark.full
@pytest.mark.parametrize("block", list(POINTS))
def test_random_inputs_over_uart(tmp_path, block):
    """Without --inputs: the driver's random inputs (the adapter's, from --seed)."""
    _run(tmp_path, block, "verilator", random_inputs=True)


@pytest.mark.full
def test_pim_raw_trace_over_uart(tmp_path):
    """pim's other input form: a raw command trace (legal and illegal commands, unsorted), its
    per-command decisions and read data equal to golden run_trace's, errors injected."""
    import random

    from golden.pim import commands_to_table, run_trace
    from sim.board_cosim import run_board_cosim
    from sim.pim_traces import illegal_streams, quiet_cycles, shifted
    require("verilator")
    config = BLOCKS["pim"].config(POINTS["pim"])
    # streams of commands each rejected by one rule (and offered again once legal), one after
    # the other
    streams = illegal_streams(config, random.Random(SEED))
    commands = []
    for rule in ("port", "code", "row_conflict", "tRCD"):
        origin = max(c.cycle for c in commands) + 1 + quiet_cycles(config) if commands else 0
        commands += shifted(streams[rule], origin)
    table = commands_to_table(commands, config)
    table = table[np.random.default_rng(SEED).permutation(len(table))]
    np.savez(tmp_path / "in.npz", commands=table)
    code, outputs, log = run_board_cosim("pim", POINTS["pim"], tmp_path / "in.npz", "verilator",
                                         seed=SEED, inject=True, timeout=300.0)
    print(log)
    assert code == 0, log
    golden = run_trace(table, config)
    for key in ("accepted", "rule", "has_read", "read_data", "rejected_by_rule"):
        assert same_values(outputs[key], golden[key]), key
    for key in ("accepted_count", "rejected_count", "triggers", "refreshes",
                "illegal_instructions"):
        assert int(outputs[key]) == int(golden[key]), (key, outputs[key], golden[key])
    assert int(golden["rejected_count"]) > 0 and int(golden["accepted_count"]) > 0


@pytest.mark.full
def test_systolic_weight_stationary_over_uart(tmp_path):
    """systolic_gemm's other dataflow (tests/test_board.py runs output-stationary): the
    adapter's weight-stationary beat order (passes of R weight rows, chunks of A) through the
    bridge, M and K beyond the chunk and the array, errors injected."""
    from golden.gemm import gemm_int_exact
    from sim.board_cosim import run_board_cosim
    require("verilator")
    settings = {"rows": "2", "cols": "2", "dataflow": "weight_stationary", "chunk": "4"}
    rng = np.random.default_rng(SEED)
    a, b = rng.integers(-128, 128, (5, 7)), rng.integers(-128, 128, (7, 3))
    np.savez(tmp_path / "in.npz", a=a, b=b)
    code, outputs, log = run_board_cosim("systolic_gemm", settings, tmp_path / "in.npz",
                                         "verilator", seed=SEED, inject=True, timeout=300.0)
    print(log)
    assert code == 0, log
    want = gemm_int_exact(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert same_values(outputs["c"], want)
