"""Stimulus of the quantizer testbenches: random blocks over a wide exponent range and the
corner cases of the MX rules, in fp32, bf16 or fp16; and the quantizers' output beats turned
back into the ``sim --outputs`` arrays (shared by the testbenches and the host adapters)."""
from __future__ import annotations

import numpy as np
import torch

from hdl.quant.formats import element_format

__all__ = ["KIVI_METADATA", "as_input_bits", "block_summary", "corner_blocks",
           "kivi_corner_groups", "kivi_outputs", "kivi_result", "mx_quant_outputs", "quant_blocks",
           "random_blocks", "to_input_type"]

#: The per-group metadata fields of a ``kivi_quant`` output beat, in scoreboard order.
KIVI_METADATA = ("minimum", "range", "exponent", "error")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: floor(log2) of the smallest subnormal, smallest normal and largest normal per input type.
RANGES = {"fp32": (-149, -126, 127), "bf16": (-133, -126, 127), "fp16": (-24, -14, 15)}


def to_input_type(x: np.ndarray, input_type: str) -> torch.Tensor:
    """float32 data as the block's input type (round to nearest even)."""
    return torch.from_numpy(np.asarray(x, dtype=np.float32)).to(DTYPES[input_type])


def as_input_bits(x: torch.Tensor) -> np.ndarray:
    """The bit patterns the input stream carries, as non-negative integers, flattened."""
    if x.dtype == torch.float32:
        return x.contiguous().view(torch.int32).numpy().astype(np.int64).reshape(-1) & 0xFFFFFFFF
    return x.contiguous().view(torch.int16).numpy().astype(np.int64).reshape(-1) & 0xFFFF


