"""Golden model of microscaling (MX) and block-floating-point (BFP) quantization, bit-exact.

A row of ``cols`` fp32 values (bf16/fp16 are first widened to fp32, exactly) is cut into blocks of
``block_size`` consecutive elements. Each block gets one shared E8M0 scale ``2^s`` (code ``s+127``,
0xFF = NaN) and each element an element code in one of the formats of :data:`FORMATS`:
OCP FP8 E4M3/E5M2, FP6 E3M2/E2M3, FP4 E2M1, MXINT8, or ``bfp<P>`` (P-bit two's-complement
fixed point ``c / 2^(P-2)``; ``bfp8`` is numerically MXINT8).

The arithmetic is the hardware's (the RTL must match it bit for bit):

1. A block holding any NaN or ±Inf gets scale code 0xFF and all element codes 0.
2. ``E = floor(log2(amax))`` from the fp32 bits of ``amax = max|x|`` (normal: biased exponent
   − 127; subnormal: index of the leading mantissa one − 149). ``s = max(E − emax, −127)``;
   an all-zero block has ``s = −127``.
3. Each element: ``v = |x|·2^−s`` (exact). FP formats: quantum ``q = 2^(e' − mbits)`` with
   ``e' = max(floor(log2 v), 1 − bias)``; int/bfp formats: ``q = 2^−(P−2)``. ``t = v/q`` is
   rounded to an integer ``r`` (nearest-even, nearest-away, toward-zero, or stochastic
   ``floor(t + R/256)`` with an 8-bit LFSR byte R); ``r·q`` above the format's maximum saturates
   to it. FP codes keep the input's sign bit (so −0.0 and negatives rounding to 0 give a code with
   only the sign bit set); int/bfp codes are ``sign·r`` in two's complement.

Why integer arithmetic: every step above is done on the fp32 bit patterns with numpy int64, so
nothing depends on float rounding, float ``log2`` or flush-to-zero behaviour (the known sources of
mismatches between float emulators and hardware). :func:`mx_float_reference` recomputes the
nearest-even result by an independent float64 method (nearest value of the enumerated grid) for
error reports and as a cross-check.

Stochastic rounding draws its bytes from ``lanes`` 32-bit Galois LFSRs, one per input lane of the
hardware stream (see :func:`lfsr_bytes`); every :func:`mx_quantize` call starts them from their
seeds, i.e. one call models one stream from reset.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

__all__ = [
    "BLOCK_SIZE_RANGE",
    "FORMATS",
    "LFSR_SEED_BASE",
    "LFSR_SEED_STRIDE",
    "LFSR_TAPS",
    "ROUNDINGS",
    "SCALE_BIAS",
    "SCALE_NAN",
    "ElementFormat",
    "decode_element",
    "decode_scale",
    "element_format",
    "encode_element",
    "lfsr_bytes",
    "lfsr_seed",
    "mx_dequantize",
    "mx_float_reference",
    "mx_quantize",
]

SCALE_BIAS = 127
SCALE_NAN = 0xFF
SCALE_MIN_EXP = -127
BLOCK_SIZE_RANGE = (8, 128)
ROUNDINGS = ("nearest_even", "nearest_away", "toward_zero", "stochastic")

LFSR_SEED_BASE = 0x1D872B41
LFSR_SEED_STRIDE = 0x9E3779B9
LFSR_TAPS = 0x80200003

_INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_FRAC_BITS = 40  # fraction bits kept of t = v/q (plus a sticky bit): ties stay exact
_ZERO_EXP = -(1 << 20)  # stands for floor(log2(0)) = -inf
_MAX_SHIFT = 62


@dataclass(frozen=True)
class ElementFormat:
    """One element format.

    ``kind`` is ``"fp"`` (sign-magnitude float: sign bit at the top, then ``ebits`` exponent
    bits with ``bias``, then ``mbits`` mantissa bits; exponent field 0 is subnormal) or ``"int"``
    (two's-complement ``code_bits``-bit code c meaning ``c / 2^mbits``; for ``int8``/``bfp<P>``,
    ``mbits = P − 2`` and ``ebits = bias = 0``). ``emax`` is the exponent of the largest power of
    two the format holds (what the shared scale aligns the block maximum to), ``max_value`` the
    largest finite magnitude and ``max_code`` its (positive) code; quantization saturates there.
    """

    name: str
    kind: str
    ebits: int
    mbits: int
    bias: int
    emax: int
    max_value: float
    code_bits: int
    max_code: int

    @property
    def has_inf(self) -> bool:
        """Whether some code decodes to ±Inf (only FP8 E5M2)."""
        return self.name == "fp8_e5m2"

    @property
    def has_nan(self) -> bool:
        """Whether some code decodes to NaN (FP8 E4M3 and E5M2)."""
        return self.name in ("fp8_e4m3", "fp8_e5m2")

    @property
    def min_quantum_exp(self) -> int:
        """log2 of the smallest step (FP: the smallest subnormal; int: 2^−mbits)."""
        if self.kind == "fp":
            return 1 - self.bias - self.mbits
        return -self.mbits


def _bfp(p: int) -> ElementFormat:
    top = (1 << (p - 1)) - 1
    return ElementFormat(f"bfp{p}", "int", 0, p - 2, 0, 0, top / 2 ** (p - 2), p, top)


FORMATS: dict[str, ElementFormat] = {
    "fp8_e4m3": ElementFormat("fp8_e4m3", "fp", 4, 3, 7, 8, 448.0, 8, 0x7E),
    "fp8_e5m2": ElementFormat("fp8_e5m2", "fp", 5, 2, 15, 15, 57344.0, 8, 0x7B),
    "fp6_e3m2": ElementFormat("fp6_e3m2", "fp", 3, 2, 3, 4, 28.0, 6, 0x1F),
    "fp6_e2m3": ElementFormat("fp6_e2m3", "fp", 2, 3, 1, 2, 7.5, 6, 0x1F),
    "fp4_e2m1": ElementFormat("fp4_e2m1", "fp", 2, 1, 1, 2, 6.0, 4, 0x7),
    "int8": ElementFormat("int8", "int", 0, 6, 0, 0, 127 / 64, 8, 0x7F),
    **{f"bfp{p}": _bfp(p) for p in range(2, 9)},
}

_FORMAT_HELP = "fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1, int8, or bfp<P> with P in 2..8"


def element_format(name: str) -> ElementFormat:
    """The :class:`ElementFormat` called ``name`` (``bfp<P>`` is parsed for P = 2..8)."""
    if isinstance(name, ElementFormat):
        return name
    if isinstance(name, str):
        if name in FORMATS:
            return FORMATS[name]
        m = re.fullmatch(r"bfp(\d+)", name)
        if m:
            raise ValueError(f"format bfp<P> needs P in 2..8; got {name!r}")
    raise ValueError(f"format must be one of {_FORMAT_HELP}; got {name!r}")


def _check_rounding(rounding: str) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}; got {rounding!r}")


def _check_block_size(block_size: int, cols: int) -> None:
    lo, hi = BLOCK_SIZE_RANGE
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer):
        raise ValueError(f"block_size must be an integer in {lo}..{hi}; got {block_size!r}")
    if not lo <= block_size <= hi:
        raise ValueError(f"block_size must be an integer in {lo}..{hi}; got {block_size!r}")
    if cols % block_size:
        raise ValueError(f"cols = {cols} must be a multiple of block_size = {block_size}")


# ----------------------------------------------------------------------------------------------
# Random bytes for stochastic rounding
# ----------------------------------------------------------------------------------------------


def lfsr_seed(lane: int) -> int:
    """Initial state of lane ``lane``'s LFSR: ``0x1D872B41 ^ (lane·0x9E3779B9 mod 2^32)``, or 1."""
    seed = LFSR_SEED_BASE ^ ((lane * LFSR_SEED_STRIDE) & 0xFFFFFFFF)
    return seed or 1


