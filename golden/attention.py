"""Golden model of the fused attention engine: FlashAttention-style online softmax, bit exact.

The hardware (``hdl.attention``, configured by :class:`hdl.attention.config.AttentionConfig`)
computes ``o = softmax(scale·q·kᵀ)·v`` for signed ``width``-bit q, k, v without ever holding
a whole score row: it streams key blocks of ``cols`` keys and keeps, per query row, a running
maximum ``m``, a running sum ``l`` and a running output ``o_acc`` that are rescaled whenever
the maximum grows. Every step is integer arithmetic; this module spells each one out in torch
int64 so that the RTL can be compared with it bit for bit. Notation: ``F = exp_frac_bits``,
``P = prob_bits``, ``S = exp2_segments`` (``sb = log2 S``), ``G = GUARD``, ``C = cols``.

* **Scale.** ``c = round(scale·log2(e)·2**SCALE_FRAC)`` (:func:`scale_to_fixed`), so that
  ``exp(scale·x) = 2**(x·c / 2**SCALE_FRAC)``: the exponential becomes a power of two, which
  hardware evaluates with a shift and a small table.
* **Scores** ``s = q·k`` are exact integers.
* **Exponent argument** ``U(δ) = (δ·c) >> (SCALE_FRAC - F)`` for ``δ = m - s ≥ 0`` (floor):
  a non-negative fixed-point number with ``F`` fractional bits.
* **exp2** (:func:`exp2_neg`): ``E(u) ≈ 2**P · 2**(-u/2**F)``, from the integer part ``I`` (a
  shift) and the fraction split into a segment ``k`` and an offset ``r``; the table
  :func:`exp2_table` holds ``T[k] = round(2**(P+G)·2**(-k/S))``. ``pwl`` interpolates linearly
  between ``T[k]`` and ``T[k+1]``, ``table`` takes ``T[k]``. The result is rounded half up to
  ``P`` fractional bits after the shift by ``I`` (``0`` once ``I ≥ P + 2``); ``E(0) = 2**P``.
* **Online softmax** per row, per key block (blocks ``[b·C, b·C + C)`` in order; the
  partition matters because every rescale rounds): with the block's visible keys only,
  ``m' = max(m, max s)``, ``α = E(U(m' - m))``, ``p_j = E(U(m' - s_j))``,
  ``l ← ((l·α + 2**(P-1)) >> P) + Σ p_j``, ``o_acc ← ((o_acc·α + 2**(P-1)) >> P) + Σ p_j·v_j``.
  The first block a row sees sets ``m`` and uses ``α = 2**P`` (nothing to rescale); a block
  with no visible key leaves the row alone.
* **Output** ``o = round_half_away(o_acc / l)`` saturated to ``width`` bits, ``0`` when
  ``l = 0`` (a row that saw no key).
* **Masks.** Causal masking is top-left aligned (query ``i`` sees key ``j`` iff ``j ≤ i``),
  as ``scaled_dot_product_attention(is_causal=True)``; grouped-query attention maps query head
  ``h`` to kv head ``h // (H // Hkv)`` (torch's ``enable_gqa``).

Ranges: ``|s| < 2**(score_bits-1)`` so ``δ < 2**score_bits`` and ``δ·c < 2**(score_bits+32)``;
``l ≤ Nkv·2**P`` and ``|o_acc| ≤ l·2**(width-1)`` (``acc_bits``), so ``o_acc·α`` reaches
almost ``2**63`` for ``prob_bits = 20`` and 65535 keys. The rescale is computed on ``o_acc``
split at bit ``P`` (:func:`_rescale`), which gives the same integer with products far from the
int64 limit.

:func:`attention_float` is the float64 reference (torch's own SDPA on the same integers and
the same float scale); ``python -m golden.attention_report`` measures the distance between
the two on random data and on the real all-MiniLM-L6-v2 activations.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hdl.attention.config import GUARD, SCALE_BITS, SCALE_FRAC, AttentionConfig
from hdl.attention.exp2 import exp2_table
from hdl.attention.layout import scale_to_fixed

__all__ = [
    "MAX_SCALE",
    "attention_accumulators",
    "attention_exact",
    "attention_float",
    "exp2_neg",
    "exp2_table",
    "scale_to_fixed",
]

Tensor = torch.Tensor

_LOG2E = math.log2(math.e)
MAX_SCALE = 2.0 ** (SCALE_BITS - SCALE_FRAC) / _LOG2E
"""Scales must satisfy ``0 ≤ scale`` and ``round(scale·log2(e)·2**SCALE_FRAC) < 2**SCALE_BITS``,
i.e. ``scale`` a little below this bound (≈ 11.09)."""


# ----------------------------------------------------------------------------------------------
# Scale and exp2
# ----------------------------------------------------------------------------------------------


def exp2_neg(u: Tensor, config: AttentionConfig) -> Tensor:
    """``E(u) ≈ 2**P · 2**(-u / 2**F)`` for non-negative int64 ``u`` (any shape), bit exact.

    ``I = u >> F`` is a shift; the fraction ``f`` selects segment ``k = f >> (F - sb)`` with
    offset ``r``; the mantissa is ``T[k]`` (table) or ``T[k]`` minus the floor of the linear
    interpolation towards ``T[k+1]`` (pwl); the result is ``(mant + 2**(I+G-1)) >> (I+G)``
    (round half up), and ``0`` for ``I ≥ P + 2`` where it would round to 0 anyway (the clamp
    only bounds the shifter).
    """
    u = torch.as_tensor(u, dtype=torch.int64)
    if bool((u < 0).any()):
        raise ValueError("u must be non-negative")
    frac_bits, prob_bits, seg_bits = config.exp_frac_bits, config.prob_bits, config.segment_bits
    offset_bits = frac_bits - seg_bits
    table = torch.tensor(exp2_table(config), dtype=torch.int64)
    integer = u >> frac_bits
    fraction = u & ((1 << frac_bits) - 1)
    seg = fraction >> offset_bits
    mant = table[seg]
    if config.exp2 == "pwl":
        offset = fraction & ((1 << offset_bits) - 1)
        mant = mant - (((mant - table[seg + 1]) * offset) >> offset_bits)
    underflow = integer >= prob_bits + 2
    shift = torch.clamp(integer, max=prob_bits + 2) + GUARD
    p = (mant + (torch.ones_like(shift) << (shift - 1))) >> shift
    return torch.where(underflow, torch.zeros_like(p), p)


def _exponent(delta: Tensor, c: int, config: AttentionConfig) -> Tensor:
    """``U(δ) = (δ·c) >> (SCALE_FRAC - F)``: the scaled distance to the maximum, F fraction bits."""
    return (delta * c) >> (SCALE_FRAC - config.exp_frac_bits)


def _rescale(x: Tensor, alpha: Tensor, prob_bits: int) -> Tensor:
    """``(x·α + 2**(P-1)) >> P`` without forming ``x·α``.

    With ``x = hi·2**P + lo`` (``0 ≤ lo < 2**P``) the result is ``hi·α + ((lo·α + 2**(P-1))
    >> P)`` exactly, since ``hi·α·2**P`` is a multiple of ``2**P``; the products stay below
    ``2**acc_bits`` and ``2**(2P)``, far inside int64 for every allowed configuration (the
    direct product stays below 2**63, but only by about 2**47 at the extremes).
    """
    hi = x >> prob_bits
    lo = x & ((1 << prob_bits) - 1)
    return hi * alpha + ((lo * alpha + (1 << (prob_bits - 1))) >> prob_bits)


def _round_divide(acc: Tensor, total: Tensor, width: int) -> Tensor:
    """``round_half_away(acc / total)`` saturated to signed ``width`` bits; 0 where total = 0."""
    safe = torch.where(total == 0, torch.ones_like(total), total)
    magnitude = (2 * acc.abs() // safe + 1) // 2
    out = torch.sign(acc) * magnitude
    out = out.clamp(-(1 << (width - 1)), (1 << (width - 1)) - 1)
    return torch.where(total == 0, torch.zeros_like(out), out)


# ----------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------


def _shapes(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, int, int, int, int]:
    """H, Hkv, Nq, Nkv, d of [H, Nq, d] / [Hkv, Nkv, d] tensors (ValueError naming the argument)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 3:
            raise ValueError(f"{name} must be 3-D [heads, seq, head_dim]; got shape "
                             f"{tuple(t.shape)}")
    heads, n_q, d = q.shape
    heads_kv, n_kv, _ = k.shape
    if tuple(v.shape) != tuple(k.shape):
        raise ValueError(f"v must have the shape of k {tuple(k.shape)}; got {tuple(v.shape)}")
    if k.shape[2] != d:
        raise ValueError(f"k must have head_dim {d} (that of q); got {k.shape[2]}")
    if heads_kv == 0 or heads % heads_kv:
        raise ValueError(f"k must have a number of heads dividing q's {heads}; got {heads_kv}")
    return heads, heads_kv, n_q, n_kv, d


