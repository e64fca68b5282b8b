"""A GPT-style decoder layer's decode step (one new token against a KV cache), as PIM-GPT and
AttAcc run it: every weight multiply is a GEMV, and so are the attention score and context
products against the cached keys and values.

GPT-2 layout (pre-LayerNorm, ``gelu_new`` = tanh GELU): for the new token's residual x [d],
``a = LN1(x)``, ``[q, k, v] = W_qkv·a + b_qkv``; per head h (``hd = d / H``) the new k, v are
appended to the cache, ``s = K_h·q_h / sqrt(hd)`` (GEMV: W = K_h [n × hd]),
``p = softmax(s)``, ``o_h = V_hᵀ·p`` (GEMV: W = V_hᵀ [hd × n]); ``h = x + W_proj·o + b_proj``;
``y = h + W_fc2·GELU(W_fc·LN2(h) + b_fc) + b_fc2``.

* :func:`decode_step` — the float reference (torch float64).
* :func:`decode_gemvs` — the GEMV shapes of one decode step (GPT-2 small: d = 768, 12 heads,
  ffn 3072; medium: 1024, 16, 4096), which the benchmark feeds to the PIM cycle model.
* :func:`decode_step_int8` — the same step with every GEMV in int8 × int8 → int32 through a
  caller-supplied ``gemv(w, x)`` (the PIM model or the RTL), everything else in float64 on the
  dequantised values: symmetric int8 weights (one scale per matrix), activations quantised per
  vector (``scale = max|v| / 127``, round half to even, clamp to ±127), the K cache with one
  scale per (head, token) row, the V cache with one scale per (head, token), folded into the
  probabilities before they are quantised (``o_h = Σ_n Vq[n]·(s_v[n]·p[n])``). With identical
  GEMV results the whole step is bit-identical, which is how the RTL is checked.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["GPT2_MEDIUM", "GPT2_SMALL", "DecoderWeights", "GPTDims", "GemvShape", "KVCache",
           "QuantDecoderWeights", "QuantKVCache", "decode_gemvs", "decode_step",
           "decode_step_int8", "decode_weight_bytes", "quantize_cache", "quantize_vector",
           "quantize_weights", "random_cache", "random_weights", "reference_gemv"]

Tensor = torch.Tensor
Gemv = Callable[[Tensor, Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class GPTDims:
    d_model: int
    n_heads: int
    d_ff: int

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads="
                             f"{self.n_heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


GPT2_SMALL = GPTDims(768, 12, 3072)
GPT2_MEDIUM = GPTDims(1024, 16, 4096)


@dataclasses.dataclass(frozen=True)
class GemvShape:
    name: str
    out: int
    inputs: int
    count: int          # how many such GEMVs per decode step (per layer)

    @property
    def elements(self) -> int:
        return self.out * self.inputs * self.count


def decode_gemvs(dims: GPTDims, context: int) -> list[GemvShape]:
    """The GEMVs of one layer's decode step with ``context`` cached tokens (n = context + 1
    keys including the new one)."""
    d, h, hd, ff, n = dims.d_model, dims.n_heads, dims.head_dim, dims.d_ff, context + 1
    return [GemvShape("qkv", 3 * d, d, 1), GemvShape("score", n, hd, h),
            GemvShape("context", hd, n, h), GemvShape("proj", d, d, 1),
            GemvShape("fc", ff, d, 1), GemvShape("fc2", d, ff, 1)]


def decode_weight_bytes(dims: GPTDims, context: int, bytes_per_element: int = 1) -> int:
    """Bytes of every GEMV's matrix in one layer's decode step (weights and KV cache)."""
    return sum(g.elements for g in decode_gemvs(dims, context)) * bytes_per_element


# ----------------------------------------------------------------------------------------------
# Float reference
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DecoderWeights:
    ln1_w: Tensor
    ln1_b: Tensor
    w_qkv: Tensor       # [3d × d]
    b_qkv: Tensor
    w_proj: Tensor      # [d × d]
    b_proj: Tensor
    ln2_w: Tensor
    ln2_b: Tensor
    w_fc: Tensor        # [ff × d]
    b_fc: Tensor
    w_fc2: Tensor       # [d × ff]
    b_fc2: Tensor


@dataclasses.dataclass
class KVCache:
    k: Tensor           # [H, n, hd]
    v: Tensor           # [H, n, hd]


def random_weights(dims: GPTDims, generator: torch.Generator, std: float = 0.02
                   ) -> DecoderWeights:
    d, ff = dims.d_model, dims.d_ff

    def normal(*shape: int, s: float = std) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * s

    return DecoderWeights(1 + normal(d, s=0.1), normal(d), normal(3 * d, d), normal(3 * d),
                          normal(d, d), normal(d), 1 + normal(d, s=0.1), normal(d),
                          normal(ff, d), normal(ff), normal(d, ff), normal(d))


def random_cache(dims: GPTDims, context: int, generator: torch.Generator) -> KVCache:
    shape = (dims.n_heads, context, dims.head_dim)
    return KVCache(torch.randn(*shape, generator=generator, dtype=torch.float64),
                   torch.randn(*shape, generator=generator, dtype=torch.float64))


def _layer_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], w, b, eps=1e-5)


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def decode_step(x: Tensor, weights: DecoderWeights, cache: KVCache, dims: GPTDims
                ) -> tuple[Tensor, KVCache]:
    """One decode step in float64: the layer output for token x [d] and the extended cache."""
    wt = weights
    x = x.to(torch.float64)
    h_, hd = dims.n_heads, dims.head_dim
    a = _layer_norm(x, wt.ln1_w, wt.ln1_b)
    q, k, v = (wt.w_qkv @ a + wt.b_qkv).split(dims.d_model)
    keys = torch.cat([cache.k, k.view(h_, 1, hd)], dim=1)
    values = torch.cat([cache.v, v.view(h_, 1, hd)], dim=1)
    heads = []
    for h in range(h_):
        s = keys[h] @ q[h * hd:(h + 1) * hd] / math.sqrt(hd)
        heads.append(values[h].T @ torch.softmax(s, dim=0))
    hidden = x + wt.w_proj @ torch.cat(heads) + wt.b_proj
    m = _layer_norm(hidden, wt.ln2_w, wt.ln2_b)
    y = hidden + wt.w_fc2 @ _gelu(wt.w_fc @ m + wt.b_fc) + wt.b_fc2
    return y, KVCache(keys, values)


# ----------------------------------------------------------------------------------------------
# int8 GEMVs
# ----------------------------------------------------------------------------------------------


def quantize_vector(v: Tensor) -> tuple[Tensor, float]:
    """Symmetric int8: ``scale = max|v| / 127`` (1 for a zero vector), ``q = clamp(round(v /
    scale), ±127)`` (round half to even)."""
    v = v.to(torch.float64)
    peak = float(v.abs().max()) if v.numel() else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    return torch.clamp(torch.round(v / scale), -127, 127).to(torch.int8), scale


def _quantize_rows(m: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row symmetric int8 of m [..., n, d]: (int8, scales [..., n])."""
    peak = m.abs().amax(dim=-1)
    scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
    q = torch.clamp(torch.round(m / scale[..., None]), -127, 127).to(torch.int8)
    return q, scale


