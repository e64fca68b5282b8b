"""Host-side protocol of the N:M sparse blocks: operand beats, in the order the RTL takes them.

Pure NumPy (bar :func:`mac_golden_sums`, which calls the golden model), shared by the
testbenches, the host adapters, the benchmarks and the docs. Compressed weights are
``values`` and ``indices`` [rows, G·N] with G = ceil(K/M) groups per row (K zero-padded to a
multiple of M), indices strictly increasing within a group (see ``golden.nm_sparse``).
"""
from __future__ import annotations

import numpy as np

from ..systolic.config import DIM_BITS
from .config import NMSparseGemmConfig, NMSparseMacConfig

__all__ = ["canonical_indices", "check_gemm_inputs", "check_mac_inputs", "gemm_beats",
           "mac_beats", "mac_golden_sums", "weight_group_beats", "wrap"]


def _check_integers(config, name: str, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
    lo, hi = -(1 << (config.width - 1)), (1 << (config.width - 1)) - 1
    if array.size and (array.min() < lo or array.max() > hi):
        raise ValueError(f"{name} holds values outside the signed {config.width}-bit range "
                         f"{lo}..{hi}")


def _check_pair(config, arrays: dict[str, np.ndarray], block: str, rows: str) -> None:
    for key in ("a", "w"):
        if key not in arrays:
            raise ValueError(f"inputs lack {key!r}; {block} needs 'a' ({rows}xK) and 'w' "
                             f"({'out' if block == 'nm_sparse_gemm' else rows}xK, dense)")
    a, w = arrays["a"], arrays["w"]
    if a.ndim != 2 or w.ndim != 2:
        raise ValueError(f"a and w must be matrices; got a{list(a.shape)} and w{list(w.shape)}")
    if a.shape[1] != w.shape[1]:
        raise ValueError(f"K differs: a is {a.shape[0]}x{a.shape[1]}, w is "
                         f"{w.shape[0]}x{w.shape[1]}")
    limit = (1 << DIM_BITS) - 1
    for name, size in (("rows of a", a.shape[0]), ("K", a.shape[1]), ("rows of w", w.shape[0])):
        if not 1 <= size <= limit:
            raise ValueError(f"{name}={size} is not allowed; expected 1 to {limit}")
    _check_integers(config, "a", a)
    _check_integers(config, "w", w)


def check_gemm_inputs(config: NMSparseGemmConfig, arrays: dict[str, np.ndarray]) -> None:
    """``sim --inputs`` of ``nm_sparse_gemm``: ``a`` [B×K] and dense ``w`` [out×K]."""
    _check_pair(config, arrays, "nm_sparse_gemm", "B")


def check_mac_inputs(config: NMSparseMacConfig, arrays: dict[str, np.ndarray]) -> None:
    """``sim --inputs`` of ``nm_sparse_mac``: ``a`` and dense ``w``, both [P×K]: P dot
    products of length K."""
    _check_pair(config, arrays, "nm_sparse_mac", "P")
    if arrays["a"].shape[0] != arrays["w"].shape[0]:
        raise ValueError(f"a and w need the same number of rows (dot products); got "
                         f"{arrays['a'].shape[0]} and {arrays['w'].shape[0]}")


def _padded(array: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:array.shape[0], :array.shape[1]] = array
    return out


def gemm_beats(config: NMSparseGemmConfig, a: np.ndarray, *, values: np.ndarray | None = None,
               indices: np.ndarray | None = None, w: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The beats of one ``nm_sparse_gemm`` job: ``a`` [beats, R, M], and the weight groups'
    ``values`` and ``indices`` [beats, C, N].

    Sparse mode: pass the compressed ``values`` and ``indices`` of W [out × G·N]. Dense mode:
    pass ``w`` [out × K]; each beat then carries ``dense_group`` consecutive weights (indices
    zero, unused). Folds go tile row ``tm`` outer, tile column ``tn`` inner, ceil(K/M) (sparse)
    or ceil(K/dense_group) (dense) beats each; edges are zero-padded.
    """
    R, C, N, M = config.rows, config.cols, config.n, config.m
    rows, k = a.shape
    dense = w is not None
    group = config.dense_group if dense else M
    groups = -(-k // group)
    out = w.shape[0] if dense else values.shape[0]
    pa = _padded(a, -(-rows // R) * R, groups * group)
    tiles_n = -(-out // C) * C
    if dense:
        pw = _padded(w, tiles_n, groups * group).reshape(tiles_n, groups, group)
        weight_values = np.zeros((tiles_n, groups, N), dtype=np.int64)
        weight_values[:, :, :group] = pw
        weight_indices = np.zeros_like(weight_values)
    else:
        if values.shape[1] != groups * N or indices.shape != values.shape:
            raise ValueError(f"compressed W must be [out x {groups * N}] values and indices "
                             f"for K={k}; got {list(values.shape)} and {list(indices.shape)}")
        weight_values = _padded(values, tiles_n, groups * N).reshape(tiles_n, groups, N)
        # Padding columns carry well-formed groups (indices 0..N-1) of zero weights.
        weight_indices = np.tile(np.arange(N, dtype=np.int64), (tiles_n, groups, 1))
        weight_indices[:out] = indices.reshape(out, groups, N)
    acts = np.zeros((pa.shape[0], groups, M), dtype=np.int64)
    acts[:, :, :group] = pa.reshape(pa.shape[0], groups, group)
    a_beats, b_values, b_indices = [], [], []
    for tm in range(0, rows, R):
        for tn in range(0, out, C):
            a_beats.append(acts[tm:tm + R].transpose(1, 0, 2))
            b_values.append(weight_values[tn:tn + C].transpose(1, 0, 2))
            b_indices.append(weight_indices[tn:tn + C].transpose(1, 0, 2))
    return np.concatenate(a_beats), np.concatenate(b_values), np.concatenate(b_indices)


def mac_beats(config: NMSparseMacConfig, a: np.ndarray, values: np.ndarray,
              indices: np.ndarray) -> list[dict]:
    """The ``i`` beats of ``nm_sparse_mac`` for the dot products a[p] · W[p] (W compressed,
    one row per dot product): ceil(K/M) groups each, ``last`` on the final one."""
    M, N = config.m, config.n
    rows, k = a.shape
    groups = -(-k // M)
    acts = _padded(a, rows, groups * M).reshape(rows, groups, M)
    vals = values.reshape(rows, groups, N)
    idx = indices.reshape(rows, groups, N)
    return [{"acts": acts[p, g].tolist(),
             "group": {"values": vals[p, g].tolist(), "indices": idx[p, g].tolist()},
             "dense": 0, "last": int(g == groups - 1)}
            for p in range(rows) for g in range(groups)]


def weight_group_beats(values: np.ndarray, indices: np.ndarray) -> list[list[dict]]:
    """The ``b`` beats of ``nm_sparse_gemm`` as payloads (``cols`` groups of ``values`` and
    ``indices`` each) from :func:`gemm_beats`' ``values`` and ``indices`` [beats, C, N]."""
    return [[{"values": v.tolist(), "indices": i.tolist()} for v, i in zip(vb, ib, strict=True)]
            for vb, ib in zip(values, indices, strict=True)]


def wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap to ``bits``, as the accumulator register does."""
    half = 1 << (bits - 1)
    return (values + half) % (1 << bits) - half


def canonical_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """Indices with every malformed group replaced by 0..n-1 (its values are zeroed), so the
    golden model can decompress them."""
    groups = indices.reshape(indices.shape[0], -1, n).copy()
    bad = (np.diff(groups, axis=2) <= 0).any(axis=2)
    groups[bad] = np.arange(n)
    return groups.reshape(indices.shape)


def mac_golden_sums(config: NMSparseMacConfig, a: np.ndarray, values: np.ndarray,
                    indices: np.ndarray) -> np.ndarray:
    """The sums ``nm_sparse_mac`` returns for the dot products a[p]·W[p] (W compressed, one
    row per dot product; ``values`` of malformed groups already zeroed): golden
    ``nm_gemm_exact``, wrapped to ``acc_width`` like the accumulator."""
    import torch

    from golden.nm_sparse import nm_gemm_exact
    sums = nm_gemm_exact(torch.from_numpy(a), torch.from_numpy(values),
                         torch.from_numpy(canonical_indices(indices, config.n)), config.n,
                         config.m, a.shape[1]).numpy().diagonal()
    return wrap(sums, config.acc_width)