def lfsr_bytes(n_elements: int, lanes: int = 1) -> np.ndarray:
    """The random byte R of each of the first ``n_elements`` stream elements, uint8 [n_elements].

    Element j is handled by lane ``j % lanes`` at beat ``j // lanes``. Its byte is the low 8 bits
    of that lane's 32-bit Galois LFSR state *before* the beat's step; every lane steps once per
    beat: ``state = (state >> 1) ^ (0x80200003 if state & 1 else 0)``.
    """
    if isinstance(n_elements, bool) or not isinstance(n_elements, int | np.integer):
        raise ValueError(f"n_elements must be a non-negative integer; got {n_elements!r}")
    if n_elements < 0:
        raise ValueError(f"n_elements must be a non-negative integer; got {n_elements!r}")
    _check_lanes(lanes)
    beats = -(-int(n_elements) // lanes)
    out = np.empty((beats, lanes), dtype=np.uint8)
    if beats >= lanes:  # long streams: a plain integer loop per lane is fastest
        for lane in range(lanes):
            state = lfsr_seed(lane)
            col = bytearray(beats)
            for b in range(beats):
                col[b] = state & 0xFF
                state = (state >> 1) ^ (LFSR_TAPS if state & 1 else 0)
            out[:, lane] = np.frombuffer(bytes(col), dtype=np.uint8)
    else:  # many lanes, few beats: step all lanes at once
        state = np.array([lfsr_seed(lane) for lane in range(lanes)], dtype=np.int64)
        for b in range(beats):
            out[b] = (state & 0xFF).astype(np.uint8)
            state = (state >> 1) ^ np.where(state & 1, LFSR_TAPS, 0)
    return out.reshape(-1)[:n_elements]


def _check_lanes(lanes: int) -> None:
    if isinstance(lanes, bool) or not isinstance(lanes, int | np.integer) or lanes < 1:
        raise ValueError(f"lanes must be a positive integer; got {lanes!r}")


# ----------------------------------------------------------------------------------------------
# The integer core
# ----------------------------------------------------------------------------------------------


def _fp32_bits(x: torch.Tensor) -> np.ndarray:
    """The fp32 bit patterns of x (bf16/fp16 widened exactly) as int64, same shape."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in _INPUT_DTYPES:
        raise ValueError(f"x must be float32, bfloat16 or float16; got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [rows, cols]; got shape {tuple(x.shape)}")
    xf = x.detach().to(device="cpu", dtype=torch.float32).contiguous()
    return xf.numpy().view(np.uint32).astype(np.int64)


def _split_fp32(bits: np.ndarray) -> tuple[np.ndarray, ...]:
    """fp32 bits → (sign, sig, ex, e_x, finite) with |x| = sig·2^ex exactly.

    ``e_x = floor(log2|x|)`` (``_ZERO_EXP`` for zeros), computed as the spec says: biased exponent
    − 127 for normals, leading-one index − 149 for subnormals. Non-finite elements get sig = 0.
    """
    sign = (bits >> 31) & 1
    ef = (bits >> 23) & 0xFF
    man = bits & 0x7FFFFF
    finite = ef != 0xFF
    sig = np.where(finite, np.where(ef > 0, man | (1 << 23), man), 0)
    ex = np.where(ef > 0, ef - 150, -149)
    _, bitlen = np.frexp(sig.astype(np.float64))  # exact: sig < 2^24; bit length, 0 for 0
    e_x = np.where(sig > 0, ex + bitlen.astype(np.int64) - 1, _ZERO_EXP)
    return sign, sig, ex, e_x, finite


def _encode(
    sign: np.ndarray,
    sig: np.ndarray,
    ex: np.ndarray,
    e_x: np.ndarray,
    s: np.ndarray,
    fmt: ElementFormat,
    rounding: str,
    rand: np.ndarray | None,
) -> np.ndarray:
    """Element codes (int64) of the finite values (−1)^sign·sig·2^ex under scale 2^s."""
    e_v = e_x - s  # floor(log2 v), v = |x|·2^-s
    if fmt.kind == "fp":
        e_q = np.maximum(e_v, 1 - fmt.bias)  # e': the binade whose quantum applies
        shift = ex - s - e_q + fmt.mbits  # t = v/q = sig·2^shift
    else:
        e_q = None
        shift = ex - s + fmt.mbits
    # v >= 2^(emax+2) > max_value saturates whatever the rounding; keeping it out of the shift
    # bounds t below 2^(mbits+2), so t·2^_FRAC_BITS fits in int64.
    huge = e_v > fmt.emax + 1
    sig = np.where(huge, 0, sig)
    sh = shift + _FRAC_BITS
    left = np.clip(sh, 0, _MAX_SHIFT)
    right = np.clip(-sh, 0, _MAX_SHIFT)
    sticky = (sig & ((np.int64(1) << right) - 1)) != 0
    fixed = np.where(sh >= 0, sig << left, (sig >> right) | sticky)  # t in 24.40 fixed point
    ip = fixed >> _FRAC_BITS
    frac = fixed & ((1 << _FRAC_BITS) - 1)
    half = 1 << (_FRAC_BITS - 1)
    if rounding == "nearest_even":
        up = (frac > half) | ((frac == half) & ((ip & 1) == 1))
    elif rounding == "nearest_away":
        up = frac >= half
    elif rounding == "toward_zero":
        up = np.zeros_like(ip, dtype=bool)
    else:  # stochastic: floor(t + R/256) = ip + [top8(frac) + R >= 256]
        up = ((frac >> (_FRAC_BITS - 8)) + rand) >= 256
    r = ip + up
    if fmt.kind == "fp":
        # (e'+bias-1)<<mbits + r is the magnitude code: r < 2^mbits only in the subnormal binade
        # (field 0), and r = 2^(mbits+1) carries into the next exponent by itself.
        mag = ((e_q + fmt.bias - 1) << fmt.mbits) + r
        mag = np.where(huge, fmt.max_code, np.minimum(mag, fmt.max_code))
        return (sign << (fmt.code_bits - 1)) | mag
    mag = np.where(huge, fmt.max_code, np.minimum(r, fmt.max_code))
    mag = np.where(sign == 1, -mag, mag)
    return mag & ((1 << fmt.code_bits) - 1)


def mx_quantize(
    x: torch.Tensor,
    format: str,
    block_size: int,
    rounding: str = "nearest_even",
    lanes: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Quantize x [rows, cols] (fp32/bf16/fp16) to (scale codes, element codes), bit-exact.

    Returns uint8 arrays: E8M0 scale codes [rows, cols/block_size] (``s + 127``; 0xFF = NaN block)
    and element codes [rows, cols] (low ``code_bits`` bits used). ``lanes`` only matters for
    ``rounding="stochastic"``: the flattened row-major x is streamed ``lanes`` elements per beat
    and element j uses byte j of :func:`lfsr_bytes` (rows·cols, lanes).
    """
    fmt = element_format(format)
    _check_rounding(rounding)
    _check_lanes(lanes)
    bits = _fp32_bits(x)
    rows, cols = bits.shape
    _check_block_size(block_size, cols)
    nb = cols // block_size

    sign, sig, ex, e_x, finite = _split_fp32(bits)
    e_blk = e_x.reshape(rows, nb, block_size).max(axis=-1, initial=_ZERO_EXP)
    bad = ~finite.reshape(rows, nb, block_size).all(axis=-1)
    s = np.maximum(e_blk - fmt.emax, SCALE_MIN_EXP)  # <= 127 - emax for finite fp32
    s_el = np.repeat(s, block_size, axis=1)
    rand = None
    if rounding == "stochastic":
        rand = lfsr_bytes(rows * cols, lanes).reshape(rows, cols).astype(np.int64)
    codes = _encode(sign, sig, ex, e_x, s_el, fmt, rounding, rand)
    codes = np.where(np.repeat(bad, block_size, axis=1), 0, codes)
    scale = np.where(bad, SCALE_NAN, s + SCALE_BIAS)
    return scale.astype(np.uint8), codes.astype(np.uint8)


def encode_element(
    values: np.ndarray | torch.Tensor | float,
    format: str,
    rounding: str = "nearest_even",
    random_bytes: np.ndarray | None = None,
) -> np.ndarray:
    """Element codes (uint8) of finite values with scale 2^0, by the same core as mx_quantize.

    ``values`` must be exactly representable in fp32 (every decoded element value is). Rounding
    and saturation are those of :func:`mx_quantize`; ``random_bytes`` (same shape, 0..255) is
    required for ``rounding="stochastic"``.
    """
    fmt = element_format(format)
    _check_rounding(rounding)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    v64 = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v64).all():
        raise ValueError("values must be finite (NaN/Inf are block-level: see mx_quantize)")
    v32 = v64.astype(np.float32)
    if not np.array_equal(v32.astype(np.float64), v64):
        raise ValueError("values must be exactly representable in float32")
    rand = None
    if rounding == "stochastic":
        if random_bytes is None:
            raise ValueError("random_bytes is required for rounding='stochastic'")
        rand = np.broadcast_to(np.asarray(random_bytes, dtype=np.int64), v64.shape)
        if rand.min(initial=0) < 0 or rand.max(initial=0) > 255:
            raise ValueError("random_bytes must lie in 0..255")
    bits = np.ascontiguousarray(v32).view(np.uint32).astype(np.int64)
    sign, sig, ex, e_x, _ = _split_fp32(bits)
    codes = _encode(sign, sig, ex, e_x, np.zeros_like(bits), fmt, rounding, rand)
    return codes.astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------


