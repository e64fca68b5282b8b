"""Host adapters: a block's npz tensors ↔ the beats of its streams over the UART host bridge.

``tensorgates run`` (``tensorgates.host``) drives a board top (the block behind the bridge,
``gateware.host_bridge``) with the same npz conventions as ``tensorgates sim --inputs /
--outputs``. The bridge is generic: it moves packed beats (``sim.payload.pack`` integers) in and
out of the block's streams by name. What a block's beats mean is here, one :class:`HostAdapter`
per registered block (the registry's ``host`` field names it). Every adapter only composes what
the testbenches use: the family's ``layout`` module (beat order), the RTL's own payload layouts
(from the component's signature) and the golden model, so the board, the co-simulation and
the golden model cannot drift apart.

Imports no cocotb (a host talking to a board has none); torch only through the golden models.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hdl.common.config import BlockConfig
from sim.payload import pack, unpack

__all__ = ["ADAPTERS", "ATTENTION", "KIVI_QUANT", "MX_DEQUANT", "MX_QUANT", "NM_SPARSE_GEMM",
           "NM_SPARSE_MAC", "PIM", "SYSTOLIC_GEMM", "HostAdapter", "Stage", "counter_arrays",
           "payload_layouts", "stages_of"]

#: One stage of a run: the input beats to write (stream → packed beats) and the output beats
#: to read (stream → count) before the next stage starts.
Stage = tuple[dict[str, list[int]], dict[str, int]]


@dataclass(frozen=True)
class HostAdapter:
    # inputs the driver makes when --inputs is not given (same keys/dtypes as entry.input_keys)
    random_inputs: Callable[[BlockConfig, np.random.Generator], dict[str, np.ndarray]]
    # input stream name (signature member) -> the packed beat integers, in order
    encode: Callable[[BlockConfig, dict[str, np.ndarray]], dict[str, list[int]]]
    # output stream name -> how many beats to read
    expected_beats: Callable[[BlockConfig, dict[str, np.ndarray]], dict[str, int]]
    # (inputs, output stream name -> packed beat integers) -> arrays keyed by entry.output_keys
    # (and the extra arrays `tensorgates sim --outputs` writes beside them, e.g. kivi's metadata)
    decode: Callable[[BlockConfig, dict[str, np.ndarray], dict[str, list[int]]],
                     dict[str, np.ndarray]]
    # the bit-exact golden model's outputs for these inputs, same keys as decode
    golden: Callable[[BlockConfig, dict[str, np.ndarray]], dict[str, np.ndarray]]
    # the output beats that carry the golden outputs (stream -> packed beats, in an order the
    # block may emit them): the tests check expected_beats and decode against it
    golden_beats: Callable[[BlockConfig, dict[str, np.ndarray]], dict[str, list[int]]]
    # None: every stream is independent, so encode and expected_beats run as one stage under
    # the driver's generic flow control. Otherwise the stages in order: each stage's output
    # beats are all read before the next stage's input beats are written (PIM: W's load must be
    # decided before the GEMV descriptor starts the sequencer, which then owns port P).
    stages: Callable[[BlockConfig, dict[str, np.ndarray]], list[Stage]] | None = None
    # the block's counters (name -> value) as the npz arrays `sim --outputs` writes beside the
    # outputs; None: under their own names (PIM renames ``cycles`` and the like, which its
    # outputs already use)
    counter_outputs: Callable[[dict[str, int]], dict[str, np.ndarray]] | None = None


def stages_of(adapter: HostAdapter, config: BlockConfig,
              inputs: dict[str, np.ndarray]) -> list[Stage]:
    """The stages a driver runs: the adapter's own, or encode and expected_beats as one."""
    if adapter.stages is not None:
        return adapter.stages(config, inputs)
    return [(adapter.encode(config, inputs), adapter.expected_beats(config, inputs))]


def counter_arrays(adapter: HostAdapter, counters: dict[str, int]) -> dict[str, np.ndarray]:
    """The counters as the npz scalars a driver writes: the adapter's names, else their own."""
    if adapter.counter_outputs is not None:
        return dict(adapter.counter_outputs(counters))
    return {name: np.int64(value) for name, value in counters.items()}


