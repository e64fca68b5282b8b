"""Golden model of N:M structured sparsity: masks, compression, metadata and exact sparse GEMM.

N:M sparsity allows at most n non-zeros in every group of m consecutive weights along one axis
(m ∈ {2, 4, 8, 16}, 1 ≤ n ≤ m). A compressed row keeps n values per group plus, for each value,
its IB = log2(m)-bit index inside the group; the sparse GEMM array reads exactly that. Everything
here is bit-exact (integer or exact float selection), so the RTL testbench can compare against it.

Conventions shared by every function:

* Groups are m consecutive elements along the chosen axis, starting at index 0. A short last
  group (size not a multiple of m) is conceptually zero-padded to m.
* Selection is "top-n by magnitude, ties to the lower index" (a stable sort on -|w|). When a
  group holds fewer than n non-zeros, the remaining slots go to zeros by lowest index, real
  positions before padding positions.
"""
from __future__ import annotations

import torch

__all__ = [
    "SUPPORTED_M",
    "bdwp_masks",
    "compress_nm",
    "decompress_nm",
    "index_bits",
    "nm_gemm_exact",
    "nm_mask",
    "pack_metadata",
    "pack_metadata_2to4_int16",
    "prune_nm",
    "satisfies_nm",
    "transposable_mask",
    "unpack_metadata",
]

SUPPORTED_M = (2, 4, 8, 16)