@dataclasses.dataclass
class QuantDecoderWeights:
    float_weights: DecoderWeights       # biases and LayerNorm parameters are used from here
    w_qkv: Tensor
    s_qkv: float
    w_proj: Tensor
    s_proj: float
    w_fc: Tensor
    s_fc: float
    w_fc2: Tensor
    s_fc2: float


@dataclasses.dataclass
class QuantKVCache:
    k: Tensor           # int8 [H, n, hd]
    k_scale: Tensor     # [H, n]
    v: Tensor           # int8 [H, n, hd]
    v_scale: Tensor     # [H, n]


def quantize_weights(weights: DecoderWeights) -> QuantDecoderWeights:
    parts = {}
    for name in ("w_qkv", "w_proj", "w_fc", "w_fc2"):
        q, s = quantize_vector(getattr(weights, name).flatten())
        parts[name] = q.view_as(getattr(weights, name))
        parts["s" + name[1:]] = s
    return QuantDecoderWeights(weights, **parts)


def quantize_cache(cache: KVCache) -> QuantKVCache:
    k, ks = _quantize_rows(cache.k)
    v, vs = _quantize_rows(cache.v)
    return QuantKVCache(k, ks, v, vs)


def reference_gemv(w: Tensor, x: Tensor) -> Tensor:
    """int8 W [out × in] · int8 x [in] → int32 (exact; the PIM model must agree)."""
    return (w.to(torch.int64) @ x.to(torch.int64)).to(torch.int32)


def _linear(gemv: Gemv, w: Tensor, w_scale: float, a: Tensor, bias: Tensor) -> Tensor:
    aq, a_scale = quantize_vector(a)
    return gemv(w, aq).to(torch.float64) * (w_scale * a_scale) + bias


def decode_step_int8(x: Tensor, weights: QuantDecoderWeights, cache: QuantKVCache,
                     dims: GPTDims, gemv: Gemv = reference_gemv
                     ) -> tuple[Tensor, QuantKVCache, list[tuple[str, Tensor, Tensor]]]:
    """One decode step with int8 GEMVs through ``gemv``; returns the output [d] (float64), the
    extended cache and the list of (name, W, x) GEMV operands in the order they ran."""
    fw = weights.float_weights
    h_, hd, d = dims.n_heads, dims.head_dim, dims.d_model
    calls: list[tuple[str, Tensor, Tensor]] = []

    def traced(name: str) -> Gemv:
        def run(w: Tensor, xq: Tensor) -> Tensor:
            calls.append((name, w, xq))
            return gemv(w, xq)
        return run

    x = x.to(torch.float64)
    a = _layer_norm(x, fw.ln1_w, fw.ln1_b)
    q, k, v = _linear(traced("qkv"), weights.w_qkv, weights.s_qkv, a, fw.b_qkv).split(d)
    k_new, ks_new = _quantize_rows(k.view(h_, 1, hd))
    v_new, vs_new = _quantize_rows(v.view(h_, 1, hd))
    cache = QuantKVCache(torch.cat([cache.k, k_new], 1), torch.cat([cache.k_scale, ks_new], 1),
                         torch.cat([cache.v, v_new], 1), torch.cat([cache.v_scale, vs_new], 1))
    heads = []
    for h in range(h_):
        qq, q_scale = quantize_vector(q[h * hd:(h + 1) * hd])
        acc = traced("score")(cache.k[h], qq).to(torch.float64)
        s = acc * cache.k_scale[h] * q_scale / math.sqrt(hd)
        p = torch.softmax(s, dim=0)
        pq, p_scale = quantize_vector(p * cache.v_scale[h])
        heads.append(traced("context")(cache.v[h].T.contiguous(), pq).to(torch.float64)
                     * p_scale)
    hidden = x + _linear(traced("proj"), weights.w_proj, weights.s_proj, torch.cat(heads),
                         fw.b_proj)
    m = _layer_norm(hidden, fw.ln2_w, fw.ln2_b)
    f = _gelu(_linear(traced("fc"), weights.w_fc, weights.s_fc, m, fw.b_fc))
    y = hidden + _linear(traced("fc2"), weights.w_fc2, weights.s_fc2, f, fw.b_fc2)
    return y, cache, calls