# --------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=32)
def _layouts(name: str, config: BlockConfig) -> dict[str, Any]:
    from amaranth.lib import stream

    from gateware.registry import BLOCKS
    component = BLOCKS[name].build(config)
    component._MustUse__silence = True   # built for its signature only, never elaborated
    return {member: m.signature.members["payload"].shape
            for member, m in component.signature.members.items()
            if m.is_signature and isinstance(m.signature, stream.Signature)}


def payload_layouts(name: str, config: BlockConfig) -> dict[str, Any]:
    """Stream name → payload layout of block ``name`` (the RTL's own ``amaranth.lib.data``
    layouts, from the component's signature)."""
    return dict(_layouts(name, config))


def _pack_all(layout: Any, values) -> list[int]:
    return [pack(layout, value) for value in values]


def _unpack_all(layout: Any, beats: list[int]) -> list:
    return [unpack(layout, int(bits)) for bits in beats]


def _check(name: str, config: BlockConfig, inputs: dict[str, np.ndarray]) -> None:
    from gateware.registry import BLOCKS, load
    load(BLOCKS[name].check_inputs)(config, inputs)


def _beats_of(output: dict[str, list[int]], stream_name: str, count: int) -> list[int]:
    beats = list(output.get(stream_name, []))
    if len(beats) != count:
        raise ValueError(f"stream {stream_name!r}: {len(beats)} beats read, {count} expected")
    return beats


def _random_ints(rng: np.random.Generator, shape, width: int) -> np.ndarray:
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    return rng.integers(lo, hi, size=shape, dtype=np.int64)


def _torch():
    import torch
    return torch


# --------------------------------------------------------------------------------- systolic_gemm


