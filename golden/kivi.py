"""Golden model of KIVI asymmetric 2/4-bit KV-cache quantization, in exact integer arithmetic.

KIVI (Liu et al., 2024) quantizes the key cache *per channel* (a group is ``G`` consecutive
tokens of one channel: key outliers live in fixed channels) and the value cache *per token* (a
group is ``G`` consecutive channels of one token), asymmetrically with ``b ∈ {2, 4}`` bits:
``scale = (max − min)/(2^b − 1)``, ``q = clamp(round((x − min)/scale), 0, 2^b − 1)``,
``x̂ = q·scale + min``. The float recipe needs a divider and float min/max/scale; this module
defines an integer version that a hardware datapath implements bit for bit. Specification
(``L = 2^b − 1``, ``F = 15``):

1. **Group alignment.** Inputs are fp32, or bf16/fp16 widened exactly to fp32. For each group,
   ``E = floor(log2(max|x|))`` from the fp32 bits: biased exponent − 127 for a normal maximum,
   index of the leading mantissa one − 149 for a subnormal one (so ``−149 ≤ E ≤ 127``); an
   all-zero group (±0 only) has ``E = −126``. Every element becomes the signed integer
   ``X = trunc(x·2^(F − E))`` (truncation toward zero of the exact product, i.e. of the
   sign-magnitude fixed-point value): ``|X| < 2^16``, a 17-bit two's-complement number that keeps
   the top 16 significant bits of the group maximum exactly. ``−0.0`` gives ``X = 0``.
2. **Min and range.** ``mn = min X``, ``R = max X − mn`` (integers, ``0 ≤ R ≤ 2^17 − 2``).
3. **Code.** ``q`` = the number of ``k ∈ 1..L`` with ``2·(X − mn)·L ≥ (2k − 1)·R`` — round half
   up of ``(X − mn)·L/R`` with ``L`` comparators and no divider (operands stay below 2^22).
   When ``R = 0`` every ``q`` is 0 (the guard for max = min; the comparisons would all hold).
   Since ``X − mn ≤ R``, ``q ≤ L`` without a clamp.
4. **Outputs per group.** codes ``q`` (``b`` bits each), ``minimum = mn`` (17-bit signed),
   ``range = R`` (17-bit unsigned) and ``exponent = E`` (9-bit signed). A group holding any NaN or
   ±Inf sets its ``error`` flag and gets codes 0, minimum 0, range 0 and exponent −126 (the
   9-bit exponent field has spare codes, so the flag can be stored as one of them: the
   metadata is ``METADATA_BITS = 17 + 17 + 9 = 43`` bits per group).
5. **Dequantization** (may run on the host): ``x̂ = (mn + (q·R)/L)·2^(E − F)`` evaluated in
   float64 in that order (``q·R`` exact, one correctly rounded division by ``L``, one correctly
   rounded addition, an exact power-of-two scaling), then rounded to float32 (nearest-even).
   Error groups dequantize to NaN.

Error bound (tested): with the KIVI scale ``s = (max x − min x)/L`` of the float recipe and the
fixed-point quantum ``u = 2^(E − F)``, ``|x̂ − x| ≤ s/2 + u·(1 + 1/L)`` plus the final float32
rounding: ``R·u`` is within ``2u`` of ``max − min`` and the truncation of ``x`` costs ``< u``.

Layout. ``x`` is ``[tokens, channels]``. With ``axis="channel"`` (keys) ``tokens`` must be a
multiple of ``group`` and the per-group arrays are ``[tokens/group, channels]``: entry ``[g, c]``
covers tokens ``g·group .. g·group + group − 1`` of channel ``c``. With ``axis="token"``
(values) ``channels`` must be a multiple of ``group`` and the per-group arrays are
``[tokens, channels/group]``: entry ``[t, g]`` covers channels ``g·group ..`` of token ``t``.
:func:`group_view` gives the codes of each group in that order, element order inside the group
being token order (keys) or channel order (values); :func:`pack_codes` packs them little-endian.

:func:`kivi_cache` adds KIVI's full-precision residual window: the most recent ``residual``
tokens (and, for keys, the older tokens that do not fill a whole per-channel group) stay fp32.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "AXES",
    "BITS",
    "EXPONENT_BITS",
    "FRAC_BITS",
    "METADATA_BITS",
    "MINIMUM_BITS",
    "RANGE_BITS",
    "ZERO_GROUP_EXPONENT",
    "bits_per_element",
    "group_view",
    "kivi_cache",
    "kivi_cache_dequantize",
    "kivi_dequantize",
    "kivi_float_reference",
    "kivi_quantize",
    "pack_codes",
    "unpack_codes",
]

BITS = (2, 4)
AXES = ("channel", "token")
FRAC_BITS = 15
"""F: the group maximum is aligned to [2^15, 2^16), so X is a 17-bit signed integer."""
ZERO_GROUP_EXPONENT = -126
"""E of an all-zero group and of a flagged (NaN/Inf) group."""
MINIMUM_BITS = 17
RANGE_BITS = 17
EXPONENT_BITS = 9
METADATA_BITS = MINIMUM_BITS + RANGE_BITS + EXPONENT_BITS
"""Stored bits per group besides the codes: minimum, range and exponent (error is an exponent
code)."""

_INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_NO_EXP = -(1 << 20)  # floor(log2 0) = -inf
_MAX_SHIFT = 62


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}; got {bits!r}")
    return int(bits)


def _check_axis(axis: str) -> str:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES} (keys: 'channel', values: 'token'); "
                         f"got {axis!r}")
    return axis


def _check_group(group: int, length: int, what: str) -> int:
    """group must be a positive integer dividing ``length`` (the grouped axis, named ``what``)."""
    if isinstance(group, bool) or not isinstance(group, int | np.integer) or group < 1:
        raise ValueError(f"group must be a positive integer dividing the {what}; got {group!r}")
    if length % group:
        raise ValueError(f"group must be a positive integer dividing the {what} ({length}); "
                         f"got {group}")
    return int(group)


def _as_float_matrix(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in _INPUT_DTYPES:
        raise ValueError(f"{name} must be float32, bfloat16 or float16; got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D [tokens, channels]; got shape {tuple(x.shape)}")
    return x.detach().to(device="cpu", dtype=torch.float32).contiguous()


def _grouped_len(shape: tuple[int, int], axis: str) -> tuple[int, str]:
    tokens, channels = shape
    return (tokens, "tokens") if axis == "channel" else (channels, "channels")


# ----------------------------------------------------------------------------------------------
# Group layout
# ----------------------------------------------------------------------------------------------


def group_view(x: np.ndarray | torch.Tensor, group: int, axis: str) -> np.ndarray:
    """x [tokens, channels] → [A, B, group]: the elements of each group, groups in result order.

    ``axis="channel"``: [tokens/group, channels, group] (element j = token g·group + j);
    ``axis="token"``: [tokens, channels/group, group] (element j = channel g·group + j).
    """
    _check_axis(axis)
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"x must be 2-D [tokens, channels]; got shape {arr.shape}")
    tokens, channels = arr.shape
    length, what = _grouped_len(arr.shape, axis)
    group = _check_group(group, length, what)
    if axis == "channel":
        return arr.reshape(tokens // group, group, channels).transpose(0, 2, 1)
    return arr.reshape(tokens, channels // group, group)


def _ungroup(g: np.ndarray, axis: str) -> np.ndarray:
    """Inverse of :func:`group_view`: [A, B, group] → [tokens, channels]."""
    a, b, n = g.shape
    if axis == "channel":
        return g.transpose(0, 2, 1).reshape(a * n, b)
    return g.reshape(a, b * n)


# ----------------------------------------------------------------------------------------------
# Integer core
# ----------------------------------------------------------------------------------------------


def _split_fp32(x: torch.Tensor) -> tuple[np.ndarray, ...]:
    """fp32 x → (negative, sig, ex, e_x, finite): |x| = sig·2^ex, e_x = floor(log2|x|)."""
    bits = x.numpy().view(np.uint32).astype(np.int64)
    neg = ((bits >> 31) & 1) == 1
    ef = (bits >> 23) & 0xFF
    man = bits & 0x7FFFFF
    finite = ef != 0xFF
    sig = np.where(finite, np.where(ef > 0, man | (1 << 23), man), 0)
    ex = np.where(ef > 0, ef - 150, -149)
    _, bitlen = np.frexp(sig.astype(np.float64))  # exact: sig < 2^24
    e_x = np.where(sig > 0, ex + bitlen.astype(np.int64) - 1, _NO_EXP)
    return neg, sig, ex, e_x, finite


def _count_codes(d: np.ndarray, r: np.ndarray, levels: int) -> np.ndarray:
    """q = #{k ∈ 1..L : 2·d·L ≥ (2k − 1)·R}, 0 where R = 0 (d = X − mn ≥ 0, R broadcast)."""
    lhs = 2 * d * levels
    q = np.zeros_like(d)
    for k in range(1, levels + 1):
        q += lhs >= (2 * k - 1) * r
    return np.where(r > 0, q, 0)