def random_blocks(rng: np.random.Generator, input_type: str, *, rows: int, cols: int,
                  block_size: int | None = None) -> torch.Tensor:
    """Random signed values; each block gets its own magnitude (anywhere in the input type's
    range) and its elements spread over 24 binades below it, with some exact zeros."""
    smallest, _, largest = RANGES[input_type]
    block_size = block_size or cols
    top = rng.integers(smallest + 4, largest, size=(rows, cols // block_size, 1))
    spread = rng.integers(0, 24, size=(rows, cols // block_size, block_size))
    exponent = np.maximum(top - spread, smallest).reshape(rows, cols).astype(np.float64)
    values = rng.uniform(1.0, 2.0, size=(rows, cols)) * np.exp2(exponent)
    values *= rng.choice([-1.0, 1.0], size=(rows, cols))
    values[rng.random((rows, cols)) < 0.05] = 0.0
    return torch.from_numpy(values).to(DTYPES[input_type])


def _grid_points(format_name: str, scale_log2: int) -> list[float]:
    """Values (in input units for a block of scale 2^scale_log2) on, halfway between, and
    just beside the element grid: every binade of the format, subnormals included."""
    fmt = element_format(format_name)
    points = []
    if fmt.kind == "fp":
        for binade in range(fmt.emin, fmt.emax + 1):
            quantum = 2.0 ** (binade - fmt.mbits)
            for step in range(0, 1 << fmt.mbits, max(1, (1 << fmt.mbits) // 2)):
                base = (2.0 ** binade if binade > fmt.emin else 0.0) + step * quantum
                points += [base + quantum / 2, base + quantum * 1.5]
    else:
        quantum = 2.0 ** -fmt.point
        for value in (1, 2, (1 << (fmt.bits - 2)) - 1):
            points += [(value + 0.5) * quantum, (value - 0.5) * quantum]
    return [p * 2.0 ** scale_log2 for p in points]


def corner_blocks(rng: np.random.Generator, input_type: str, format_name: str,
                  block_size: int) -> tuple[torch.Tensor, int]:
    """One block per corner case; returns the blocks [n, block_size] and how many must come
    out with the NaN scale."""
    fmt = element_format(format_name)
    smallest, smallest_normal, largest = RANGES[input_type]
    dtype = DTYPES[input_type]
    max_value = float(torch.finfo(dtype).max)
    blocks: list[np.ndarray] = []

    def block(values, fill_log2: int | None = None) -> np.ndarray:
        out = np.zeros(block_size)
        if fill_log2 is not None:
            out = rng.uniform(-1.0, 1.0, block_size) * 2.0 ** fill_log2
        values = np.asarray(values, dtype=np.float64)[:block_size]
        out[:len(values)] = values
        return out

    blocks.append(block([-0.0, 0.0] * (block_size // 2)))                    # all zeros
    nan_blocks = 0
    for special in (np.nan, np.inf, -np.inf):                                # NaN, ±Inf
        b = block([], fill_log2=3)
        b[rng.integers(block_size)] = special
        blocks.append(b)
        nan_blocks += 1
    blocks.append(block([max_value, -max_value / 3], fill_log2=largest - 2))  # largest normal
    blocks.append(block([2.0 ** smallest_normal], fill_log2=smallest_normal))  # smallest normal
    blocks.append(block([2.0 ** smallest, 3 * 2.0 ** smallest], fill_log2=smallest + 6))
    # Rounding boundaries: amax fixes the scale at 2^0 (FP) or 2^3; grid points, the ties
    # between them and their neighbours one input ulp away.
    scale_log2 = 0 if fmt.kind == "fp" else 3
    anchor = 2.0 ** (fmt.emax + scale_log2)
    points = _grid_points(format_name, scale_log2)
    ulp = lambda p: float(np.spacing(np.float32(p))) if input_type == "fp32" else p / 64  # noqa: E731
    candidates = [v for p in points for v in (p, p - ulp(p), p + ulp(p))]
    for start in range(0, len(candidates), block_size - 1):
        chunk = candidates[start:start + block_size - 1]
        signs = rng.choice([-1.0, 1.0], size=len(chunk))
        blocks.append(block([anchor, *(np.array(chunk) * signs)]))
    # Saturation: amax just below the next power of two overflows the largest element.
    blocks.append(block([1.99 * 2.0 ** 5, -1.97 * 2.0 ** 5], fill_log2=5))
    if input_type != "fp16":     # fp16 cannot reach a scale below 2^-127
        blocks.append(block([2.0 ** -135, -(2.0 ** -140)], fill_log2=-138))
    blocks.append(block([-0.0, 1.0, -(2.0 ** -30)], fill_log2=-2))            # −0 beside data
    x = torch.from_numpy(np.stack(blocks)).to(dtype)
    return x, nan_blocks


def kivi_corner_groups(rng: np.random.Generator, input_type: str, bits: int,
                       group: int) -> tuple[torch.Tensor, int]:
    """One group per row: the round-half-up ties of every code boundary (and their integer
    neighbours), max = min (R = 0), zeros with −0, NaN, ±Inf, negative-only, subnormal-only
    and largest-normal groups. Returns the groups and how many must be flagged."""
    levels = (1 << bits) - 1
    smallest, _, largest = RANGES[input_type]
    # R = 2·L·c with the group maximum in [2^15, 2^16): ties at X − mn = (2k − 1)·c.
    c = -(-(1 << 15) // (2 * levels))
    top = 2 * levels * c
    ties = [v for k in range(1, levels + 1) for v in ((2 * k - 1) * c + d for d in (-1, 0, 1))]
    rows = []
    for start in range(0, len(ties), group - 2):
        chunk = ties[start:start + group - 2]
        fill = rng.integers(0, top + 1, group - 2 - len(chunk)).tolist()
        rows.append(np.array([0, top, *chunk, *fill], dtype=np.float64) / (1 << 15))
    rows.append(np.full(group, -2.75))                                       # R = 0
    rows.append(np.array([-0.0, 0.0] * (group // 2)))                        # zeros
    flagged = 0
    for special in (np.nan, np.inf, -np.inf):
        row = rng.uniform(-1, 1, group)
        row[rng.integers(group)] = special
        rows.append(row)
        flagged += 1
    rows.append(-rng.uniform(0.5, 3.0, group))                               # negative only
    rows.append(rng.uniform(-1, 1, group) * 2.0 ** (smallest + 3))           # subnormals
    row = rng.uniform(-1, 1, group) * 2.0 ** (largest - 1)
    row[0] = float(torch.finfo(DTYPES[input_type]).max)
    rows.append(row)                                                         # largest normal
    return torch.from_numpy(np.stack(rows)).to(DTYPES[input_type]), flagged


def block_summary(beats: list[dict], metadata: tuple[str, ...]) -> np.ndarray:
    """A block (or group) of output beats as one row: its metadata (from the first beat),
    then every code."""
    return np.array([*(beats[0][key] for key in metadata),
                     *(code for b in beats for code in b["codes"])])


def quant_blocks(items: list[dict], beats_per_block: int,
                 metadata: tuple[str, ...]) -> np.ndarray:
    """Output beats (unpacked payloads) cut into blocks: [blocks, metadata + codes] rows of
    :func:`block_summary`. ``ValueError`` when the framing is broken (``first`` / ``last`` not
    on a block's first / last beat, metadata changing within a block, a partial block)."""
    if len(items) % beats_per_block:
        raise ValueError(f"{len(items)} output beats are not whole blocks of {beats_per_block}")
    rows = []
    for start in range(0, len(items), beats_per_block):
        beats = items[start:start + beats_per_block]
        flags = [(b["first"], b["last"]) for b in beats]
        want = [(int(i == 0), int(i == beats_per_block - 1)) for i in range(beats_per_block)]
        if flags != want or any(b[key] != beats[0][key] for b in beats for key in metadata):
            raise ValueError(f"block {start // beats_per_block}: broken framing (first, last) "
                             f"{flags} or metadata changing within the block")
        rows.append(block_summary(beats, metadata))
    return np.array(rows)


def mx_quant_outputs(config, scale: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    """``mx_quant``'s ``sim --outputs`` arrays from its scales [rows × cols/block] and codes
    [rows × cols]: ``scale``, ``codes`` (uint8) and their dequantized ``x_hat``."""
    from golden.mx import mx_dequantize
    scale, codes = np.asarray(scale, dtype=np.uint8), np.asarray(codes, dtype=np.uint8)
    return {"scale": scale, "codes": codes,
            "x_hat": mx_dequantize(scale, codes, config.format, config.block_size)}


def kivi_result(config, groups: np.ndarray, shape: tuple[int, int], axis: str
                ) -> dict[str, np.ndarray]:
    """Output groups ([groups, metadata + codes] rows of :func:`quant_blocks`) of ``x`` of
    ``shape`` grouped along ``axis`` as the dict golden ``kivi_quantize`` returns (codes
    [tokens × channels], metadata per group)."""
    from golden.kivi import _ungroup, group_view
    grouped = group_view(np.zeros(shape, dtype=np.uint8), config.group, axis).shape
    result = {key: groups[:, index].reshape(grouped[:2])
              for index, key in enumerate(KIVI_METADATA)}
    result["codes"] = _ungroup(groups[:, len(KIVI_METADATA):].reshape(grouped),
                               axis).astype(np.uint8)
    return result


def kivi_outputs(config, result: dict, axis: str) -> dict[str, np.ndarray]:
    """``kivi_quant``'s ``sim --outputs`` arrays from a result (golden ``kivi_quantize``'s
    or :func:`kivi_result`'s): codes, minimum, scale, x_hat and the integer metadata
    (minimum_fixed, range, exponent, error)."""
    from golden.kivi import kivi_dequantize
    from hdl.quant.kivi import FRACTION_BITS
    unit = np.ldexp(1.0, np.asarray(result["exponent"], dtype=np.int64) - FRACTION_BITS)
    outputs = {
        "codes": np.asarray(result["codes"], dtype=np.uint8),
        "minimum": (np.asarray(result["minimum"]) * unit).astype(np.float32),
        "scale": (np.asarray(result["range"]) * unit / ((1 << config.bits) - 1)
                  ).astype(np.float32),
        "x_hat": kivi_dequantize(result, config.bits, config.group, axis).numpy(),
    }
    for key in KIVI_METADATA[1:]:
        outputs[key] = np.asarray(result[key])
    outputs["minimum_fixed"] = np.asarray(result["minimum"])
    return outputs
