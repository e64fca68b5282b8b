"""Configurations of the block quantizers (``mx_quant``, ``mx_dequant``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import BlockConfig, param
from .formats import FORMAT_NAMES, INPUTS, ROUNDINGS, ElementFormat, element_format

__all__ = ["MXDequantConfig", "MXQuantConfig"]


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
