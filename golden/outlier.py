"""Outlier-aware channel reordering of the K cache, fixed at compile time.

Block formats (MX, BFP) share one exponent per block of consecutive channels of a token. A few
channels of the key cache are much larger than the rest (they are fixed per channel, not per
token), and a block that holds one of them spends its shared exponent on the outlier: the small
channels of that block lose most of their bits. d-Matrix-style block quantization with outliers
therefore reorders channels so that the outlier channels share blocks *with each other*.

The reordering costs nothing at run time. For a head, scores are ``q·kᵀ = Σ_c q_c·k_c``: any
permutation of the channels c, applied to both q and k, only reorders the terms of the sum. So a
per-head permutation ``perm`` (new channel j = old channel ``perm[j]``) is folded into the
projection weights: output rows ``h·head_dim + j`` of W_q and W_k (and their biases) become the
old rows ``h·head_dim + perm[h, j]``. K then comes out of the projection already reordered and
the attention scores are unchanged up to float summation order. (V and W_o are not touched.)

The permutation is computed once, from calibration activations: :func:`channel_permutation`
sorts the channels of one head by decreasing magnitude over the calibration tokens (``max|k|``
by default, since the block maximum sets the shared exponent; ``"rms"`` is the L2 alternative),
ties to the lower channel index, so consecutive blocks hold channels of similar size.
"""
from __future__ import annotations

import torch

__all__ = [
    "METRICS",
    "apply_channel_permutation",
    "channel_permutation",
    "check_qk_invariance",
    "expand_permutation",
    "head_permutations",
    "inverse_permutation",
    "permute_qk",
]

METRICS = ("max", "rms")


def _check_perm_1d(perm: torch.Tensor, d: int, name: str = "perm") -> None:
    if not isinstance(perm, torch.Tensor) or perm.dtype != torch.int64 or perm.dim() != 1:
        raise ValueError(f"{name} must be a 1-D LongTensor; got {perm!r}")
    if perm.numel() != d or not torch.equal(torch.sort(perm).values, torch.arange(d)):
        raise ValueError(f"{name} must be a permutation of 0..{d - 1}")