def kivi_quantize(x: torch.Tensor, bits: int, group: int, axis: str) -> dict[str, np.ndarray]:
    """Quantize x [tokens, channels] (fp32/bf16/fp16) by the integer KIVI spec of this module.

    Returns a dict of numpy arrays: ``codes`` uint8 [tokens, channels] (the shape of x);
    per group (``[tokens/group, channels]`` for axis "channel", ``[tokens, channels/group]`` for
    "token"): ``minimum`` int32 (mn), ``range`` int32 (R), ``exponent`` int16 (E), ``error`` bool.
    Also ``fixed`` int32 [tokens, channels], the aligned integers X (for testbenches).
    """
    bits = _check_bits(bits)
    _check_axis(axis)
    xf = _as_float_matrix(x)
    length, what = _grouped_len(tuple(xf.shape), axis)
    group = _check_group(group, length, what)
    levels = (1 << bits) - 1

    neg, sig, ex, e_x, finite = (group_view(a, group, axis) for a in _split_fp32(xf))
    error = ~finite.all(axis=-1)
    e_grp = e_x.max(axis=-1)
    e_grp = np.where((e_grp == _NO_EXP) | error, ZERO_GROUP_EXPONENT, e_grp)

    # X = trunc(sig·2^(ex + F − E)) with the sign applied after: truncation toward zero.
    shift = ex + FRAC_BITS - e_grp[..., None]
    left = np.clip(shift, 0, _MAX_SHIFT)
    right = np.clip(-shift, 0, _MAX_SHIFT)
    mag = np.where(shift >= 0, sig << left, sig >> right)  # left shifts only for subnormals
    fixed = np.where(neg, -mag, mag)
    fixed = np.where(error[..., None], 0, fixed)

    mn = fixed.min(axis=-1)
    rng = fixed.max(axis=-1) - mn
    codes = _count_codes(fixed - mn[..., None], rng[..., None], levels)
    assert fixed.size == 0 or (np.abs(fixed).max() < 1 << 16 and codes.max() <= levels)
    return {
        "codes": _ungroup(codes, axis).astype(np.uint8),
        "minimum": mn.astype(np.int32),
        "range": rng.astype(np.int32),
        "exponent": e_grp.astype(np.int16),
        "error": error,
        "fixed": _ungroup(fixed, axis).astype(np.int32),
    }