def attention_exact(q: Tensor, k: Tensor, v: Tensor, *, config: AttentionConfig,
                    scale_fixed: int, causal: bool) -> Tensor:
    """The hardware's output ``o`` [H, Nq, d] int64 for signed ``width``-bit q, k, v.

    ``q`` is [H, Nq, d], ``k`` and ``v`` are [Hkv, Nkv, d] (H a multiple of Hkv: GQA);
    ``scale_fixed`` is :func:`scale_to_fixed` of the softmax scale. ``o`` is
    ``round_half_away(o_acc / l)`` of :func:`attention_accumulators`, saturated to ``width``
    bits, 0 for a row that saw no key.
    """
    acc, total = attention_accumulators(q, k, v, config=config, scale_fixed=scale_fixed,
                                        causal=causal)
    return _round_divide(acc, total[..., None], config.width)


def attention_accumulators(q: Tensor, k: Tensor, v: Tensor, *, config: AttentionConfig,
                           scale_fixed: int, causal: bool) -> tuple[Tensor, Tensor]:
    """The per-row state after the last key block: ``o_acc`` [H, Nq, d] and ``l`` [H, Nq].

    Exposed so that a report can separate the softmax's error (``o_acc / l`` against float)
    from the final rounding to an integer. Vectorized over heads, rows and the head dimension;
    the loop is over key blocks of ``config.cols`` keys, in order, as the hardware streams
    them (the block partition decides where the rescales round).
    """
    heads, heads_kv, n_q, n_kv, d = _shapes(q, k, v)
    if isinstance(scale_fixed, bool) or not isinstance(scale_fixed, int) \
            or not 0 <= scale_fixed < 1 << SCALE_BITS:
        raise ValueError(f"scale_fixed={scale_fixed!r} is not allowed; expected an int in "
                         f"0 .. 2**{SCALE_BITS} - 1 (see scale_to_fixed)")
    lo, hi = -(1 << (config.width - 1)), (1 << (config.width - 1)) - 1
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
            raise ValueError(f"{name} must be an integer tensor; got {t.dtype}")
        if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
            raise ValueError(f"{name} holds values outside the signed {config.width}-bit range "
                             f"{lo} .. {hi}")

    P = config.prob_bits
    group = heads // heads_kv
    q64 = q.to(torch.int64)
    k64 = k.to(torch.int64).repeat_interleave(group, dim=0)      # [H, Nkv, d]
    v64 = v.to(torch.int64).repeat_interleave(group, dim=0)
    scores = torch.matmul(q64, k64.transpose(1, 2))               # [H, Nq, Nkv], exact

    has = torch.zeros(heads, n_q, dtype=torch.bool)
    m = torch.zeros(heads, n_q, dtype=torch.int64)
    total = torch.zeros(heads, n_q, dtype=torch.int64)
    acc = torch.zeros(heads, n_q, d, dtype=torch.int64)
    rows = torch.arange(n_q)
    one = torch.full((), 1 << P, dtype=torch.int64)
    for start in range(0, n_kv, config.cols):
        stop = min(start + config.cols, n_kv)
        keys = torch.arange(start, stop)
        valid = torch.ones(n_q, stop - start, dtype=torch.bool)
        if causal:
            valid = keys[None, :] <= rows[:, None]
        valid = valid.expand(heads, n_q, stop - start)
        seen = valid.any(dim=-1)                                  # [H, Nq]
        block = scores[:, :, start:stop]
        block_max = torch.where(valid, block, torch.iinfo(torch.int64).min).amax(dim=-1)
        m_new = torch.where(has, torch.maximum(m, block_max), block_max)
        rescale = has & seen
        delta = torch.where(rescale, m_new - m, 0)
        alpha = torch.where(rescale, exp2_neg(_exponent(delta, scale_fixed, config), config), one)
        gap = torch.where(valid, m_new[..., None] - block, 0)
        p = torch.where(valid, exp2_neg(_exponent(gap, scale_fixed, config), config), 0)
        new_total = _rescale(total, alpha, P) + p.sum(dim=-1)
        new_acc = _rescale(acc, alpha[..., None], P) + torch.matmul(p, v64[:, start:stop, :])
        total = torch.where(seen, new_total, total)
        acc = torch.where(seen[..., None], new_acc, acc)
        m = torch.where(seen, m_new, m)
        has = has | seen
    return acc, total


def attention_float(q: Tensor, k: Tensor, v: Tensor, *, scale: float, causal: bool) -> Tensor:
    """Float64 reference [H, Nq, d]: torch's ``scaled_dot_product_attention`` on the same
    integers with the same scale, ``is_causal`` (top-left aligned) and ``enable_gqa``."""
    heads, heads_kv, *_ = _shapes(q, k, v)
    q64, k64, v64 = (t.to(torch.float64)[None] for t in (q, k, v))
    out = F.scaled_dot_product_attention(q64, k64, v64, scale=float(scale), is_causal=causal,
                                         enable_gqa=heads != heads_kv)
    return out[0]
