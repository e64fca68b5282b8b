"""Host-side protocol of ``systolic_gemm``: the order of operand beats and the result rows.

Pure NumPy, shared by the testbenches, the host driver and the documentation, so that the
order the RTL expects is written down once.
"""
from __future__ import annotations

import numpy as np

from .config import DIM_BITS, SystolicGemmConfig

__all__ = ["assemble_result", "check_inputs", "check_operands", "operand_beats"]


def check_inputs(config: SystolicGemmConfig, arrays: dict[str, np.ndarray]) -> None:
    """Check the tensors of ``tensorgates sim --inputs``: ``a`` (M×K) and ``b`` (K×N)."""
    for key in ("a", "b"):
        if key not in arrays:
            raise ValueError(f"inputs lack {key!r}; systolic_gemm needs 'a' (MxK) and 'b' (KxN)")
    check_operands(config, arrays["a"], arrays["b"])


def check_operands(config: SystolicGemmConfig, a: np.ndarray, b: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``a`` (M×K) and ``b`` (K×N) suit ``config``."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a and b must be matrices; got a{list(a.shape)} and b{list(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner sizes differ: a is {a.shape[0]}x{a.shape[1]}, "
                         f"b is {b.shape[0]}x{b.shape[1]}")
    limit = (1 << DIM_BITS) - 1
    for name, size in zip("mkn", (a.shape[0], a.shape[1], b.shape[1]), strict=True):
        if not 1 <= size <= limit:
            raise ValueError(f"size {name}={size} is not allowed; expected 1 to {limit}")
    lo, hi = -(1 << (config.width - 1)), (1 << (config.width - 1)) - 1
    for name, matrix in (("a", a), ("b", b)):
        if not np.issubdtype(matrix.dtype, np.integer):
            raise ValueError(f"{name} must hold integers; got dtype {matrix.dtype}")
        if matrix.size and (matrix.min() < lo or matrix.max() > hi):
            raise ValueError(f"{name} holds values outside the signed {config.width}-bit "
                             f"range {lo}..{hi}")


def _tiles(size: int, step: int) -> range:
    return range(0, size, step)


def operand_beats(config: SystolicGemmConfig, a: np.ndarray, b: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` beats ([beats, rows]) and ``b`` beats ([beats, cols]) of one job, in order.

    Output-stationary: for each tile row ``tm`` (outer) and tile column ``tn`` (inner), K beats
    of A[tm·R:+R, k] and B[k, tn·C:+C].

    Weight-stationary: one pass per tile column ``tn`` (outer), chunk ``mc`` of ``chunk`` rows
    of A, and K-tile ``tk`` (inner). Each pass takes R ``b`` beats, the weight rows
    B[tk·R + i, tn·C:+C] for i = 0 .. R-1, and one ``a`` beat A[m, tk·R:+R] for each of the
    chunk's rows m = mc .. min(mc + chunk, M) - 1. The two streams are independent: a pass's
    weights may arrive while the previous pass computes. So the ``a`` stream carries
    ceil(N/C)·ceil(K/R)·M beats and the ``b`` stream ceil(N/C)·ceil(M/chunk)·ceil(K/R)·R.

    Edges are zero-padded.
    """
    check_operands(config, a, b)
    R, C = config.rows, config.cols
    M, K = a.shape
    N = b.shape[1]
    pa = np.zeros((-(-M // R) * R, -(-K // R) * R), dtype=np.int64)
    pb = np.zeros((-(-K // R) * R, -(-N // C) * C), dtype=np.int64)
    pa[:M, :K] = a
    pb[:K, :N] = b
    a_beats, b_beats = [], []
    if config.dataflow == "output_stationary":
        for tm in _tiles(M, R):
            for tn in _tiles(N, C):
                a_beats.append(pa[tm:tm + R, :K].T)
                b_beats.append(pb[:K, tn:tn + C])
    else:
        for tn in _tiles(N, C):
            for mc in _tiles(M, config.chunk):
                for tk in _tiles(K, R):
                    b_beats.append(pb[tk:tk + R, tn:tn + C])
                    a_beats.append(pa[mc:min(mc + config.chunk, M), tk:tk + R])
    return np.concatenate(a_beats), np.concatenate(b_beats)


def assemble_result(config: SystolicGemmConfig, m: int, n: int,
                    rows: list[tuple[int, int, list[int]]]) -> np.ndarray:
    """Scatter result transfers ``(row, col, lanes)`` into C (M×N, int64).

    Raises ``ValueError`` if a row is out of range, repeated or missing, or a lane past N is
    not zero, since each of these means the hardware broke its protocol.
    """
    result = np.zeros((m, n), dtype=np.int64)
    seen = np.zeros((m, n), dtype=bool)
    for row, col, lanes in rows:
        if row >= m or col >= n or col % config.cols:
            raise ValueError(f"result row={row} col={col} is outside the {m}x{n} result")
        width = min(config.cols, n - col)
        if seen[row, col:col + width].any():
            raise ValueError(f"result row={row} col={col} was sent twice")
        if any(lanes[width:]):
            raise ValueError(f"result row={row} col={col}: lanes past n={n} are not zero")
        result[row, col:col + width] = lanes[:width]
        seen[row, col:col + width] = True
    if not seen.all():
        missing = np.argwhere(~seen)[0]
        raise ValueError(f"result element {tuple(int(x) for x in missing)} was never sent")
    return result