def kivi_dequantize(result: dict[str, np.ndarray], bits: int, group: int,
                    axis: str) -> torch.Tensor:
    """x̂ = (mn + (q·R)/L)·2^(E − F) in float64, rounded once to float32; NaN in error groups."""
    bits = _check_bits(bits)
    _check_axis(axis)
    codes = np.asarray(result["codes"])
    if codes.ndim != 2:
        raise ValueError(f"result['codes'] must be 2-D [tokens, channels]; got {codes.shape}")
    length, what = _grouped_len(codes.shape, axis)
    group = _check_group(group, length, what)
    levels = (1 << bits) - 1
    if codes.size and (codes.min() < 0 or codes.max() > levels):
        raise ValueError(f"codes must lie in 0..{levels} for bits = {bits}")
    q = group_view(codes.astype(np.int64), group, axis)
    gshape = q.shape[:2]
    per_group = {}
    for key in ("minimum", "range", "exponent", "error"):
        arr = np.asarray(result[key])
        if arr.shape != gshape:
            raise ValueError(f"result[{key!r}] must have shape {gshape}; got {arr.shape}")
        per_group[key] = arr[..., None]
    mn = per_group["minimum"].astype(np.int64)
    rng = per_group["range"].astype(np.int64)
    e = per_group["exponent"].astype(np.int64)
    val = mn.astype(np.float64) + (q * rng).astype(np.float64) / levels
    val = np.ldexp(val, e - FRAC_BITS)
    val = np.where(per_group["error"], np.nan, val)
    return torch.from_numpy(_ungroup(val, axis).astype(np.float32))