def _check_nm(n: int, m: int) -> None:
    """Raise ValueError unless m ∈ SUPPORTED_M and 1 ≤ n ≤ m."""
    if isinstance(m, bool) or not isinstance(m, int) or m not in SUPPORTED_M:
        raise ValueError(f"m must be one of {SUPPORTED_M}; got {m!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= m:
        raise ValueError(f"n must be an integer with 1 <= n <= m = {m}; got {n!r}")


def index_bits(m: int) -> int:
    """IB, the width of one in-group index: log2(m) (m is a power of two)."""
    _check_nm(1, m)
    return m.bit_length() - 1


def _magnitude(w: torch.Tensor) -> torch.Tensor:
    """|w| in a dtype where abs cannot overflow and every value (and so every tie) is exact."""
    if w.dtype.is_complex:
        raise ValueError(f"w must be a real tensor; got {w.dtype}")
    if w.dtype.is_floating_point:
        return w.to(torch.float64).abs()
    return w.to(torch.int64).abs()


def _grouped(x: torch.Tensor, m: int, pad_value: float | int = 0) -> torch.Tensor:
    """x [..., L] → [..., G, m], G = ceil(L/m), padding the tail with pad_value."""
    length = x.shape[-1]
    groups = -(-length // m)
    pad = groups * m - length
    if pad:
        x = torch.nn.functional.pad(x, (0, pad), value=pad_value)
    return x.reshape(*x.shape[:-1], groups, m)


def _topn_slots(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Per group of w [..., L] along the last dim: the n kept in-group indices, sorted ascending.

    Top-n by magnitude with ties to the lower index; padding positions count as zeros that come
    after every real position (they are only used when a short group has fewer than n real ones).
    Returns int64 [..., G, n].
    """
    mag = _grouped(_magnitude(w), m)
    order = torch.sort(mag, dim=-1, descending=True, stable=True).indices
    return torch.sort(order[..., :n], dim=-1).values


def nm_mask(w: torch.Tensor, n: int, m: int, dim: int = -1) -> torch.Tensor:
    """Bool mask (w's shape) of the n largest-magnitude entries in each group of m along dim.

    Ties go to the lower index. The mask marks exactly min(n, group length) positions per group
    (zeros are marked when a group has fewer than n non-zeros: the same slots compress_nm
    fills), so prune_nm keeps exactly min(n, non-zeros) values per group. Padding positions of a
    short last group are never marked.
    """
    _check_nm(n, m)
    if w.dim() == 0:
        raise ValueError("w must have at least one dimension")
    moved = w.movedim(dim, -1)
    length = moved.shape[-1]
    slots = _topn_slots(moved, n, m)
    mask = torch.zeros(*slots.shape[:-1], m, dtype=torch.bool, device=w.device)
    mask.scatter_(-1, slots, True)
    mask = mask.reshape(*moved.shape[:-1], -1)[..., :length]
    return mask.movedim(-1, dim)


def prune_nm(w: torch.Tensor, n: int, m: int, dim: int = -1) -> torch.Tensor:
    """w with everything outside nm_mask zeroed (same dtype): the N:M-sparse weight."""
    return w * nm_mask(w, n, m, dim).to(w.dtype)


def satisfies_nm(w: torch.Tensor, n: int, m: int, dim: int = -1) -> bool:
    """True when every group of m along dim (short last group included) has ≤ n non-zeros."""
    _check_nm(n, m)
    nonzero = (w != 0).movedim(dim, -1).to(torch.int64)
    return bool((_grouped(nonzero, m).sum(-1) <= n).all())


def _check_2d(name: str, t: torch.Tensor) -> None:
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D [rows, K]; got shape {tuple(t.shape)}")


def compress_nm(w: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress a 2-D N:M-sparse w [rows, K] along its last dim into (values, indices).

    K is zero-padded to G·m, G = ceil(K/m). Each group keeps n slots (every non-zero, then zeros by
    lowest index), sorted by increasing in-group index. values is [rows, G·n] (int64 for integer
    w, w's dtype for float w); indices is [rows, G·n] int64 in 0..m-1, strictly increasing within
    each group. Raises ValueError when w is not N:M along the last dim: compressing would drop
    values.
    """
    _check_nm(n, m)
    _check_2d("w", w)
    if w.dtype == torch.bool or w.dtype.is_complex:
        raise ValueError(f"w must be an integer or float tensor; got {w.dtype}")
    if not satisfies_nm(w, n, m, dim=-1):
        raise ValueError(
            f"w must be {n}:{m} sparse along its last dim (at most {n} non-zeros in each group "
            f"of {m}); compressing it would drop values. Prune it first with prune_nm."
        )
    rows = w.shape[0]
    slots = _topn_slots(w, n, m)                              # [rows, G, n]
    out_dtype = w.dtype if w.dtype.is_floating_point else torch.int64
    values = _grouped(w.to(out_dtype), m).gather(-1, slots)   # padding reads as 0
    return values.reshape(rows, -1), slots.reshape(rows, -1)


def _check_indices(indices: torch.Tensor, n: int, m: int, groups: int) -> torch.Tensor:
    """Validate compressed indices [rows, G·n] and return them as int64 [rows, G, n]."""
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise ValueError(f"indices must be an integer tensor; got {indices.dtype}")
    idx = indices.to(torch.int64)
    if idx.shape[-1] != groups * n:
        raise ValueError(
            f"indices must have G·n = {groups}·{n} = {groups * n} columns; got {idx.shape[-1]}"
        )
    if idx.numel() and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"indices must lie in 0..{m - 1} (m = {m}); got values outside that")
    idx = idx.reshape(idx.shape[0], groups, n)
    if n > 1 and not bool((idx[..., 1:] > idx[..., :-1]).all()):
        raise ValueError(
            "indices must be strictly increasing within each group (two values on one index "
            "or out of order)"
        )
    return idx


def decompress_nm(
    values: torch.Tensor, indices: torch.Tensor, n: int, m: int, k: int
) -> torch.Tensor:
    """Inverse of compress_nm: scatter values [rows, G·n] back to a dense [rows, k].

    Raises ValueError when indices leave 0..m-1 or are not strictly increasing within a group,
    or when a non-zero value sits on a padding position (index ≥ k in the last group).
    """
    _check_nm(n, m)
    _check_2d("values", values)
    _check_2d("indices", indices)
    if values.shape != indices.shape:
        raise ValueError(
            f"values and indices must have one shape; got {tuple(values.shape)} and "
            f"{tuple(indices.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be a positive row length; got {k}")
    groups = -(-k // m)
    rows = values.shape[0]
    idx = _check_indices(indices, n, m, groups)
    dense = torch.zeros(rows, groups, m, dtype=values.dtype, device=values.device)
    dense.scatter_(-1, idx, values.reshape(rows, groups, n))
    dense = dense.reshape(rows, groups * m)
    if bool((dense[:, k:] != 0).any()):
        raise ValueError(f"values must be zero on padding positions (columns ≥ k = {k})")
    return dense[:, :k]


def pack_metadata(indices: torch.Tensor, m: int) -> torch.Tensor:
    """Pack indices [rows, count] into uint8 [rows, ceil(count·IB/8)], little-endian bit stream.

    Per row, index j occupies bits j·IB .. j·IB+IB-1 of the stream, bit b of the stream being bit
    b % 8 of byte b // 8; the tail is padded with zero bits. For 2:4 this is NVIDIA's sparse
    tensor-core metadata: one nibble idx0 | idx1 << 2 per group, the first group in the low nibble.
    """
    ib = index_bits(m)
    _check_2d("indices", indices)
    idx = indices.to(torch.int64)
    if idx.numel() and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"indices must lie in 0..{m - 1} (m = {m}); got values outside that")
    rows, count = idx.shape
    shifts = torch.arange(ib, device=idx.device)
    bits = ((idx.unsqueeze(-1) >> shifts) & 1).reshape(rows, count * ib)
    nbytes = -(-count * ib // 8)
    bits = torch.nn.functional.pad(bits, (0, nbytes * 8 - count * ib))
    weights = 1 << torch.arange(8, device=idx.device)
    return (bits.reshape(rows, nbytes, 8) * weights).sum(-1).to(torch.uint8)


def unpack_metadata(packed: torch.Tensor, m: int, count: int) -> torch.Tensor:
    """Inverse of pack_metadata: uint8 [rows, bytes] → int64 indices [rows, count]."""
    ib = index_bits(m)
    _check_2d("packed", packed)
    rows, nbytes = packed.shape
    if nbytes * 8 < count * ib:
        raise ValueError(
            f"packed has {nbytes} bytes per row; count = {count} indices of {ib} bits need "
            f"{-(-count * ib // 8)}"
        )
    p = packed.to(torch.int64)
    bits = ((p.unsqueeze(-1) >> torch.arange(8, device=p.device)) & 1).reshape(rows, nbytes * 8)
    bits = bits[:, : count * ib].reshape(rows, count, ib)
    return (bits << torch.arange(ib, device=p.device)).sum(-1)


def pack_metadata_2to4_int16(indices: torch.Tensor) -> torch.Tensor:
    """2:4 metadata as int16 [rows, ceil(G/4)]: nibbles of groups 4j..4j+3 in bits 0..15 of word j.

    The same bits as pack_metadata(indices, 4) read as little-endian int16, i.e. the metadata
    matrix PyTorch/CUTLASS builds for fp16/bf16 before its own reordering (interleaving) step. A
    tail of fewer than 4 groups is padded with zero bits.
    """
    packed = pack_metadata(indices, 4)
    if packed.shape[1] % 2:
        packed = torch.nn.functional.pad(packed, (0, 1))
    words = packed[:, 0::2].to(torch.int32) | (packed[:, 1::2].to(torch.int32) << 8)
    return torch.where(words >= 1 << 15, words - (1 << 16), words).to(torch.int16)


def nm_gemm_exact(
    a: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, n: int, m: int, k: int
) -> torch.Tensor:
    """C [B, rows] = a [B, k] · Wᵀ for the compressed W [rows, k], exactly in int64.

    Computed the way the sparse array does it (each kept value meets the activation column its
    index selects), not by decompressing, so it is an independent check of the format.
    """
    for name, t in (("a", a), ("values", values)):
        if t.dtype.is_floating_point or t.dtype.is_complex:
            raise ValueError(f"nm_gemm_exact needs integer tensors; {name} is {t.dtype}")
    _check_nm(n, m)
    _check_2d("a", a)
    _check_2d("values", values)
    if a.shape[1] != k:
        raise ValueError(f"a must be [B, k] with k = {k}; got shape {tuple(a.shape)}")
    if values.shape != indices.shape:
        raise ValueError(
            f"values and indices must have one shape; got {tuple(values.shape)} and "
            f"{tuple(indices.shape)}"
        )
    groups = -(-k // m)
    idx = _check_indices(indices, n, m, groups)                          # [rows, G, n]
    base = torch.arange(groups, device=idx.device).unsqueeze(-1) * m
    cols = (idx + base).reshape(idx.shape[0], -1)                         # [rows, G·n]
    a_pad = torch.nn.functional.pad(a.to(torch.int64), (0, groups * m - k))
    gathered = a_pad[:, cols]                                             # [B, rows, G·n]
    return (gathered * values.to(torch.int64).unsqueeze(0)).sum(-1)


def bdwp_masks(w: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SAT's bidirectional weight pruning masks for w [out, in]: (forward, backward).

    forward is N:M along the input dim (dim 1), for y = x·(W⊙mask)ᵀ; backward is N:M along the
    output dim (dim 0), for dx = g·(W⊙mask), so both GEMMs reduce over a sparse axis.
    """
    _check_2d("w", w)
    return nm_mask(w, n, m, dim=1), nm_mask(w, n, m, dim=0)


def transposable_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """One mask that is N:M along both dims of a 2-D w: greedy per m×m block.

    In each block, entries are visited by decreasing magnitude (ties: lower row, then lower
    column) and kept while their row and their column each hold fewer than n kept entries of the
    block. Padding positions of edge blocks are never kept. Greedy, so a row may end with fewer
    than n kept when its columns fill up first.
    """
    _check_nm(n, m)
    _check_2d("w", w)
    rows, cols = w.shape
    mag = _magnitude(w).to(torch.float64)
    br, bc = -(-rows // m), -(-cols // m)
    padded = torch.nn.functional.pad(mag, (0, bc * m - cols, 0, br * m - rows), value=-1.0)
    blocks = padded.reshape(br, m, bc, m).permute(0, 2, 1, 3).reshape(br * bc, m * m)
    order = torch.sort(blocks, dim=-1, descending=True, stable=True).indices
    nblk = blocks.shape[0]
    row_kept = torch.zeros(nblk, m, dtype=torch.int64)
    col_kept = torch.zeros(nblk, m, dtype=torch.int64)
    keep = torch.zeros(nblk, m * m, dtype=torch.bool)
    blk = torch.arange(nblk)
    for t in range(m * m):
        flat = order[:, t]
        r, c = flat // m, flat % m
        take = (row_kept[blk, r] < n) & (col_kept[blk, c] < n) & (blocks[blk, flat] >= 0)
        keep[blk, flat] = take
        row_kept[blk, r] += take
        col_kept[blk, c] += take
    keep = keep.reshape(br, bc, m, m).permute(0, 2, 1, 3).reshape(br * m, bc * m)
    return keep[:rows, :cols].to(w.device)
