"""Host-side protocol of ``attention``: the tile/block schedule, the operand beats and the
output beats. Pure NumPy/Python, shared by the testbench, the benchmark and the docs.

Rows: the H/Hkv query heads that share a key/value head are packed into one row sequence,
position-major (row r = pos·G + g for query head h_kv·G + g), so that a tile of R rows covers
consecutive positions (causal skipping stays tight) and every K/V block streamed in serves all
G query heads of its group at once.

Per key/value head h_kv, per tile of R rows (rows beyond Nq·G are padding), per key block of
C keys (kb = 0, C, 2C, ...; under the causal flag only blocks whose first key is at most the
tile's last position, i.e. tiles wholly above the diagonal are skipped):

* ``q``: d beats per tile, beat t = q[row's head, row's position, t] for the R rows;
* ``k`` and ``v``: d beats per block, beat t = k[h_kv, kb + j, t] (resp. v) for j < C
  (keys ≥ Nkv padded with zeros);
* ``o``: d beats per tile, beat t = o[row's head, row's position, t] for the R rows
  (padding rows are 0); ``last`` on the job's final beat.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .config import HEAD_BITS, SCALE_BITS, SCALE_FRAC, SEQ_BITS, AttentionConfig

__all__ = ["Tile", "assemble_output", "check_inputs", "check_job", "descriptor", "operand_beats",
           "output_beats", "scale_to_fixed", "tiles", "work"]


@dataclass(frozen=True)
class Tile:
    kv_head: int
    rows: np.ndarray        # [R] (query head, position) of each row, -1 for padding
    heads: np.ndarray
    blocks: tuple[int, ...]  # first key of each block, in order


def scale_to_fixed(scale: float) -> int:
    """scale·log2(e) as the descriptor's unsigned fixed-point ``scale`` field:
    ``round(scale·log2(e)·2**SCALE_FRAC)``; folding log2(e) in lets the hardware use exp2.
    ``ValueError`` naming ``scale`` unless it is a finite number ≥ 0 whose field fits."""
    limit = (1 << (SCALE_BITS - SCALE_FRAC)) / math.log2(math.e)
    allowed = f"expected a finite number with 0 <= scale < {limit:.6f}"
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(f"scale={scale!r} is not allowed; {allowed}")
    value = float(scale)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"scale={scale!r} is not allowed; {allowed}")
    fixed = round(value * math.log2(math.e) * (1 << SCALE_FRAC))
    if fixed >= 1 << SCALE_BITS:
        raise ValueError(f"scale={scale!r} is not allowed; {allowed}")
    return fixed


def check_job(config: AttentionConfig, heads: int, nq: int, kv_heads: int, nkv: int, d: int,
              causal: bool) -> None:
    """``ValueError`` naming the first size the engine cannot take."""
    seq_limit, head_limit = (1 << SEQ_BITS) - 1, (1 << HEAD_BITS) - 1
    for name, value, limit in (("Nq", nq, seq_limit), ("Nkv", nkv, seq_limit),
                               ("H", heads, head_limit), ("Hkv", kv_heads, head_limit),
                               ("d", d, config.max_head_dim)):
        if not 1 <= value <= limit:
            raise ValueError(f"{name}={value} is not allowed; expected 1 to {limit}")
    if heads % kv_heads:
        raise ValueError(f"H={heads} is not allowed with Hkv={kv_heads}; expected H a multiple "
                         f"of Hkv")
    if causal and not config.causal:
        raise ValueError("causal=True is not allowed: the design was built with causal=false")


def check_inputs(config: AttentionConfig, arrays: dict[str, np.ndarray]) -> None:
    """Check the tensors of ``tensorgates sim --inputs``: ``q`` [H,Nq,d], ``k``/``v``
    [Hkv,Nkv,d] (signed ``width``-bit integers), optional ``scale`` and ``causal``."""
    for key in ("q", "k", "v"):
        if key not in arrays:
            raise ValueError(f"inputs lack {key!r}; attention needs 'q' [H,Nq,d], 'k' and 'v' "
                             f"[Hkv,Nkv,d]")
    q, k, v = arrays["q"], arrays["k"], arrays["v"]
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if tensor.ndim != 3:
            raise ValueError(f"{name} must have 3 dimensions [heads, length, d]; got "
                             f"{list(tensor.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k{list(k.shape)} and v{list(v.shape)} must have the same shape")
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"head dimensions differ: q has d={q.shape[2]}, k has d={k.shape[2]}")
    lo, hi = -(1 << (config.width - 1)), (1 << (config.width - 1)) - 1
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not np.issubdtype(tensor.dtype, np.integer):
            raise ValueError(f"{name} must hold integers; got dtype {tensor.dtype}")
        if tensor.size and (tensor.min() < lo or tensor.max() > hi):
            raise ValueError(f"{name} holds values outside the signed {config.width}-bit range "
                             f"{lo}..{hi}")
    causal = bool(np.asarray(arrays.get("causal", False)))
    check_job(config, q.shape[0], q.shape[1], k.shape[0], k.shape[1], q.shape[2], causal)
    if "scale" in arrays:
        scale_to_fixed(float(np.asarray(arrays["scale"])))


def descriptor(config: AttentionConfig, heads: int, nq: int, kv_heads: int, nkv: int, d: int,
               causal: bool, scale_fixed: int) -> dict:
    return {"nq": nq, "nkv": nkv, "head_dim": d, "heads": heads, "kv_heads": kv_heads,
            "causal": int(causal), "scale": scale_fixed}


def tiles(config: AttentionConfig, heads: int, nq: int, kv_heads: int, nkv: int,
          causal: bool) -> Iterator[Tile]:
    """The engine's schedule: tiles in order, each with its key blocks."""
    group = heads // kv_heads
    rows_total = nq * group
    for kv_head in range(kv_heads):
        for r0 in range(0, rows_total, config.rows):
            r = np.arange(r0, r0 + config.rows)
            valid = r < rows_total
            positions = np.where(valid, r // group, -1)
            row_heads = np.where(valid, kv_head * group + r % group, -1)
            last_position = int(positions[valid].max())
            blocks = tuple(kb for kb in range(0, nkv, config.cols)
                           if not causal or kb <= last_position)
            yield Tile(kv_head, positions, row_heads, blocks)


def operand_beats(config: AttentionConfig, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                  causal: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``q`` beats [beats, R] and the ``k`` and ``v`` beats [beats, C] of one job."""
    heads, nq, d = q.shape
    kv_heads, nkv, _ = k.shape
    q_beats, k_beats, v_beats = [], [], []
    pad = np.zeros((config.cols, d), dtype=np.int64)
    for tile in tiles(config, heads, nq, kv_heads, nkv, causal):
        valid = tile.rows >= 0
        rows = np.zeros((config.rows, d), dtype=np.int64)
        rows[valid] = q[tile.heads[valid], tile.rows[valid]]
        q_beats.append(rows.T)
        for kb in tile.blocks:
            for source, beats in ((k, k_beats), (v, v_beats)):
                block = pad.copy()
                keys = source[tile.kv_head, kb:kb + config.cols]
                block[:len(keys)] = keys
                beats.append(block.T)
    return (np.concatenate(q_beats), np.concatenate(k_beats), np.concatenate(v_beats))


def assemble_output(config: AttentionConfig, beats: np.ndarray, heads: int, nq: int,
                    kv_heads: int, nkv: int, d: int, causal: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``o`` [H, Nq, d] from the output beats [beats, R], and the padding rows' values."""
    o = np.zeros((heads, nq, d), dtype=np.int64)
    padding = []
    for index, tile in enumerate(tiles(config, heads, nq, kv_heads, nkv, causal)):
        block = beats[index * d:(index + 1) * d].T        # [R, d]
        valid = tile.rows >= 0
        o[tile.heads[valid], tile.rows[valid]] = block[valid]
        padding.append(block[~valid].ravel())
    return o, np.concatenate(padding) if padding else np.zeros(0, dtype=np.int64)


def output_beats(config: AttentionConfig, o: np.ndarray, kv_heads: int, nkv: int,
                 causal: bool) -> np.ndarray:
    """The ``o`` beats [beats, R] the engine emits for outputs ``o`` [H, Nq, d] (padding 0)."""
    heads, nq, d = o.shape
    beats = []
    for tile in tiles(config, heads, nq, kv_heads, nkv, causal):
        valid = tile.rows >= 0
        rows = np.zeros((config.rows, d), dtype=np.int64)
        rows[valid] = o[tile.heads[valid], tile.rows[valid]]
        beats.append(rows.T)
    return np.concatenate(beats)


def work(config: AttentionConfig, heads: int, nq: int, kv_heads: int, nkv: int, d: int,
         causal: bool) -> tuple[int, int]:
    """(array beats, useful MACs) of one job: 2·d beats per block, and 2·d MACs for every
    query–key pair the mask lets through."""
    blocks = pairs = 0
    for tile in tiles(config, heads, nq, kv_heads, nkv, causal):
        positions = tile.rows[tile.rows >= 0]
        for kb in tile.blocks:
            keys = np.arange(kb, min(kb + config.cols, nkv))
            visible = (keys[None, :] <= positions[:, None]) if causal else np.ones(
                (len(positions), len(keys)), dtype=bool)
            pairs += int(visible.sum())
            blocks += 1
    return 2 * d * blocks, 2 * d * pairs