def kivi_float_reference(x: torch.Tensor, bits: int, group: int, axis: str) -> torch.Tensor:
    """The plain float KIVI recipe, for error comparison (not bit-exact with the integer spec).

    Per group in float64: ``scale = (max − min)/L``, ``q = round_half_even(clamp((x − min)/scale,
    0, L))`` (what KIVI's ``clamp_().round_()`` does), ``x̂ = q·scale + min``; a group with
    ``max = min`` returns ``min``; NaN/Inf groups return NaN. Rounded to float32 at the end.
    """
    bits = _check_bits(bits)
    _check_axis(axis)
    xf = _as_float_matrix(x)
    length, what = _grouped_len(tuple(xf.shape), axis)
    group = _check_group(group, length, what)
    levels = (1 << bits) - 1
    g = group_view(xf.numpy().astype(np.float64), group, axis)
    finite = np.isfinite(g).all(axis=-1, keepdims=True)
    gz = np.where(finite, g, 0.0)
    mn = gz.min(axis=-1, keepdims=True)
    scale = (gz.max(axis=-1, keepdims=True) - mn) / levels
    safe = np.where(scale > 0, scale, 1.0)
    q = np.round(np.clip((gz - mn) / safe, 0, levels))
    out = np.where(scale > 0, q * scale + mn, mn)
    out = np.where(finite, out, np.nan)
    return torch.from_numpy(_ungroup(out, axis).astype(np.float32))


def bits_per_element(bits: int, group: int) -> float:
    """Storage cost of one element: b code bits plus the group's 43 metadata bits / group."""
    _check_bits(bits)
    if isinstance(group, bool) or not isinstance(group, int | np.integer) or group < 1:
        raise ValueError(f"group must be a positive integer; got {group!r}")
    return bits + METADATA_BITS / group


# ----------------------------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------------------------


def _check_pack_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 1..8; got {bits!r}")
    return int(bits)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``bits``-bit codes along the last axis into bytes, little-endian.

    Code j occupies bits ``j·bits .. j·bits + bits − 1`` of the little-endian bit stream (the
    first code sits in the lowest bits of byte 0); a last partial byte is zero-padded. Result:
    uint8 [..., ceil(n·bits/8)]. Pack one group per row with ``pack_codes(group_view(...))``.
    """
    bits = _check_pack_bits(bits)
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui":
        raise ValueError(f"codes must be an integer array; got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("codes must have at least one axis")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << bits):
        raise ValueError(f"codes must lie in 0..{(1 << bits) - 1} for bits = {bits}")
    arr = arr.astype(np.int64)
    planes = ((arr[..., None] >> np.arange(bits)) & 1).astype(np.uint8)  # [..., n, bits]
    stream = planes.reshape(*arr.shape[:-1], arr.shape[-1] * bits)
    return np.packbits(stream, axis=-1, bitorder="little")


def unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``count`` codes of each row, uint8 [..., count]."""
    bits = _check_pack_bits(bits)
    arr = np.asarray(packed)
    if arr.dtype != np.uint8 or arr.ndim == 0:
        raise ValueError(f"packed must be a uint8 array with at least one axis; got {arr.dtype}")
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise ValueError(f"count must be a non-negative integer; got {count!r}")
    if count * bits > arr.shape[-1] * 8:
        raise ValueError(f"count = {count} codes of {bits} bits need "
                         f"{math.ceil(count * bits / 8)} bytes; packed has {arr.shape[-1]}")
    stream = np.unpackbits(arr, axis=-1, bitorder="little")[..., : count * bits]
    planes = stream.reshape(*arr.shape[:-1], count, bits).astype(np.int64)
    return (planes << np.arange(bits)).sum(axis=-1).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Cache with a residual window
