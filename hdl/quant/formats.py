"""Element formats of the block quantizers: OCP MX v1.0 (MXINT8, MXFP8/6/4) and plain BFP.

Every format is either a small sign-magnitude float (``kind == "fp"``) or a two's-complement
fixed-point integer with ``point`` fractional bits (``kind == "int"``), scaled per block by a
shared E8M0 exponent. ``emax`` is the exponent of the format's largest binade; the block's
scale exponent is floor(log2(amax)) − emax.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMAT_NAMES", "INPUTS", "ROUNDINGS", "ElementFormat", "element_format"]

ROUNDINGS = ("nearest_even", "nearest_away", "toward_zero", "stochastic")
#: Input element types: (exponent bits, mantissa bits, bias) of the IEEE-style encodings.
INPUTS = {"fp32": (8, 23, 127), "bf16": (8, 7, 127), "fp16": (5, 10, 15)}
#: BFP mantissa widths (sign included) offered as ``bfp<P>``.
BFP_BITS = range(2, 9)


@dataclass(frozen=True)
class ElementFormat:
    name: str
    kind: str          # "fp" (sign-magnitude float) or "int" (two's complement, ``point`` bits)
    bits: int          # code width
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    emax: int = 0
    max_code: int = 0  # largest code magnitude the quantizer produces (saturation)
    point: int = 0     # int: fractional bits (value = code / 2**point)

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal binade (fp); subnormals share its quantum."""
        return 1 - self.bias


def _fp(name: str, ebits: int, mbits: int, bias: int, emax: int, max_code: int) -> ElementFormat:
    return ElementFormat(name, "fp", 1 + ebits + mbits, ebits, mbits, bias, emax, max_code)


_FORMATS = {f.name: f for f in [
    ElementFormat("int8", "int", 8, emax=0, max_code=127, point=6),
    _fp("fp8_e4m3", 4, 3, 7, 8, 0x7E),      # 448; 0x7F is NaN
    _fp("fp8_e5m2", 5, 2, 15, 15, 0x7B),    # 57344; 0x7C is Inf
    _fp("fp6_e3m2", 3, 2, 3, 4, 0x1F),      # 28
    _fp("fp6_e2m3", 2, 3, 1, 2, 0x1F),      # 7.5
    _fp("fp4_e2m1", 2, 1, 1, 2, 0x7),       # 6
    *(ElementFormat(f"bfp{p}", "int", p, emax=0, max_code=(1 << (p - 1)) - 1, point=p - 2)
      for p in BFP_BITS),
]}
FORMAT_NAMES = tuple(_FORMATS)


def element_format(name: str) -> ElementFormat:
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(f"format={name!r} is not allowed; expected one of "
                         f"{', '.join(FORMAT_NAMES)}") from None