def channel_permutation(k_calibration: torch.Tensor, metric: str = "max") -> torch.Tensor:
    """LongTensor [d]: channels of k_calibration [tokens, d] by decreasing magnitude.

    ``metric="max"``: max |k| over the tokens; ``"rms"``: root mean square. A stable sort, so
    equal magnitudes keep channel order. NaN/Inf are refused (calibration data must be finite).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if not isinstance(k_calibration, torch.Tensor) or not k_calibration.is_floating_point():
        raise ValueError("k_calibration must be a floating-point torch.Tensor")
    if k_calibration.dim() != 2 or k_calibration.shape[0] < 1 or k_calibration.shape[1] < 1:
        raise ValueError(f"k_calibration must be 2-D [tokens, d], non-empty; got shape "
                         f"{tuple(k_calibration.shape)}")
    k = k_calibration.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(k).all():
        raise ValueError("k_calibration holds NaN or Inf")
    mag = k.abs().amax(dim=0) if metric == "max" else k.pow(2).mean(dim=0).sqrt()
    return torch.sort(mag, descending=True, stable=True).indices


def head_permutations(k_calibration: torch.Tensor, metric: str = "max") -> torch.Tensor:
    """LongTensor [heads, d]: :func:`channel_permutation` of each head of [heads, tokens, d]."""
    if not isinstance(k_calibration, torch.Tensor) or k_calibration.dim() != 3:
        raise ValueError("k_calibration must be a 3-D tensor [heads, tokens, d]")
    return torch.stack([channel_permutation(kh, metric) for kh in k_calibration])


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """inv with inv[perm[j]] = j, for a 1-D perm or each row of a 2-D one."""
    if not isinstance(perm, torch.Tensor) or perm.dim() not in (1, 2):
        raise ValueError("perm must be a 1-D or 2-D LongTensor")
    rows = perm if perm.dim() == 2 else perm[None]
    for row in rows:
        _check_perm_1d(row, rows.shape[1])
    inv = torch.empty_like(rows)
    inv.scatter_(1, rows, torch.arange(rows.shape[1]).expand_as(rows).contiguous())
    return inv if perm.dim() == 2 else inv[0]


def _per_head(perm: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """perm as [heads, head_dim] (a 1-D perm is used for every head), validated."""
    for name, val in (("heads", heads), ("head_dim", head_dim)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive integer; got {val!r}")
    if not isinstance(perm, torch.Tensor) or perm.dtype != torch.int64:
        raise ValueError("perm must be a LongTensor [head_dim] or [heads, head_dim]")
    if perm.dim() == 1:
        perm = perm.expand(heads, -1)
    if tuple(perm.shape) != (heads, head_dim):
        raise ValueError(f"perm must have shape ({head_dim},) or ({heads}, {head_dim}); "
                         f"got {tuple(perm.shape)}")
    for row in perm:
        _check_perm_1d(row, head_dim)
    return perm


def expand_permutation(perm: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """LongTensor [heads·head_dim]: new row ``h·head_dim + j`` is old ``h·head_dim + perm[h, j]``.

    The gather index for W_q / W_k output rows (a 1-D perm is used for every head).
    """
    p = _per_head(perm, heads, head_dim)
    return (p + torch.arange(heads)[:, None] * head_dim).reshape(-1)


def permute_qk(w_q: torch.Tensor, w_k: torch.Tensor, b_q: torch.Tensor | None,
               b_k: torch.Tensor | None, perm: torch.Tensor, heads: int,
               head_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                                       torch.Tensor | None]:
    """Fold per-head channel permutations into the Q and K projections (nn.Linear layout).

    ``w_q``, ``w_k``: [heads·head_dim, in]; ``b_q``, ``b_k``: [heads·head_dim] or None;
    ``perm``: [heads, head_dim] (or [head_dim] for all heads). Returns the permuted
    ``(w_q, w_k, b_q, b_k)``: the same output rows reordered, so each head's q·kᵀ is unchanged.
    """
    idx = expand_permutation(perm, heads, head_dim)
    rows = heads * head_dim
    out = []
    for name, t, dims in (("w_q", w_q, 2), ("w_k", w_k, 2), ("b_q", b_q, 1), ("b_k", b_k, 1)):
        if t is None and dims == 1:
            out.append(None)
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != dims or t.shape[0] != rows:
            raise ValueError(f"{name} must be a {dims}-D tensor with {rows} = heads·head_dim "
                             f"rows; got {getattr(t, 'shape', type(t).__name__)}")
        out.append(t[idx].clone())
    return out[0], out[1], out[2], out[3]


def apply_channel_permutation(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder the last axis of per-head activations t [heads, tokens, d] by perm [heads, d].

    Equal to what the permuted projection produces (``t'[h, :, j] = t[h, :, perm[h, j]]``);
    with ``inverse_permutation(perm)`` it undoes the reordering.
    """
    if not isinstance(t, torch.Tensor) or t.dim() != 3:
        raise ValueError("t must be a 3-D tensor [heads, tokens, d]")
    p = _per_head(perm, t.shape[0], t.shape[2])
    return torch.gather(t, 2, p[:, None, :].expand(-1, t.shape[1], -1))


def check_qk_invariance(x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                        b_q: torch.Tensor | None, b_k: torch.Tensor | None,
                        perm: torch.Tensor, heads: int, head_dim: int) -> float:
    """Largest |Δ| of the per-head scores q·kᵀ of x [tokens, in], original vs permuted weights.

    Computed in float32 like the network; the difference is float summation order only (it is
    0 in exact arithmetic), so callers compare it against a rounding-size tolerance.
    """
    wq2, wk2, bq2, bk2 = permute_qk(w_q, w_k, b_q, b_k, perm, heads, head_dim)

    def scores(wq: torch.Tensor, wk: torch.Tensor, bq: torch.Tensor | None,
               bk: torch.Tensor | None) -> torch.Tensor:
        q = torch.nn.functional.linear(x, wq, bq).view(-1, heads, head_dim).transpose(0, 1)
        k = torch.nn.functional.linear(x, wk, bk).view(-1, heads, head_dim).transpose(0, 1)
        return q @ k.transpose(1, 2)

    with torch.no_grad():
        return float((scores(w_q, w_k, b_q, b_k) - scores(wq2, wk2, bq2, bk2)).abs().max())
