"""DRAM timing presets of the PIM channel and the effective timing of a configuration.

Every value is an integer number of cycles of the preset's clock (``tCK`` below); the command
interface, the timing checker and the PIM units all run on that clock (one command per port per
cycle, docs/pim.md).

``hbm2`` — one HBM2 channel (legacy mode: 128-bit DDR bus, 4 bank groups × 4 banks), 1 GHz
(``tCK`` = 1 ns, 2 Gb/s per pin). Values from DRAMsim3 ``configs/HBM2_8Gb_x128.ini``
(umd-memsys/DRAMsim3, ``[timing]``: tCK = 1, tRCDRD = 14, tRP = 14, tRAS = 34, tRRD_S = 4,
tRRD_L = 6, tCCD_S = 1, tCCD_L = 2, tWR = 16, tRTP_L = 6, tFAW = 30, tREFI = 3900,
tRFC = 260, CWL = 4). DRAMsim3 derives tRC = tRAS + tRP = 48; we take the same-bank read to
precharge time tRTP_L (6) as tRTP, which is what Ramulator 2 applies at bank level
(``src/dram/impl/HBM2.cpp``: RD → PRE uses nRTPL). Ramulator 2's own HBM2 speed preset
(``HBM2_2Gbps``: nRCD 7, nRP 7, nRAS 17, nRC 19, nCCDS 1, nCCDL 2, nRRDS 2, nRRDL 3, nFAW 15)
carries a "TODO: find more sources" note and is not used. The data bus moves 128 bits per clock
edge, 256 bits per ``tCK``: one 256-bit column per cycle (``bus_bits_per_cycle`` = 256).

``gddr6`` — one GDDR6 x16 channel (16 banks in 4 groups), ``tCK`` = 0.66 ns (about 1.5 GHz
command clock, 6 Gb/s per pin at four data bits per pin per ``tCK``). Values from the GDDR6
configuration of the hplp/DRAMsim3 fork, ``configs/GDDR6_8Gb_x16.ini`` (tCK = 0.66,
tRCDRD = 24, tRP = 24, tRAS = 54, tRRD_S = 9, tRRD_L = 9, tCCD_S = 3, tCCD_L = 4, tWR = 16,
tRTP_L = 3, tFAW = 32, tREFI = 11862, tRFC = 126, CWL = 16, BL = 16); tRC = tRAS + tRP = 78.
tRCDWR (20) is below tRCDRD; the one ``tRCD`` of this model takes the read value for both.
Cross-check: Ramulator 2 ``src/dram/impl/GDDR6.cpp`` preset ``GDDR6_2000_1350mV_double``
(tCK 570 ps: nRCDRD 26, nRP 26, nRAS 53, nRC 79, nCCDS 4, nCCDL 6, nRRDS 7, nFAW 28, nRTP 4)
is of the same order. A 256-bit column is one BL16 burst on the 16-bit channel: 4 ``tCK``
(``bus_bits_per_cycle`` = 64).

Derived, not overridable: ``tWL`` (write latency, CWL) and ``tBL`` (cycles one column occupies
the external data bus, ``ceil(column_bits / bus_bits_per_cycle)``). A write's recovery before
precharge is ``tWL + tBL + tWR`` after the WR command (as DRAMsim3 and Ramulator count it).
"""
from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "PRESET_INFO", "TIMING_PARAMETERS", "effective_timing", "preset_names"]

#: The overridable timing parameters, in the order of the config's fields.
TIMING_PARAMETERS = ("tRCD", "tRP", "tRAS", "tRC", "tRRD_S", "tRRD_L", "tCCD_S", "tCCD_L",
                     "tWR", "tRTP", "tFAW", "tREFI", "tRFC")

#: name -> parameter -> cycles of the preset's clock.
PRESETS: dict[str, dict[str, int]] = {
    "hbm2": {"tRCD": 14, "tRP": 14, "tRAS": 34, "tRC": 48, "tRRD_S": 4, "tRRD_L": 6,
             "tCCD_S": 1, "tCCD_L": 2, "tWR": 16, "tRTP": 6, "tFAW": 30, "tREFI": 3900,
             "tRFC": 260},
    "gddr6": {"tRCD": 24, "tRP": 24, "tRAS": 54, "tRC": 78, "tRRD_S": 9, "tRRD_L": 9,
              "tCCD_S": 3, "tCCD_L": 4, "tWR": 16, "tRTP": 3, "tFAW": 32, "tREFI": 11862,
              "tRFC": 126},
}

#: name -> clock period, external data bits per cycle, write latency, source.
PRESET_INFO: dict[str, dict[str, Any]] = {
    "hbm2": {"tCK_ns": 1.0, "bus_bits_per_cycle": 256, "tWL": 4,
             "source": "DRAMsim3 configs/HBM2_8Gb_x128.ini (umd-memsys/DRAMsim3)"},
    "gddr6": {"tCK_ns": 0.66, "bus_bits_per_cycle": 64, "tWL": 16,
              "source": "DRAMsim3 configs/GDDR6_8Gb_x16.ini (hplp/DRAMsim3)"},
}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def effective_timing(config: Any) -> dict[str, int]:
    """The 13 timing parameters of ``config`` (its preset, each non-zero override replacing the
    preset's value) plus the derived ``tWL`` and ``tBL``, all in cycles."""
    preset = PRESETS[config.timing]
    values = {name: (getattr(config, name) or preset[name]) for name in TIMING_PARAMETERS}
    info = PRESET_INFO[config.timing]
    values["tWL"] = info["tWL"]
    values["tBL"] = -(-config.column_bits // info["bus_bits_per_cycle"])
    return values