# ----------------------------------------------------------------------------------------------


def kivi_cache(k: torch.Tensor, v: torch.Tensor, bits: int, group: int, residual: int,
               value_group: int | None = None) -> dict[str, object]:
    """KIVI's cache layout for one head: quantized history plus a full-precision residual.

    ``k``, ``v``: [tokens, channels]. Values: the oldest ``tokens − residual`` tokens are
    quantized per token (groups of ``value_group`` channels, default ``group``), the last
    ``residual`` tokens stay fp32. Keys: only whole per-channel groups of ``group`` tokens can be
    quantized, so the oldest ``floor((tokens − residual)/group)·group`` tokens are quantized and
    every later token — the window plus the ones that do not fill a group — stays fp32.

    Returns ``key`` / ``value``: the :func:`kivi_quantize` result of the quantized part (None if
    empty), ``key_residual`` / ``value_residual``: fp32 [r, channels], and the token counts
    ``key_quantized`` / ``value_quantized`` plus the parameters (for
    :func:`kivi_cache_dequantize`).
    """
    bits = _check_bits(bits)
    kf, vf = _as_float_matrix(k, "k"), _as_float_matrix(v, "v")
    if kf.shape[0] != vf.shape[0]:
        raise ValueError(f"k and v must have the same number of tokens; got shapes "
                         f"{tuple(kf.shape)} and {tuple(vf.shape)}")
    if isinstance(group, bool) or not isinstance(group, int | np.integer) or group < 1:
        raise ValueError(f"group must be a positive integer; got {group!r}")
    value_group = group if value_group is None else value_group
    _check_group(value_group, vf.shape[1], "value channels")
    if isinstance(residual, bool) or not isinstance(residual, int | np.integer) or residual < 0:
        raise ValueError(f"residual must be a non-negative integer; got {residual!r}")
    tokens = kf.shape[0]
    old = max(tokens - int(residual), 0)
    nk = old // group * group
    key = kivi_quantize(kf[:nk], bits, int(group), "channel") if nk else None
    value = kivi_quantize(vf[:old], bits, int(value_group), "token") if old else None
    return {
        "key": key,
        "value": value,
        "key_residual": kf[nk:].clone(),
        "value_residual": vf[old:].clone(),
        "key_quantized": nk,
        "value_quantized": old,
        "bits": bits,
        "group": int(group),
        "value_group": int(value_group),
        "residual": int(residual),
    }


def kivi_cache_dequantize(cache: dict[str, object]) -> tuple[torch.Tensor, torch.Tensor]:
    """(k̂, v̂) [tokens, channels] float32 of a :func:`kivi_cache`: dequantized history + residual."""
    bits, group, vgroup = cache["bits"], cache["group"], cache["value_group"]
    parts = []
    for name, axis, g in (("key", "channel", group), ("value", "token", vgroup)):
        res = cache[f"{name}_residual"]
        if cache[name] is None:
            parts.append(res.clone())
        else:
            deq = kivi_dequantize(cache[name], bits, g, axis)
            parts.append(torch.cat([deq, res], dim=0))
    return parts[0], parts[1]
