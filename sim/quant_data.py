"""Stimulus of the quantizer testbenches: random blocks over a wide exponent range and the
corner cases of the MX rules, in fp32, bf16 or fp16."""
from __future__ import annotations

import numpy as np
import torch

from hdl.quant.formats import element_format

__all__ = ["as_input_bits", "corner_blocks", "kivi_corner_groups", "random_blocks",
           "to_input_type"]

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
