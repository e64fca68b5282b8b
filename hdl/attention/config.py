"""Configuration of the fused attention engine (``attention``) and its fixed-point formats.

Numerics (the golden model ``golden.attention`` mirrors every step bit for bit):

* scores ``s = q·k`` are exact integers (``score_bits``);
* the runtime softmax scale is ``c = round(scale·log2(e)·2**SCALE_FRAC)`` (unsigned
  ``SCALE_BITS``), so ``softmax(s·scale)`` becomes powers of two of ``(s - max)·c``;
* an exponent argument ``u = ((m - s)·c) >> (SCALE_FRAC - exp_frac_bits)`` (``m ≥ s``, floor)
  has ``exp_frac_bits`` fractional bits and stands for ``2**(-u / 2**exp_frac_bits)``;
* ``exp2``: ``I = u >> F``, ``f = u mod 2**F``; segment ``k = f >> (F - log2 S)``, offset
  ``r = f mod 2**(F - log2 S)``; table ``T[k] = round(2**(P+GUARD) · 2**(-k/S))``, k = 0..S;
  ``pwl``: ``mant = T[k] - (((T[k] - T[k+1])·r) >> (F - log2 S))``; ``table``: ``mant = T[k]``;
  result ``(mant + 2**(I+GUARD-1)) >> (I+GUARD)`` (0 once ``I ≥ P + 2``), a probability in
  units of ``2**-P`` (``prob_bits``), exactly ``2**P`` for ``u = 0``;
* per row and key block, online softmax with rescaling rounded half up
  (``(x·alpha + 2**(P-1)) >> P``), and the output ``round_half_away(o_acc / l)`` saturated to
  ``width`` bits (0 for a row that saw no key).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import BlockConfig, param

__all__ = ["EXP2_KINDS", "GUARD", "HEAD_BITS", "SCALE_BITS", "SCALE_FRAC", "SEQ_BITS",
           "AttentionConfig"]

#: Width of the runtime lengths Nq and Nkv in the descriptor (1 .. 2**SEQ_BITS - 1).
SEQ_BITS = 16
#: Width of the runtime head counts H and Hkv (1 .. 2**HEAD_BITS - 1).
HEAD_BITS = 8
#: The softmax scale c is an unsigned SCALE_BITS fixed-point number with SCALE_FRAC
#: fractional bits standing for scale·log2(e): scale·log2(e) < 2**(SCALE_BITS - SCALE_FRAC).
SCALE_BITS = 32
SCALE_FRAC = 28
#: Guard bits of the exp2 table below the probability's LSB.
GUARD = 2
EXP2_KINDS = ("pwl", "table")


def _bits_for(value: int) -> int:
    return max(1, int(value).bit_length())


@dataclass(frozen=True)
class AttentionConfig(BlockConfig):
    """An R×C array (R query rows × C keys per block) with R per-row online-softmax units.

    Nq, Nkv, d, H, Hkv, causal and the scale are runtime (a descriptor); the buffers depend on
    R, C and ``max_head_dim`` only.
    """

    block_name = "attention"

    rows: int = param(4, "array rows R (query rows per tile)", minimum=1, maximum=32)
    cols: int = param(4, "array columns C (keys per block)", minimum=1, maximum=32)
    max_head_dim: int = param(64, "largest runtime head dimension d", minimum=1, maximum=256)
    width: int = param(8, "signed width of q, k, v and o", minimum=2, maximum=8)
    exp2: str = param("pwl", "exp2 approximation: piecewise-linear or table", choices=EXP2_KINDS)
    exp2_segments: int = param(32, "exp2 segments (table entries) over one octave",
                               choices=(4, 8, 16, 32, 64, 128, 256))
    exp_frac_bits: int = param(16, "fractional bits F of the exp2 argument (≥ 8, so every "
                               "segment count fits)", minimum=8, maximum=24)
    prob_bits: int = param(16, "fractional bits P of probabilities and correction factors",
                           minimum=8, maximum=20)
    causal: bool = param(True, "causal-mask support (the runtime flag needs it)")

    @property
    def segment_bits(self) -> int:
        return self.exp2_segments.bit_length() - 1

    @property
    def score_bits(self) -> int:
        """Signed width of an exact score q·k over up to ``max_head_dim`` products."""
        return 2 * self.width + _bits_for(self.max_head_dim)

    @property
    def head_dim_bits(self) -> int:
        return _bits_for(self.max_head_dim)

    @property
    def sum_bits(self) -> int:
        """Unsigned width of the running sum l ≤ Nkv·2**P."""
        return self.prob_bits + 1 + SEQ_BITS

    @property
    def acc_bits(self) -> int:
        """Signed width of a running output o_acc, |o_acc| ≤ l·2**(width-1)."""
        return self.sum_bits + self.width