@cache
def _decode_table(name: str) -> np.ndarray:
    """float64 value of every code 0 .. 2^code_bits − 1 of format ``name`` (read-only)."""
    fmt = FORMATS[name]
    n = 1 << fmt.code_bits
    table = np.empty(n, dtype=np.float64)
    for c in range(n):
        if fmt.kind == "int":
            signed = c - n if c >= n // 2 else c
            table[c] = signed / 2.0**fmt.mbits
            continue
        neg = c >> (fmt.code_bits - 1)
        field = (c >> fmt.mbits) & ((1 << fmt.ebits) - 1)
        mant = c & ((1 << fmt.mbits) - 1)
        top = (1 << fmt.ebits) - 1
        if fmt.name == "fp8_e4m3" and field == top and mant == (1 << fmt.mbits) - 1:
            mag = np.nan
        elif fmt.name == "fp8_e5m2" and field == top:
            mag = np.inf if mant == 0 else np.nan
        elif field == 0:
            mag = mant * 2.0 ** (1 - fmt.bias - fmt.mbits)
        else:
            mag = (1 + mant / 2.0**fmt.mbits) * 2.0 ** (field - fmt.bias)
        table[c] = -mag if neg else mag
    table.setflags(write=False)
    return table


def _as_codes(codes: np.ndarray, bits: int, what: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui":
        raise ValueError(f"{what} must be an integer array; got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << bits):
        raise ValueError(f"{what} must lie in 0..{(1 << bits) - 1}")
    return arr.astype(np.int64)


def decode_element(codes: np.ndarray, format: str) -> np.ndarray:
    """float64 values of element codes (any code of the format; ±0 keeps its sign).

    E4M3 0x7F/0xFF → NaN; E5M2 exponent field all ones → ±Inf (mantissa 0) or NaN; int/bfp
    −2^(P−1) (e.g. int8 0x80) → −2.0 although the quantizer never produces it.
    """
    fmt = element_format(format)
    arr = _as_codes(codes, fmt.code_bits, "codes")
    return _decode_table(fmt.name)[arr]


def decode_scale(scale: np.ndarray) -> np.ndarray:
    """float64 value of E8M0 scale codes: 2^(code − 127), NaN for 0xFF."""
    arr = _as_codes(scale, 8, "scale")
    return np.where(arr == SCALE_NAN, np.nan, np.ldexp(1.0, arr - SCALE_BIAS))


def mx_dequantize(
    scale: np.ndarray, codes: np.ndarray, format: str, block_size: int
) -> np.ndarray:
    """x̂ = decode(code)·2^s as float32 [rows, cols]; NaN wherever the block's scale is 0xFF.

    For codes produced by :func:`mx_quantize` the product is always an exact fp32 value (at most
    mbits+1 significant bits, magnitude between 2^−143 and < 2^128). An arbitrary (scale, code)
    pair beyond the fp32 range (e.g. scale 2^127 times E4M3 448) gives ±Inf, as an fp32 multiply
    would; nothing is ever rounded.
    """
    fmt = element_format(format)
    sc = _as_codes(scale, 8, "scale")
    cd = _as_codes(codes, fmt.code_bits, "codes")
    if sc.ndim != 2 or cd.ndim != 2:
        raise ValueError(f"scale and codes must be 2-D; got {sc.shape} and {cd.shape}")
    rows, cols = cd.shape
    _check_block_size(block_size, cols)
    if sc.shape != (rows, cols // block_size):
        raise ValueError(
            f"scale must have shape {(rows, cols // block_size)} for codes {cd.shape}; "
            f"got {sc.shape}"
        )
    vals = _decode_table(fmt.name)[cd]
    s_el = np.repeat(sc, block_size, axis=1)
    out = np.ldexp(vals, s_el - SCALE_BIAS)  # exact in float64
    out = np.where(s_el == SCALE_NAN, np.nan, out)
    with np.errstate(over="ignore"):
        return out.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Independent float64 reference
# ----------------------------------------------------------------------------------------------


@cache
def _positive_grid(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite non-negative values ≤ max of format ``name`` and their codes."""
    fmt = FORMATS[name]
    codes = np.arange(fmt.max_code + 1)
    vals = _decode_table(name)[codes]
    return vals, codes


def mx_float_reference(x: torch.Tensor, format: str, block_size: int) -> torch.Tensor:
    """What MX round-to-nearest-even quantization means, computed in float64 by another method.

    Per block: ``s = max(floor(log2 amax) − emax, −127)`` with the exponent from ``frexp``; each
    ``|x|·2^−s`` goes to the nearest value of the enumerated grid {representable values ≤ max}
    (ties to the even code; beyond max, max), and is scaled back. Blocks with NaN/Inf are NaN.
    FP formats keep the sign of zero, int formats give +0.0 — so the result equals
    ``mx_dequantize(*mx_quantize(x, format, block_size), format, block_size)`` bit for bit.
    """
    fmt = element_format(format)
    _fp32_bits(x)  # validates dtype and shape
    xd = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    rows, cols = xd.shape
    _check_block_size(block_size, cols)
    blocks = xd.reshape(rows, cols // block_size, block_size)
    finite = np.isfinite(blocks).all(axis=-1)
    mag = np.where(np.isfinite(blocks), np.abs(blocks), 0.0)
    amax = mag.max(axis=-1)
    _, fexp = np.frexp(amax)  # amax = m·2^fexp with m in [0.5, 1)
    e_blk = np.where(amax > 0, fexp.astype(np.int64) - 1, _ZERO_EXP)
    s = np.maximum(e_blk - fmt.emax, SCALE_MIN_EXP)[..., None]
    v = np.ldexp(mag, -s)

    grid, gcodes = _positive_grid(fmt.name)
    lo_i = np.clip(np.searchsorted(grid, v, side="right") - 1, 0, len(grid) - 1)
    hi_i = np.minimum(lo_i + 1, len(grid) - 1)
    lo, hi = grid[lo_i], grid[hi_i]
    mid = (lo + hi) / 2  # exact: grid values have few significant bits
    take_hi = (v > mid) | ((v == mid) & (gcodes[hi_i] % 2 == 0))
    q = np.where(take_hi, hi, lo)

    neg = np.signbit(blocks)
    if fmt.kind == "fp":
        res = np.where(neg, -q, q)
    else:
        res = np.where(neg & (q > 0), -q, q)
    res = np.ldexp(res, s)
    res = np.where(finite[..., None], res, np.nan)
    return torch.from_numpy(res.reshape(rows, cols).astype(np.float32))
