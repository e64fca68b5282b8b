"""Configuration of the PIM channel (``pim``): DRAM banks with in-bank MAC units.

The specification (command encoding, ISA, timing rules, GEMV mapping) is ``docs/pim.md``; the
golden model ``golden.pim`` implements it command by command. Geometry in brief:

* ``banks`` banks of ``rows`` rows × ``columns`` columns × ``column_bits`` bits; bank ``b``
  belongs to bank group ``b mod bank_groups``.
* one MAC unit per bank (``unit="bank"``, unit ``u`` on bank ``u``) or per bank pair
  (``unit="pair"``, unit ``u`` on banks ``2u`` and ``2u+1``);
* a unit has ``lanes`` lanes; lane ``l`` owns bits ``[l·lane_bits, (l+1)·lane_bits)`` of a
  column, i.e. ``elems_per_lane`` int8 (or bf16) elements;
* registers per unit: ``grf`` GRF_A entries (one column each), ``grf`` GRF_B entries (one 32-bit
  accumulator per lane), ``srf`` SRF entries (one lane word, broadcast to every lane), ``crf``
  instruction slots (32 bits each).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import BlockConfig, param
from .timing import PRESET_INFO, PRESETS, TIMING_PARAMETERS, effective_timing

__all__ = ["ARITHMETICS", "UNIT_KINDS", "PimConfig"]

UNIT_KINDS = ("bank", "pair")
ARITHMETICS = ("int8", "bf16")
_POW2_ROWS = tuple(1 << i for i in range(15))       # 1 .. 16384


def _override(name: str) -> int:
    return param(0, f"{name} override in cycles of the preset's clock (0: the preset's value)",
                 minimum=0, maximum=65535)


@dataclass(frozen=True)
class PimConfig(BlockConfig):
    """A channel of ``banks`` DRAM banks with MAC units beside them (docs/pim.md)."""

    block_name = "pim"

    banks: int = param(4, "banks in the channel", minimum=1, maximum=16)
    rows: int = param(64, "rows per bank (a power of two)", minimum=1, maximum=16384)
    columns: int = param(32, "columns per row", choices=(4, 8, 16, 32, 64, 128, 256))
    column_bits: int = param(256, "bits per column (one column command moves one column)",
                             choices=(64, 128, 256))
    lanes: int = param(16, "MAC lanes per unit (divides column_bits/8)",
                       choices=(1, 2, 4, 8, 16, 32))
    unit: str = param("bank", "one MAC unit per bank or per bank pair (pair: even bank count)",
                      choices=UNIT_KINDS)
    arithmetic: str = param("int8", "lane arithmetic: int8×int8→int32 or bf16×bf16→fp32",
                            choices=ARITHMETICS)
    grf: int = param(8, "GRF_A and GRF_B entries per unit", choices=(2, 4, 8, 16))
    srf: int = param(8, "SRF (scalar) entries per unit", choices=(1, 2, 4, 8, 16))
    crf: int = param(32, "instruction slots (CRF) per unit", minimum=4, maximum=32)
    timing: str = param("hbm2", "DRAM timing preset", choices=tuple(PRESETS))
    dual_row_buffer: bool = param(True, "a second (PIM) row buffer per bank, as in NeuPIMs")
    bank_groups: int = param(4, "bank groups (bank b is in group b mod bank_groups)",
                             choices=(1, 2, 4))
    x_words: int = param(4096, "x buffer of the GEMV sequencer, in lane words "
                         "(batch × ceil(in/k))", minimum=32, maximum=65536)
    tRCD: int = _override("tRCD")
    tRP: int = _override("tRP")
    tRAS: int = _override("tRAS")
    tRC: int = _override("tRC")
    tRRD_S: int = _override("tRRD_S")
    tRRD_L: int = _override("tRRD_L")
    tCCD_S: int = _override("tCCD_S")
    tCCD_L: int = _override("tCCD_L")
    tWR: int = _override("tWR")
    tRTP: int = _override("tRTP")
    tFAW: int = _override("tFAW")
    tREFI: int = _override("tREFI")
    tRFC: int = _override("tRFC")

    def check(self) -> None:
        name = self.block_name
        if self.rows not in _POW2_ROWS:
            raise ValueError(f"{name}: rows={self.rows} is not allowed; expected a power of two "
                             f"from 1 to 16384")
        if (self.column_bits // 8) % self.lanes:
            raise ValueError(f"{name}: lanes={self.lanes} is not allowed with column_bits="
                             f"{self.column_bits}; expected a divisor of column_bits/8 = "
                             f"{self.column_bits // 8}")
        if self.arithmetic == "bf16" and self.lane_bits < 16:
            raise ValueError(f"{name}: lanes={self.lanes} is not allowed with arithmetic='bf16' "
                             f"and column_bits={self.column_bits}; expected at most "
                             f"{self.column_bits // 16} lanes (16 bits per lane)")
        if self.unit == "pair" and self.banks % 2:
            raise ValueError(f"{name}: unit='pair' is not allowed with banks={self.banks}; "
                             f"expected an even number of banks")
        t = self.timing_values
        for long, short in (("tCCD_L", "tCCD_S"), ("tRRD_L", "tRRD_S")):
            if t[long] < t[short]:
                raise ValueError(f"{name}: {long}={t[long]} is not allowed with {short}="
                                 f"{t[short]}; expected {long} >= {short}")
        if t["tREFI"] <= t["tRFC"]:
            raise ValueError(f"{name}: tREFI={t['tREFI']} is not allowed with tRFC={t['tRFC']}; "
                             f"expected tREFI > tRFC")

    # ------------------------------------------------------------------ geometry
    def check_rtl(self) -> None:
        if self.arithmetic != "int8":
            raise ValueError(f"{self.block_name}: arithmetic={self.arithmetic!r} is not built in "
                             f"RTL yet; expected 'int8' (bf16 lanes exist in the golden model "
                             f"only)")

    @property
    def units(self) -> int:
        return self.banks if self.unit == "bank" else self.banks // 2

    @property
    def column_bytes(self) -> int:
        return self.column_bits // 8

    @property
    def row_bytes(self) -> int:
        return self.columns * self.column_bytes

    @property
    def bank_bytes(self) -> int:
        return self.rows * self.row_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.banks * self.bank_bytes

    @property
    def lane_bits(self) -> int:
        return self.column_bits // self.lanes

    @property
    def lane_bytes(self) -> int:
        return self.lane_bits // 8

    @property
    def element_bits(self) -> int:
        return 8 if self.arithmetic == "int8" else 16

    @property
    def elems_per_lane(self) -> int:
        """k: elements one lane multiplies per instruction."""
        return self.lane_bits // self.element_bits

    @property
    def elems_per_column(self) -> int:
        return self.column_bits // self.element_bits

    @property
    def acc_pieces(self) -> int:
        """Column-wide pieces of one GRF_B entry (lanes × 32 bits) for register reads/writes."""
        return -(-32 * self.lanes // self.column_bits)

    @property
    def words_per_column(self) -> int:
        """32-bit data words of one column (the command's data field)."""
        return self.column_bits // 32

    def bank_group(self, bank: int) -> int:
        return bank % self.bank_groups

    def unit_banks(self, unit: int) -> tuple[int, ...]:
        return (unit,) if self.unit == "bank" else (2 * unit, 2 * unit + 1)

    def unit_of_bank(self, bank: int) -> int:
        return bank if self.unit == "bank" else bank // 2

    # ------------------------------------------------------------------ timing
    @property
    def timing_values(self) -> dict[str, int]:
        """Effective timing in cycles: the 13 parameters plus tWL and tBL (hdl.pim.timing)."""
        return effective_timing(self)

    @property
    def tck_ns(self) -> float:
        return PRESET_INFO[self.timing]["tCK_ns"]

    @property
    def timing_overrides(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TIMING_PARAMETERS if getattr(self, name)}

    @property
    def external_cycles_per_column(self) -> int:
        """Cycles per column of a stream of ordinary reads: max(tCCD_S, tBL)."""
        t = self.timing_values
        return max(t["tCCD_S"], t["tBL"])

    @property
    def refresh_factor(self) -> float:
        """Fraction of time not spent refreshing: 1 − tRFC/tREFI."""
        t = self.timing_values
        return 1.0 - t["tRFC"] / t["tREFI"]

    @property
    def internal_bound(self) -> float:
        """Bytes of W per cycle: units × column bytes per tCCD_L, refresh included."""
        return self.units * self.column_bytes / self.timing_values["tCCD_L"] * self.refresh_factor

    @property
    def external_bound(self) -> float:
        """Bytes per cycle of ordinary reads at the external bus rate, refresh included."""
        return self.column_bytes / self.external_cycles_per_column * self.refresh_factor

    @property
    def ideal_ratio(self) -> float:
        return self.internal_bound / self.external_bound
