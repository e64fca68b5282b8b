"""Configurations of the block quantizers (``mx_quant``, ``mx_dequant``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import BlockConfig, param
from .formats import FORMAT_NAMES, INPUTS, ROUNDINGS, ElementFormat, element_format

__all__ = ["KiviQuantConfig", "MXDequantConfig", "MXQuantConfig"]


class _BlockFields:
    format: str
    block_size: int
    lanes: int

    def check(self) -> None:
        if self.block_size % self.lanes:
            raise ValueError(f"{self.block_name}: block_size={self.block_size} is not allowed "
                             f"with lanes={self.lanes}; expected a multiple of lanes")

    @property
    def element(self) -> ElementFormat:
        return element_format(self.format)

    @property
    def beats_per_block(self) -> int:
        return self.block_size // self.lanes


@dataclass(frozen=True)
class MXQuantConfig(_BlockFields, BlockConfig):
    """A streaming quantizer: ``lanes`` input elements per cycle in, per block of
    ``block_size`` elements one shared E8M0 scale and the element codes out."""

    block_name = "mx_quant"

    format: str = param("fp8_e4m3", "element format", choices=FORMAT_NAMES)
    rounding: str = param("nearest_even", "rounding of the elements", choices=ROUNDINGS)
    block_size: int = param(32, "elements per shared scale (32 in OCP MX)", minimum=8,
                            maximum=128)
    lanes: int = param(4, "elements per cycle", minimum=1, maximum=32)
    input: str = param("fp32", "input element type", choices=tuple(INPUTS))


@dataclass(frozen=True)
class MXDequantConfig(_BlockFields, BlockConfig):
    """A streaming dequantizer: element codes and their block's scale in, fp32 out."""

    block_name = "mx_dequant"

    format: str = param("fp8_e4m3", "element format", choices=FORMAT_NAMES)
    block_size: int = param(32, "elements per shared scale (32 in OCP MX)", minimum=8,
                            maximum=128)
    lanes: int = param(4, "elements per cycle", minimum=1, maximum=32)


@dataclass(frozen=True)
class KiviQuantConfig(BlockConfig):
    """KIVI's asymmetric 2/4-bit group quantizer on a stream: ``lanes`` elements per cycle, one
    (minimum, range, exponent) per group of ``group`` consecutive stream elements.

    Values (per-token groups) stream row by row; keys (per-channel groups of ``group``
    tokens) stream each tile of ``group`` tokens channel by channel (the residual window that
    KIVI keeps in full precision until a tile is complete is where that transpose happens).
    """

    block_name = "kivi_quant"

    bits: int = param(2, "code bits", choices=(2, 4))
    group: int = param(32, "elements per group (G)", minimum=8, maximum=128)
    lanes: int = param(4, "elements per cycle", minimum=1, maximum=32)
    input: str = param("fp32", "input element type", choices=tuple(INPUTS))

    def check(self) -> None:
        if self.group % self.lanes:
            raise ValueError(f"{self.block_name}: group={self.group} is not allowed with "
                             f"lanes={self.lanes}; expected a multiple of lanes")

    @property
    def levels(self) -> int:
        """L = 2^bits − 1, the largest code."""
        return (1 << self.bits) - 1