def _gemm_random(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    m, k, n = (int(rng.integers(1, 2 * d + 2)) for d in (config.rows, config.rows, config.cols))
    return {"a": _random_ints(rng, (m, k), config.width),
            "b": _random_ints(rng, (k, n), config.width)}


def _gemm_ab(inputs) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(inputs["a"]).astype(np.int64), np.asarray(inputs["b"]).astype(np.int64)


def _gemm_encode(config, inputs) -> dict[str, list[int]]:
    from hdl.systolic.layout import operand_beats
    _check("systolic_gemm", config, inputs)
    a, b = _gemm_ab(inputs)
    layouts = _layouts("systolic_gemm", config)
    a_beats, b_beats = operand_beats(config, a, b)
    return {"desc": _pack_all(layouts["desc"], [{"m": a.shape[0], "k": a.shape[1],
                                                 "n": b.shape[1]}]),
            "a": _pack_all(layouts["a"], a_beats.tolist()),
            "b": _pack_all(layouts["b"], b_beats.tolist())}


def _result_rows(config, m: int, n: int) -> int:
    """Result beats of an M×N job: one per row and tile column (segments of ``cols``)."""
    return m * -(-n // config.cols)


def _result_beats(name: str, config, c: np.ndarray) -> list[int]:
    """C's result beats in row-major segment order, ``last`` on the final one."""
    m, n = c.shape
    layout = _layouts(name, config)["c"]
    beats = []
    for row in range(m):
        for col in range(0, n, config.cols):
            lanes = [0] * config.cols
            segment = c[row, col:col + config.cols].tolist()
            lanes[:len(segment)] = segment
            beats.append({"data": lanes, "row": row, "col": col, "last": 0})
    beats[-1]["last"] = 1
    return _pack_all(layout, beats)


def _assemble_c(name: str, config, m: int, n: int, beats: list[int]) -> np.ndarray:
    """C from its result beats (``hdl.systolic.layout.assemble_result``); ``ValueError`` when the
    block broke its protocol (a row missing or repeated, ``last`` not on the final beat)."""
    from hdl.systolic.layout import assemble_result
    items = _unpack_all(_layouts(name, config)["c"], beats)
    lasts = [item["last"] for item in items]
    if lasts != [0] * (len(items) - 1) + [1]:
        raise ValueError(f"{name}: `last` on beats {np.nonzero(lasts)[0].tolist()}, expected "
                         f"only on beat {len(items) - 1}")
    return assemble_result(config, m, n, [(item["row"], item["col"], item["data"])
                                          for item in items])


def _gemm_expected(config, inputs) -> dict[str, int]:
    a, b = _gemm_ab(inputs)
    return {"c": _result_rows(config, a.shape[0], b.shape[1])}


def _gemm_golden(config, inputs) -> dict[str, np.ndarray]:
    from golden.gemm import gemm_int_exact
    torch = _torch()
    a, b = _gemm_ab(inputs)
    return {"c": gemm_int_exact(torch.from_numpy(a), torch.from_numpy(b)).numpy()}


def _gemm_decode(config, inputs, output) -> dict[str, np.ndarray]:
    a, b = _gemm_ab(inputs)
    m, n = a.shape[0], b.shape[1]
    return {"c": _assemble_c("systolic_gemm", config, m, n,
                             _beats_of(output, "c", _result_rows(config, m, n)))}


SYSTOLIC_GEMM = HostAdapter(
    random_inputs=_gemm_random,
    encode=_gemm_encode,
    expected_beats=_gemm_expected,
    decode=_gemm_decode,
    golden=_gemm_golden,
    golden_beats=lambda config, inputs: {
        "c": _result_beats("systolic_gemm", config, _gemm_golden(config, inputs)["c"])},
)


# ----------------------------------------------------------------------- nm_sparse_gemm and _mac


def _sparse_random(config, rng: np.random.Generator, *, same_rows: bool) -> dict[str, np.ndarray]:
    rows_a = int(rng.integers(1, 2 * getattr(config, "rows", 2) + 2))
    k = int(rng.integers(1, 3 * config.m + 2))
    rows_w = rows_a if same_rows else int(rng.integers(1, 2 * config.cols + 2))
    return {"a": _random_ints(rng, (rows_a, k), config.width),
            "w": _random_ints(rng, (rows_w, k), config.width)}


def _sparse_weights(config, inputs) -> dict[str, np.ndarray]:
    """w pruned to the config's N:M along K (unchanged if it already is) and compressed: the
    ``w_pruned``, ``values`` and ``indices`` that ``sim --outputs`` writes."""
    from golden.nm_sparse import compress_nm, prune_nm
    torch = _torch()
    w = torch.from_numpy(np.asarray(inputs["w"]).astype(np.int64))
    pruned = prune_nm(w, config.n, config.m)
    values, indices = compress_nm(pruned, config.n, config.m)
    return {"w_pruned": pruned.numpy(), "values": values.numpy(), "indices": indices.numpy()}


def _sparse_a(inputs) -> np.ndarray:
    return np.asarray(inputs["a"]).astype(np.int64)


def _sparse_gemm_encode(config, inputs) -> dict[str, list[int]]:
    from hdl.sparse.layout import gemm_beats, weight_group_beats
    _check("nm_sparse_gemm", config, inputs)
    a, weights = _sparse_a(inputs), _sparse_weights(config, inputs)
    layouts = _layouts("nm_sparse_gemm", config)
    a_beats, b_values, b_indices = gemm_beats(config, a, values=weights["values"],
                                              indices=weights["indices"])
    return {"desc": _pack_all(layouts["desc"], [{"m": a.shape[0], "k": a.shape[1],
                                                 "n": weights["values"].shape[0], "dense": 0}]),
            "a": _pack_all(layouts["a"], a_beats.tolist()),
            "b": _pack_all(layouts["b"], weight_group_beats(b_values, b_indices))}


def _sparse_gemm_expected(config, inputs) -> dict[str, int]:
    return {"c": _result_rows(config, np.shape(inputs["a"])[0], np.shape(inputs["w"])[0])}


def _sparse_gemm_golden(config, inputs) -> dict[str, np.ndarray]:
    from golden.nm_sparse import nm_gemm_exact
    torch = _torch()
    a, weights = _sparse_a(inputs), _sparse_weights(config, inputs)
    c = nm_gemm_exact(torch.from_numpy(a), torch.from_numpy(weights["values"]),
                      torch.from_numpy(weights["indices"]), config.n, config.m, a.shape[1])
    return {**weights, "c": c.numpy()}


def _sparse_gemm_decode(config, inputs, output) -> dict[str, np.ndarray]:
    m, n = np.shape(inputs["a"])[0], np.shape(inputs["w"])[0]
    c = _assemble_c("nm_sparse_gemm", config, m, n,
                    _beats_of(output, "c", _result_rows(config, m, n)))
    return {**_sparse_weights(config, inputs), "c": c}


NM_SPARSE_GEMM = HostAdapter(
    random_inputs=lambda config, rng: _sparse_random(config, rng, same_rows=False),
    encode=_sparse_gemm_encode,
    expected_beats=_sparse_gemm_expected,
    decode=_sparse_gemm_decode,
    golden=_sparse_gemm_golden,
    golden_beats=lambda config, inputs: {
        "c": _result_beats("nm_sparse_gemm", config, _sparse_gemm_golden(config, inputs)["c"])},
)


def _mac_encode(config, inputs) -> dict[str, list[int]]:
    from hdl.sparse.layout import mac_beats
    _check("nm_sparse_mac", config, inputs)
    weights = _sparse_weights(config, inputs)
    beats = mac_beats(config, _sparse_a(inputs), weights["values"], weights["indices"])
    return {"i": _pack_all(_layouts("nm_sparse_mac", config)["i"], beats)}


def _mac_golden(config, inputs) -> dict[str, np.ndarray]:
    from hdl.sparse.layout import mac_golden_sums
    weights = _sparse_weights(config, inputs)
    return {**weights, "sum": mac_golden_sums(config, _sparse_a(inputs), weights["values"],
                                              weights["indices"])}


def _mac_decode(config, inputs, output) -> dict[str, np.ndarray]:
    p = np.shape(inputs["a"])[0]
    items = _unpack_all(_layouts("nm_sparse_mac", config)["o"], _beats_of(output, "o", p))
    # `error` flags a malformed compressed group; the host compresses W itself, so it never
    # should: a flagged result is a wrong result (its group counted as zero)
    flagged = [index for index, item in enumerate(items) if item["error"]]
    if flagged:
        raise ValueError(f"nm_sparse_mac: results {flagged} flagged a malformed group")
    return {**_sparse_weights(config, inputs),
            "sum": np.array([item["sum"] for item in items], dtype=np.int64)}


NM_SPARSE_MAC = HostAdapter(
    random_inputs=lambda config, rng: _sparse_random(config, rng, same_rows=True),
    encode=_mac_encode,
    expected_beats=lambda config, inputs: {"o": int(np.shape(inputs["a"])[0])},
    decode=_mac_decode,
    golden=_mac_golden,
    golden_beats=lambda config, inputs: {"o": _pack_all(
        _layouts("nm_sparse_mac", config)["o"],
        [{"sum": int(s), "error": 0} for s in _mac_golden(config, inputs)["sum"]])},
)


# ------------------------------------------------------------------------------------ mx_quant


def _float_random(rng: np.random.Generator, rows: int, cols: int, block: int) -> np.ndarray:
    """float32 values, each block at its own magnitude (as the testbenches' random blocks)."""
    scale = np.exp2(rng.integers(-20, 20, size=(rows, cols // block, 1)))
    values = rng.standard_normal((rows, cols // block, block)) * scale
    return values.reshape(rows, cols).astype(np.float32)


def _input_beats(config, x) -> np.ndarray:
    """The element bit patterns of x (in the block's input type), [beats, lanes]."""
    from sim.quant_data import as_input_bits, to_input_type
    return as_input_bits(to_input_type(np.asarray(x), config.input)).reshape(-1, config.lanes)


def _mx_random(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = int(rng.integers(1, 4))
    cols = config.block_size * int(rng.integers(1, 3))
    return {"x": _float_random(rng, rows, cols, config.block_size)}


def _mx_encode(config, inputs) -> dict[str, list[int]]:
    _check("mx_quant", config, inputs)
    return {"i": _pack_all(_layouts("mx_quant", config)["i"],
                           _input_beats(config, inputs["x"]).tolist())}


def _mx_beats(config, inputs) -> int:
    return int(np.size(inputs["x"])) // config.lanes


def _mx_golden(config, inputs) -> dict[str, np.ndarray]:
    from golden.mx import mx_quantize
    from sim.quant_data import mx_quant_outputs, to_input_type
    x = to_input_type(np.asarray(inputs["x"]), config.input)
    scale, codes = mx_quantize(x, config.format, config.block_size, config.rounding,
                               lanes=config.lanes)
    return mx_quant_outputs(config, scale, codes)


def _mx_decode(config, inputs, output) -> dict[str, np.ndarray]:
    from sim.quant_data import mx_quant_outputs, quant_blocks
    items = _unpack_all(_layouts("mx_quant", config)["o"],
                        _beats_of(output, "o", _mx_beats(config, inputs)))
    blocks = quant_blocks(items, config.beats_per_block, ("scale",))
    rows, cols = np.shape(inputs["x"])
    scale = blocks[:, 0].astype(np.uint8).reshape(rows, cols // config.block_size)
    codes = blocks[:, 1:].astype(np.uint8).reshape(rows, cols)
    return mx_quant_outputs(config, scale, codes)


def _mx_golden_beats(config, inputs) -> dict[str, list[int]]:
    golden = _mx_golden(config, inputs)
    codes = golden["codes"].reshape(-1, config.lanes)
    scales = np.repeat(golden["scale"].reshape(-1), config.beats_per_block)
    position = np.arange(len(codes)) % config.beats_per_block
    return {"o": _pack_all(_layouts("mx_quant", config)["o"], [
        {"codes": c.tolist(), "scale": int(s), "first": int(p == 0),
         "last": int(p == config.beats_per_block - 1)}
        for c, s, p in zip(codes, scales, position, strict=True)])}


MX_QUANT = HostAdapter(
    random_inputs=_mx_random,
    encode=_mx_encode,
    expected_beats=lambda config, inputs: {"o": _mx_beats(config, inputs)},
    decode=_mx_decode,
    golden=_mx_golden,
    golden_beats=_mx_golden_beats,
)


# ---------------------------------------------------------------------------------- mx_dequant


def _dequant_random(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = int(rng.integers(1, 4))
    blocks = int(rng.integers(1, 3))
    return {"scale": rng.integers(100, 155, size=(rows, blocks)).astype(np.uint8),
            "codes": rng.integers(0, 1 << config.element.bits,
                                  size=(rows, blocks * config.block_size)).astype(np.uint8)}


def _dequant_encode(config, inputs) -> dict[str, list[int]]:
    from hdl.quant.layout import dequant_beats
    _check("mx_dequant", config, inputs)
    scale = np.asarray(inputs["scale"]).astype(np.int64).reshape(-1)
    codes = np.asarray(inputs["codes"]).astype(np.int64).reshape(-1, config.block_size)
    return {"i": _pack_all(_layouts("mx_dequant", config)["i"],
                           dequant_beats(config, scale, codes))}


def _dequant_beats(config, inputs) -> int:
    return int(np.size(inputs["codes"])) // config.lanes


def _dequant_golden(config, inputs) -> dict[str, np.ndarray]:
    from golden.mx import mx_dequantize
    scale = np.asarray(inputs["scale"]).astype(np.int64)
    codes = np.asarray(inputs["codes"]).astype(np.int64)
    x_hat = mx_dequantize(scale.reshape(-1, 1), codes.reshape(-1, config.block_size),
                          config.format, config.block_size)
    return {"x_hat": np.asarray(x_hat, dtype=np.float32).reshape(codes.shape)}


def _dequant_decode(config, inputs, output) -> dict[str, np.ndarray]:
    items = _unpack_all(_layouts("mx_dequant", config)["o"],
                        _beats_of(output, "o", _dequant_beats(config, inputs)))
    bits = np.array(items, dtype=np.uint32).reshape(np.shape(inputs["codes"]))
    return {"x_hat": bits.view(np.float32)}


def _dequant_golden_beats(config, inputs) -> dict[str, list[int]]:
    from hdl.quant.layout import float32_bits
    bits = float32_bits(_dequant_golden(config, inputs)["x_hat"]).reshape(-1, config.lanes)
    return {"o": _pack_all(_layouts("mx_dequant", config)["o"], bits.tolist())}


MX_DEQUANT = HostAdapter(
    random_inputs=_dequant_random,
    encode=_dequant_encode,
    expected_beats=lambda config, inputs: {"o": _dequant_beats(config, inputs)},
    decode=_dequant_decode,
    golden=_dequant_golden,
    golden_beats=_dequant_golden_beats,
)


# ---------------------------------------------------------------------------------- kivi_quant


def _kivi_axis(inputs) -> str:
    return str(inputs["axis"]) if "axis" in inputs else "token"


def _kivi_random(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    axis = str(rng.choice(["token", "channel"]))
    tokens, channels = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    if axis == "token":
        channels *= config.group
    else:
        tokens *= config.group
    return {"x": _float_random(rng, tokens, channels, 1), "axis": np.array(axis)}


def _kivi_input(config, inputs):
    from sim.quant_data import to_input_type
    return to_input_type(np.asarray(inputs["x"]), config.input)


def _kivi_encode(config, inputs) -> dict[str, list[int]]:
    from golden.kivi import group_view
    from sim.quant_data import as_input_bits
    _check("kivi_quant", config, inputs)
    x = _kivi_input(config, inputs)
    bits = as_input_bits(x).reshape(x.shape)
    beats = group_view(bits, config.group, _kivi_axis(inputs)).reshape(-1, config.lanes)
    return {"i": _pack_all(_layouts("kivi_quant", config)["i"], beats.tolist())}


def _kivi_beats(config, inputs) -> int:
    return int(np.size(inputs["x"])) // config.lanes


def _kivi_quantized(config, inputs) -> dict[str, np.ndarray]:
    from golden.kivi import kivi_quantize
    return kivi_quantize(_kivi_input(config, inputs), config.bits, config.group,
                         _kivi_axis(inputs))


def _kivi_golden(config, inputs) -> dict[str, np.ndarray]:
    from sim.quant_data import kivi_outputs
    return kivi_outputs(config, _kivi_quantized(config, inputs), _kivi_axis(inputs))


def _kivi_decode(config, inputs, output) -> dict[str, np.ndarray]:
    from sim.quant_data import KIVI_METADATA, kivi_outputs, kivi_result, quant_blocks
    items = _unpack_all(_layouts("kivi_quant", config)["o"],
                        _beats_of(output, "o", _kivi_beats(config, inputs)))
    groups = quant_blocks(items, config.group // config.lanes, KIVI_METADATA)
    axis = _kivi_axis(inputs)
    return kivi_outputs(config, kivi_result(config, groups, np.shape(inputs["x"]), axis), axis)


def _kivi_golden_beats(config, inputs) -> dict[str, list[int]]:
    from golden.kivi import group_view
    from sim.quant_data import KIVI_METADATA
    golden = _kivi_quantized(config, inputs)
    per_group = config.group // config.lanes
    codes = group_view(golden["codes"], config.group, _kivi_axis(inputs)).reshape(-1, config.lanes)
    metadata = [np.repeat(np.asarray(golden[key]).reshape(-1).astype(np.int64), per_group)
                for key in KIVI_METADATA]
    beats = []
    for index, lanes in enumerate(codes):
        p = index % per_group
        beats.append({"codes": lanes.tolist(), "first": int(p == 0),
                      "last": int(p == per_group - 1),
                      **{key: int(values[index]) for key, values in zip(KIVI_METADATA, metadata,
                                                                         strict=True)}})
    return {"o": _pack_all(_layouts("kivi_quant", config)["o"], beats)}


KIVI_QUANT = HostAdapter(
    random_inputs=_kivi_random,
    encode=_kivi_encode,
    expected_beats=lambda config, inputs: {"o": _kivi_beats(config, inputs)},
    decode=_kivi_decode,
    golden=_kivi_golden,
    golden_beats=_kivi_golden_beats,
)


# ----------------------------------------------------------------------------------- attention


def _attention_job(inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, bool]:
    q, k, v = (np.asarray(inputs[key]).astype(np.int64) for key in ("q", "k", "v"))
    scale = float(np.asarray(inputs["scale"])) if "scale" in inputs else 1 / math.sqrt(q.shape[2])
    causal = bool(np.asarray(inputs["causal"])) if "causal" in inputs else False
    return q, k, v, scale, causal


def _attention_random(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    kv_heads = int(rng.integers(1, 3))
    heads = kv_heads * int(rng.integers(1, 3))
    nq, nkv = int(rng.integers(1, config.rows + 3)), int(rng.integers(1, config.cols + 3))
    d = int(rng.integers(1, min(config.max_head_dim, 8) + 1))
    inputs = {"q": _random_ints(rng, (heads, nq, d), config.width),
              "k": _random_ints(rng, (kv_heads, nkv, d), config.width),
              "v": _random_ints(rng, (kv_heads, nkv, d), config.width)}
    if config.causal:
        inputs["causal"] = np.array(bool(rng.integers(0, 2)))
    return inputs


def _attention_encode(config, inputs) -> dict[str, list[int]]:
    from hdl.attention.layout import descriptor, operand_beats, scale_to_fixed
    _check("attention", config, inputs)
    q, k, v, scale, causal = _attention_job(inputs)
    layouts = _layouts("attention", config)
    desc = descriptor(config, q.shape[0], q.shape[1], k.shape[0], k.shape[1], q.shape[2],
                      causal, scale_to_fixed(scale))
    q_beats, k_beats, v_beats = operand_beats(config, q, k, v, causal)
    return {"desc": _pack_all(layouts["desc"], [desc]),
            "q": _pack_all(layouts["q"], q_beats.tolist()),
            "k": _pack_all(layouts["k"], k_beats.tolist()),
            "v": _pack_all(layouts["v"], v_beats.tolist())}


def _attention_beats(config, inputs) -> int:
    from hdl.attention.layout import tiles
    q, k, _, _, causal = _attention_job(inputs)
    return q.shape[2] * sum(1 for _ in tiles(config, q.shape[0], q.shape[1], k.shape[0],
                                             k.shape[1], causal))


def _attention_golden(config, inputs) -> dict[str, np.ndarray]:
    from golden.attention import attention_exact
    from hdl.attention.layout import scale_to_fixed
    torch = _torch()
    q, k, v, scale, causal = _attention_job(inputs)
    return {"o": attention_exact(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                                 config=config, scale_fixed=scale_to_fixed(scale),
                                 causal=causal).numpy()}


def _attention_decode(config, inputs, output) -> dict[str, np.ndarray]:
    from hdl.attention.layout import assemble_output
    q, k, _, _, causal = _attention_job(inputs)
    items = _unpack_all(_layouts("attention", config)["o"],
                        _beats_of(output, "o", _attention_beats(config, inputs)))
    lasts = [item["last"] for item in items]
    if lasts != [0] * (len(items) - 1) + [1]:
        raise ValueError(f"attention: `last` on beats {np.nonzero(lasts)[0].tolist()}, "
                         f"expected only on beat {len(items) - 1}")
    o, padding = assemble_output(config, np.array([item["data"] for item in items]),
                                 q.shape[0], q.shape[1], k.shape[0], k.shape[1], q.shape[2],
                                 causal)
    if padding.any():
        raise ValueError("attention: a padding row of the output is not zero")
    return {"o": o}


def _attention_golden_beats(config, inputs) -> dict[str, list[int]]:
    from hdl.attention.layout import output_beats
    _, k, _, _, causal = _attention_job(inputs)
    beats = output_beats(config, _attention_golden(config, inputs)["o"], k.shape[0], k.shape[1],
                         causal)
    return {"o": _pack_all(_layouts("attention", config)["o"], [
        {"data": beat.tolist(), "last": int(index == len(beats) - 1)}
        for index, beat in enumerate(beats)])}


ATTENTION = HostAdapter(
    random_inputs=_attention_random,
    encode=_attention_encode,
    expected_beats=lambda config, inputs: {"o": _attention_beats(config, inputs)},
    decode=_attention_decode,
    golden=_attention_golden,
    golden_beats=_attention_golden_beats,
)


# ------------------------------------------------------------------------------------------ pim


def _pim_random(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A GEMV (int8 W and x) that fits the sequencer and half the rows."""
    from golden.pim import check_inputs, plan_gemv
    for _ in range(100):
        out = int(rng.integers(1, 2 * config.units * config.lanes + 2))
        inputs = int(rng.integers(1, 2 * config.columns * config.elems_per_lane + 1))
        w = rng.integers(-128, 128, size=(out, inputs)).astype(np.int8)
        x = rng.integers(-128, 128, size=inputs).astype(np.int8)
        try:
            check_inputs(config, {"w": w, "x": x})
        except ValueError:
            continue
        if plan_gemv(out, inputs, 1, config).rows_used <= max(1, config.rows // 2):
            return {"w": w, "x": x}
    raise ValueError(f"pim: found no random GEMV that fits {config.slug()}")


def _pim_stages(config, inputs) -> list[Stage]:
    from hdl.pim.layout import command_beats, gemv_job, trace_order
    _check("pim", config, inputs)
    layouts = _layouts("pim", config)
    if "commands" in inputs:
        commands, order = trace_order(config, inputs["commands"])
        return [({"cmd": _pack_all(layouts["cmd"], command_beats(config,
                                                                 [commands[i] for i in order]))},
                 {"status": len(commands)})]
    job = gemv_job(config, inputs["w"], inputs["x"])
    return [({"cmd": _pack_all(layouts["cmd"], command_beats(config, job.load))},
             {"status": len(job.load)}),
            ({"gemv": _pack_all(layouts["gemv"], [job.descriptor]),
              "x": _pack_all(layouts["x"], job.x_words)}, {"status": len(job.schedule)})]


def _pim_encode(config, inputs) -> dict[str, list[int]]:
    merged: dict[str, list[int]] = {}
    for beats, _ in _pim_stages(config, inputs):
        for name, values in beats.items():
            merged.setdefault(name, []).extend(values)
    return merged


def _pim_expected(config, inputs) -> dict[str, int]:
    return {"status": sum(expected["status"] for _, expected in _pim_stages(config, inputs))}


def _pim_golden(config, inputs) -> dict[str, np.ndarray]:
    from hdl.pim.layout import gemv_job, trace_golden
    if "commands" in inputs:
        return trace_golden(config, inputs["commands"])
    return gemv_job(config, inputs["w"], inputs["x"]).golden


def _pim_decode(config, inputs, output) -> dict[str, np.ndarray]:
    from hdl.pim.layout import gemv_job, trace_outputs
    layout = _layouts("pim", config)["status"]
    count = _pim_expected(config, inputs)["status"]
    beats = _unpack_all(layout, _beats_of(output, "status", count))
    if "commands" in inputs:
        return trace_outputs(config, inputs["commands"], beats)
    return gemv_job(config, inputs["w"], inputs["x"]).outputs(beats)


def _pim_counters(counters: dict[str, int]) -> dict[str, np.ndarray]:
    from hdl.pim.layout import counter_outputs
    return counter_outputs(counters)


def _pim_golden_beats(config, inputs) -> dict[str, list[int]]:
    from hdl.pim.layout import gemv_job, trace_status
    layout = _layouts("pim", config)["status"]
    if "commands" in inputs:
        return {"status": _pack_all(layout, trace_status(config, inputs["commands"]))}
    return {"status": _pack_all(layout, gemv_job(config, inputs["w"], inputs["x"]).status)}


PIM = HostAdapter(
    random_inputs=_pim_random,
    encode=_pim_encode,
    expected_beats=_pim_expected,
    decode=_pim_decode,
    golden=_pim_golden,
    golden_beats=_pim_golden_beats,
    stages=_pim_stages,
    counter_outputs=_pim_counters,
)

#: Registry block name → adapter (the registry's ``host`` fields name the same objects).
ADAPTERS = {"systolic_gemm": SYSTOLIC_GEMM, "nm_sparse_gemm": NM_SPARSE_GEMM,
            "nm_sparse_mac": NM_SPARSE_MAC, "mx_quant": MX_QUANT, "mx_dequant": MX_DEQUANT,
            "kivi_quant": KIVI_QUANT, "attention": ATTENTION, "pim": PIM}
